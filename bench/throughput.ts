/**
 * The redis-benchmark rows: pairs of equivalent commands run interleaved (mmapd, Redis, mmapd
 * `--workers 1`, per test, per round) at `-P 1` and `-P 16`, each run with the server's CPU time
 * read from /proc before and after, so every row has requests per second and CPU per request.
 */
import { measuringCpu, medianCpu, perRequest } from "./cpu.ts";
import { type BenchData, redisKey, VALUE_COUNT } from "./fixtures.ts";
import type { RunningMmapd, RunningServer } from "./processes.ts";
import { type LoadShape, runRedisBenchmark } from "./redis_benchmark.ts";
import { medianOf, type ResultRow, type RunResult, type Shape, type VariantResult } from "./report.ts";
import { ErrorReply, RespClient } from "./resp_client.ts";

export const PIPELINES = [1, 16] as const;
/** Requests per test in the warm-up pass, at -P 16. */
const WARM_UP_REQUESTS = 20_000;

/** One pair of equivalent loads: the redis-benchmark arguments for mmapd and for Redis. */
interface PairedTest {
  name: string;
  shape: Shape;
  mmapd: string[];
  redis: string[];
  /** Whether the commands hold `__rand_int__` (then `-r` is passed). */
  random: boolean;
  /** Whether mmapd `--workers 1` runs it too. */
  withOneWorker: boolean;
  /** The share of the default request count this row runs (rows with 100 values per reply take longer). */
  requestsShare: number;
  /** A command mmapd must answer without an error for the row to run (a form not every build has). */
  needs?: string[];
  /** The goals set for this machine: the least req/s ratio at -P 1 and at -P 16, the most CPU per request relative to Redis. */
  goal?: { ratio?: [number, number]; cpu?: number };
}

/** A row's goal as text for the tables. */
function goalText(test: PairedTest, pipeline: number): string {
  const parts: string[] = [];
  const ratio = test.goal?.ratio?.[pipeline === 1 ? 0 : 1];
  if (ratio !== undefined) parts.push(`≥ ${ratio.toFixed(2).replace(/0$/, "")}`);
  if (test.goal?.cpu !== undefined) parts.push(`CPU ≤ ${test.goal.cpu}×`);
  return parts.join(", ");
}

const repeated = (text: string, times: number) => Array.from({ length: times }, () => text);

/**
 * The rows. redis-benchmark replaces every `__rand_int__` with its own random number (12 digits,
 * zero-padded: `key:__rand_int__` names Redis's keys, and mmapd reads the same text as an index).
 */
export function pairedTests(data: BenchData): PairedTest[] {
  const spread = data.spread.map(String);
  const neighbours = data.neighbours.map(String);
  return [
    {
      name: "PING",
      shape: "no values",
      mmapd: ["-t", "ping_mbulk"],
      redis: ["-t", "ping_mbulk"],
      random: false,
      withOneWorker: true,
      requestsShare: 1,
      goal: { ratio: [0.95, 1.0], cpu: 1.1 },
    },
    {
      name: "VGET vs GET",
      shape: "doubles",
      mmapd: ["VGET", "k", "__rand_int__"],
      redis: ["GET", "key:__rand_int__"],
      random: true,
      withOneWorker: true,
      requestsShare: 1,
      goal: { ratio: [0.95, 1.0], cpu: 1.1 },
    },
    {
      name: "VSET vs SET",
      shape: "doubles",
      mmapd: ["VSET", "kw", "__rand_int__", data.writtenText],
      redis: ["SET", "wkey:__rand_int__", data.writtenText],
      random: true,
      withOneWorker: false,
      requestsShare: 1,
      goal: { ratio: [0.95, 1.0] },
    },
    {
      name: "VADD vs RPUSH",
      shape: "doubles",
      mmapd: ["VADD", "k2", data.writtenText],
      redis: ["RPUSH", "list", data.writtenText],
      random: false,
      withOneWorker: false,
      requestsShare: 1,
      goal: { ratio: [0.95, 0.7] },
    },
    {
      name: "VCOUNT vs LLEN",
      shape: "no values",
      mmapd: ["VCOUNT", "k"],
      redis: ["LLEN", "list"],
      random: false,
      withOneWorker: false,
      requestsShare: 1,
      goal: { ratio: [1.0, 1.0], cpu: 1.1 },
    },
    {
      name: "VMGET vs MGET, 10 random",
      shape: "doubles",
      mmapd: ["VMGET", "k", ...repeated("__rand_int__", 10)],
      redis: ["MGET", ...repeated("key:__rand_int__", 10)],
      random: true,
      withOneWorker: false,
      requestsShare: 0.5,
      goal: { ratio: [0.95, 1.2] },
    },
    {
      name: "VMGET vs MGET, 100 random",
      shape: "doubles",
      mmapd: ["VMGET", "k", ...repeated("__rand_int__", 100)],
      redis: ["MGET", ...repeated("key:__rand_int__", 100)],
      random: true,
      withOneWorker: false,
      requestsShare: 0.25,
      goal: { ratio: [1.0, 1.0] },
    },
    {
      name: "VMGET vs MGET, 100 spread",
      shape: "doubles",
      mmapd: ["VMGET", "k", ...spread],
      redis: ["MGET", ...data.spread.map((i) => redisKey(i))],
      random: false,
      withOneWorker: false,
      requestsShare: 0.25,
      goal: { ratio: [1.0, 1.0] },
    },
    {
      name: "VMGET RAW vs MGET, 100 random",
      shape: "doubles",
      mmapd: ["VMGET", "k", "RAW", ...repeated("__rand_int__", 100)],
      redis: ["MGET", ...repeated("key:__rand_int__", 100)],
      random: true,
      withOneWorker: false,
      requestsShare: 0.25,
      goal: { ratio: [1.5, 1.5] },
      needs: ["VMGET", "k", "RAW", "0"],
    },
    {
      name: "VMGET vs MGET, 100 spread",
      shape: "short decimal",
      mmapd: ["VMGET", "ks", ...spread],
      redis: ["MGET", ...data.spread.map((i) => redisKey(i, "skey"))],
      random: false,
      withOneWorker: false,
      requestsShare: 0.25,
    },
    {
      name: "VMGET vs MGET, 100 neighbouring",
      shape: "short decimal",
      mmapd: ["VMGET", "ks", ...neighbours],
      redis: ["MGET", ...data.neighbours.map((i) => redisKey(i, "skey"))],
      random: false,
      withOneWorker: false,
      requestsShare: 0.25,
      goal: { ratio: [0.95, 1.4] },
    },
  ];
}

/** The tests this mmapd can run: those whose `needs` command it answers without an error. */
export async function supportedTests(mmapd: RunningMmapd, tests: PairedTest[]): Promise<{ tests: PairedTest[]; skipped: string[] }> {
  const client = await RespClient.connect(mmapd.port);
  try {
    const supported: PairedTest[] = [];
    const skipped: string[] = [];
    for (const test of tests) {
      const reply = test.needs === undefined ? null : await client.command(...test.needs);
      if (reply instanceof ErrorReply) skipped.push(`${test.name} (${test.needs!.join(" ")}: ${reply.message})`);
      else supported.push(test);
    }
    return { tests: supported, skipped };
  } finally {
    client.close();
  }
}

export interface ThroughputSettings {
  requestsByPipeline: Record<number, number>;
  rounds: number;
  clients: number;
  warmUp: boolean;
}

export interface RunTiming {
  pipeline: number;
  requests: number;
  rps: number;
  wallSeconds: number;
}

const integerText = (n: number) => Math.round(n).toLocaleString("en-US");
const requestsFor = (settings: ThroughputSettings, test: PairedTest, pipeline: number) =>
  Math.max(1_000, Math.round(settings.requestsByPipeline[pipeline] * test.requestsShare));

/** One redis-benchmark run against one server, with the CPU the server used meanwhile. */
async function measure(
  server: RunningServer,
  threads: boolean,
  shape: LoadShape,
  testArgs: string[],
  timings: RunTiming[],
): Promise<RunResult> {
  // redis-benchmark waits forever for a server that is gone: fail at once instead.
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) {
    throw new Error(
      `${server.label} has exited (code ${server.proc.exitCode ?? server.proc.signalCode}); its last output:\n${server.output().slice(-2000)}`,
    );
  }
  const started = performance.now();
  const { result, cpu } = await measuringCpu(server.pid, threads, () => runRedisBenchmark(server.port, shape, testArgs));
  timings.push({ pipeline: shape.pipeline, requests: shape.requests, rps: result.rps, wallSeconds: (performance.now() - started) / 1000 });
  return { ...result, cpu: perRequest(cpu, shape.requests) };
}

/** Runs every test at every pipeline depth for the rounds asked for, and returns one row per test and depth (medians). */
export async function runThroughput(
  servers: { mmapd: RunningMmapd; redis: RunningServer; oneWorker: RunningMmapd },
  tests: PairedTest[],
  settings: ThroughputSettings,
  timings: RunTiming[],
  log: (line: string) => void,
): Promise<ResultRow[]> {
  const { mmapd, redis, oneWorker } = servers;
  const shapeOf = (test: PairedTest, pipeline: number, requests: number): LoadShape => ({
    clients: settings.clients,
    requests,
    pipeline,
    randomRange: test.random ? VALUE_COUNT : null,
  });
  if (settings.warmUp) {
    // mmapd's code is compiled while it runs: one short pass of every test first, on every
    // server alike, so that the rounds measure the steady state.
    const warmUpTimings: RunTiming[] = [];
    for (const test of tests) {
      const shape = shapeOf(test, 16, WARM_UP_REQUESTS);
      await measure(mmapd, true, shape, test.mmapd, warmUpTimings);
      await measure(redis, false, shape, test.redis, warmUpTimings);
      if (test.withOneWorker) await measure(oneWorker, true, shape, test.mmapd, warmUpTimings);
    }
  }
  const seen = new Map<string, { mmapd: RunResult[]; redis: RunResult[]; oneWorker: RunResult[] }>();
  const keyOf = (test: PairedTest, pipeline: number) => `${test.name} ${test.shape} -P ${pipeline}`;
  for (let round = 1; round <= settings.rounds; round++) {
    for (const pipeline of PIPELINES) {
      for (const test of tests) {
        const shape = shapeOf(test, pipeline, requestsFor(settings, test, pipeline));
        const runs = seen.get(keyOf(test, pipeline)) ?? { mmapd: [], redis: [], oneWorker: [] };
        seen.set(keyOf(test, pipeline), runs);
        const m = await measure(mmapd, true, shape, test.mmapd, timings);
        const r = await measure(redis, false, shape, test.redis, timings);
        runs.mmapd.push(m);
        runs.redis.push(r);
        let line =
          `round ${round}/${settings.rounds}  -P ${String(pipeline).padEnd(2)}  ${`${test.name}${test.shape === "short decimal" ? " (values 1.5)" : ""}`.padEnd(44)}` +
          `  mmapd ${integerText(m.rps).padStart(9)} (${m.cpu.totalUs.toFixed(2)} µs CPU)  Redis ${integerText(r.rps).padStart(9)} (${r.cpu.totalUs.toFixed(2)} µs)`;
        if (test.withOneWorker) {
          const one = await measure(oneWorker, true, shape, test.mmapd, timings);
          runs.oneWorker.push(one);
          line += `  workers=1 ${integerText(one.rps).padStart(9)}`;
        }
        log(line);
      }
    }
  }
  const variant = (args: string[], rounds: RunResult[]): VariantResult => ({
    command: args.length > 8 ? `${args.slice(0, 6).join(" ")} ... (${args.length - 1} arguments)` : args.join(" "),
    rounds,
    median: { ...medianOf(rounds), cpu: medianCpu(rounds.map((r) => r.cpu)) },
  });
  const rows: ResultRow[] = [];
  for (const pipeline of PIPELINES) {
    for (const test of tests) {
      const runs = seen.get(keyOf(test, pipeline))!;
      const m = variant(test.mmapd, runs.mmapd);
      const r = variant(test.redis, runs.redis);
      rows.push({
        test: test.name,
        shape: test.shape,
        pipeline,
        requests: requestsFor(settings, test, pipeline),
        goal: goalText(test, pipeline),
        mmapd: m,
        redis: r,
        mmapdOneWorker: test.withOneWorker ? variant(test.mmapd, runs.oneWorker) : null,
        ratio: m.median.rps / r.median.rps,
        cpuRatio: m.median.cpu.totalUs / r.median.cpu.totalUs,
      });
    }
  }
  return rows;
}
