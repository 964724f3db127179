/**
 * Server CPU time from /proc: the whole process (utime + stime of /proc/PID/stat, which also
 * counts threads that have exited) and each live thread (/proc/PID/task/TID/stat). On a 2-core
 * machine with the load generator on one core, throughput alone hides what a server's threads
 * cost; CPU per request does not.
 *
 * mmapd's threads are grouped as its main thread (tid = pid), its shard workers (the threads Bun
 * names `Worker` that are alive once it is ready, in the order they were started, which is shard
 * order; see `rememberShardWorkers`) and everything else (JIT compiler, garbage collector, Bun's
 * pools, the format pool's threads, also named `Worker`): `other` is the process total minus the
 * main thread and the shard workers, so it also holds the time of threads that ended during the run.
 */
import { spawnSync } from "bun";
import fs from "node:fs";
import { median } from "./statistics.ts";

/** Clock ticks per second of utime and stime (`getconf CLK_TCK`; 100 on Linux nearly always). */
export const CLOCK_TICKS_PER_SECOND = (() => {
  const reported = Number(spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim());
  return Number.isInteger(reported) && reported > 0 ? reported : 100;
})();

/** utime + stime of one /proc stat file, in ticks, or null when it is gone. */
function ticksOf(statFile: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(statFile, "latin1");
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return Number(fields[11]) + Number(fields[12]);
}

/** CPU ticks of a process and of its threads at one moment. */
export interface CpuSnapshot {
  at: number;
  processTicks: number;
  /** Ticks per live thread id. */
  threadTicks: Map<number, number>;
}

/** Reads the process's and its threads' CPU ticks; null when the process is gone. */
export function cpuSnapshot(pid: number): CpuSnapshot | null {
  const processTicks = ticksOf(`/proc/${pid}/stat`);
  if (processTicks === null) return null;
  const threadTicks = new Map<number, number>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    // The process ended between the two reads: its total is all there is.
  }
  for (const tid of tids) {
    const ticks = ticksOf(`/proc/${pid}/task/${tid}/stat`);
    if (ticks !== null) threadTicks.set(Number(tid), ticks);
  }
  return { at: performance.now(), processTicks, threadTicks };
}

/** A thread's name (/proc/PID/task/TID/comm), or "" when it is gone. */
function threadName(pid: number, tid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, "latin1").trim();
  } catch {
    return "";
  }
}

/** The shard workers' thread ids of each mmapd process, noted when it became ready. */
const shardWorkersByPid = new Map<number, number[]>();

/** Notes the shard workers of mmapd `pid`, which has just said it is ready: its `Worker` threads now (no format pool runs yet). */
export function rememberShardWorkers(pid: number): void {
  let tids: number[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return; // no /proc: the split falls back to every Worker thread
  }
  shardWorkersByPid.set(pid, workerThreads(pid, tids));
}

/** Of `tids`, the threads Bun names `Worker`, in the order they were started. */
function workerThreads(pid: number, tids: Iterable<number>): number[] {
  return [...tids].filter((tid) => tid !== pid && threadName(pid, tid) === "Worker").sort((a, b) => a - b);
}

/** CPU seconds between two snapshots: the total, and for mmapd the main thread, each shard worker and the rest. */
export interface CpuUse {
  totalSeconds: number;
  /** Only for mmapd (null for Redis, which is measured as one process). */
  mainSeconds: number | null;
  workerSeconds: number[] | null;
  otherSeconds: number | null;
  wallSeconds: number;
}

/** The CPU a process used between two snapshots; `threads` splits mmapd's time into main, workers and other. */
export function cpuBetween(pid: number, before: CpuSnapshot, after: CpuSnapshot, threads: boolean): CpuUse {
  const seconds = (ticks: number) => ticks / CLOCK_TICKS_PER_SECOND;
  const totalSeconds = seconds(after.processTicks - before.processTicks);
  const wallSeconds = (after.at - before.at) / 1000;
  if (!threads) return { totalSeconds, mainSeconds: null, workerSeconds: null, otherSeconds: null, wallSeconds };
  const used = (tid: number) => (after.threadTicks.get(tid) ?? 0) - (before.threadTicks.get(tid) ?? 0);
  const workers = shardWorkersByPid.get(pid) ?? workerThreads(pid, after.threadTicks.keys());
  const mainSeconds = seconds(used(pid));
  const workerSeconds = workers.map((tid) => seconds(used(tid)));
  const otherSeconds = Math.max(0, totalSeconds - mainSeconds - workerSeconds.reduce((sum, s) => sum + s, 0));
  return { totalSeconds, mainSeconds, workerSeconds, otherSeconds, wallSeconds };
}

/** Runs `work` and returns its result with the CPU `pid` used meanwhile. */
export async function measuringCpu<T>(pid: number, threads: boolean, work: () => Promise<T>): Promise<{ result: T; cpu: CpuUse }> {
  const before = cpuSnapshot(pid);
  const result = await work();
  const after = cpuSnapshot(pid);
  if (before === null || after === null) throw new Error(`process ${pid} is gone: cannot measure its CPU time`);
  return { result, cpu: cpuBetween(pid, before, after, threads) };
}

/** CPU per request in microseconds, split the same way as `CpuUse`. */
export interface CpuPerRequest {
  totalUs: number;
  mainUs: number | null;
  workerUs: number[] | null;
  otherUs: number | null;
}

export function perRequest(cpu: CpuUse, requests: number): CpuPerRequest {
  const us = (s: number) => (s * 1e6) / requests;
  return {
    totalUs: us(cpu.totalSeconds),
    mainUs: cpu.mainSeconds === null ? null : us(cpu.mainSeconds),
    workerUs: cpu.workerSeconds === null ? null : cpu.workerSeconds.map(us),
    otherUs: cpu.otherSeconds === null ? null : us(cpu.otherSeconds),
  };
}

/** The median of each field over rounds (worker lists element by element). */
export function medianCpu(rounds: CpuPerRequest[]): CpuPerRequest {
  const optional = (pick: (r: CpuPerRequest) => number | null) =>
    rounds.every((r) => pick(r) !== null) ? median(rounds.map((r) => pick(r)!)) : null;
  const workerCount = Math.min(...rounds.map((r) => r.workerUs?.length ?? 0));
  return {
    totalUs: median(rounds.map((r) => r.totalUs)),
    mainUs: optional((r) => r.mainUs),
    workerUs: rounds.every((r) => r.workerUs !== null)
      ? Array.from({ length: workerCount }, (_, w) => median(rounds.map((r) => r.workerUs![w])))
      : null,
    otherUs: optional((r) => r.otherUs),
  };
}
