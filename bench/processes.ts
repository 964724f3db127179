/**
 * The processes and temporary directories one benchmark run owns: mmapd and redis-server started
 * on free loopback ports, the redis-benchmark children, and their data directories. `cleanUp()`
 * stops and removes all of them; it is called on success, on error and on SIGINT / SIGTERM.
 */
import { rememberShardWorkers } from "./cpu.ts";
import { spawn, spawnSync, type Subprocess } from "bun";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ErrorReply, RespClient } from "./resp_client.ts";

const ROOT = path.resolve(import.meta.dir, "..");
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** Output kept per server for error messages; older text is dropped. */
const OUTPUT_KEEP_CHARS = 64 * 1024;

const ownedProcesses = new Set<Subprocess>();
const ownedDirs = new Set<string>();

export interface RunningServer {
  label: string;
  port: number;
  pid: number;
  dir: string;
  proc: Subprocess;
  /** The last things the server printed. */
  output(): string;
}

export interface RunningMmapd extends RunningServer {
  workers: number;
}

/** Makes a temporary directory that `cleanUp()` removes. */
export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  ownedDirs.add(dir);
  return dir;
}

/** A loopback port that was free a moment ago. */
function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/** Starts a child process that `cleanUp()` stops; the caller removes it with `release()` once it has ended. */
export function spawnOwned(command: string[], options: Parameters<typeof spawn>[1] = {}): Subprocess {
  const proc = spawn(command, options);
  ownedProcesses.add(proc);
  return proc;
}

export function release(proc: Subprocess): void {
  ownedProcesses.delete(proc);
}

/** Collects a process's stdout and stderr into a bounded text, so its pipes never fill up. */
function captureOutput(proc: Subprocess): () => string {
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      if (text.length > 2 * OUTPUT_KEEP_CHARS) text = text.slice(-OUTPUT_KEEP_CHARS);
    }
  };
  if (proc.stdout instanceof ReadableStream) void pump(proc.stdout);
  if (proc.stderr instanceof ReadableStream) void pump(proc.stderr);
  return () => text;
}

/** Starts `bun server.ts --port 0 --dir <dir>` and waits for its "Ready to accept connections" line. */
export async function startMmapd(label: string, dir: string, extraArgs: string[] = []): Promise<RunningMmapd> {
  const proc = spawnOwned([process.execPath, path.join(ROOT, "server.ts"), "--port", "0", "--dir", dir, ...extraArgs], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const output = captureOutput(proc);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const ready = /Ready to accept connections tcp on [^\s,]+:(\d+).*workers=(\d+)/.exec(output());
    if (ready) {
      rememberShardWorkers(proc.pid);
      return { label, port: Number(ready[1]), workers: Number(ready[2]), pid: proc.pid, dir, proc, output };
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${label} did not start (exit code ${proc.exitCode ?? "none, timed out"}):\n${output()}`);
    }
    await Bun.sleep(20);
  }
}

/** Starts redis-server on a free loopback port with persistence off, and waits until it answers PING. */
export async function startRedis(label: string, dir: string): Promise<RunningServer> {
  const port = freePort();
  const proc = spawnOwned(
    ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no"],
    { cwd: dir, stdout: "pipe", stderr: "pipe" },
  );
  const output = captureOutput(proc);
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`${label} did not start (exit code ${proc.exitCode ?? "none, timed out"}):\n${output()}`);
    }
    const client = await RespClient.connect(port).catch(() => null);
    if (client !== null) {
      const reply = await client.command("PING").catch((e: Error) => new ErrorReply(e.message));
      client.close();
      if (reply === "PONG") return { label, port, pid: proc.pid, dir, proc, output };
    }
    await Bun.sleep(50);
  }
}

/** A memory figure of a process from /proc/PID/status in KiB (VmRSS: resident set; RssFile: its file-backed part), or null where /proc has none. */
export function residentKiB(pid: number, field: "VmRSS" | "RssFile" | "RssAnon" = "VmRSS"): number | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** Whether a program is on the PATH. */
export function onPath(program: string): boolean {
  return spawnSync(["sh", "-c", `command -v ${program}`]).exitCode === 0;
}

async function stop(proc: Subprocess): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await proc.exited;
    clearTimeout(timer);
  }
  ownedProcesses.delete(proc);
}

let cleaning: Promise<void> | null = null;

/** Stops every owned process (SIGTERM, then SIGKILL after 10 s) and removes every owned directory. */
export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...ownedProcesses].map(stop));
    for (const dir of ownedDirs) fs.rmSync(dir, { recursive: true, force: true });
    ownedDirs.clear();
  })();
  return cleaning;
}
