/**
 * Test helpers for process-level tests: start a real mmapd process on a free port with its own
 * data directory, and find the Redis tools. Every server and directory is cleaned up by `stop()`
 * and `cleanup()`. Talking to it: the RESP client in bench/resp_client.ts.
 */
import { spawn, spawnSync, type Subprocess } from "bun";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { shardOf } from "../../core/slots.ts";

const ROOT = path.resolve(import.meta.dir, "../..");

export interface TestServer extends LaunchedServer {
  /** The data directory (a fresh temp directory unless one was given). */
  dir: string;
  /** Kills the server with SIGKILL (a crash) and waits for it. */
  kill9(): Promise<void>;
  /** Removes the data directory (after stop, when the test made it). */
  cleanup(): void;
}

export interface StartOptions {
  /** Extra flags, e.g. ["--workers", "1"]. */
  args?: string[];
  /** Reuse a data directory (for restart tests); otherwise a fresh one is made. */
  dir?: string;
  /** Port to listen on (default: a free one). */
  port?: number;
}

/** A loopback port free right now (for a server that must be started on a known port). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** Makes a fresh temporary directory. */
export function tempDir(prefix = "mmapd-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A running server process: its port, everything it printed, and a clean stop. */
export interface LaunchedServer {
  port: number;
  proc: Subprocess;
  output(): string;
  /** Stops the server with SIGTERM (clean shutdown) and waits for it to exit; returns the exit code. */
  stop(): Promise<number>;
}

/** Starts `bun server.ts` with exactly `args` in `cwd` and resolves once it logs that it is ready. */
export async function launchServer(args: string[], cwd = ROOT): Promise<LaunchedServer> {
  const proc = spawn([process.execPath, path.join(ROOT, "server.ts"), ...args], { cwd, stdout: "pipe", stderr: "pipe" });
  let text = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk);
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>);
  void pump(proc.stderr as ReadableStream<Uint8Array>);
  const deadline = Date.now() + 20_000;
  let port = 0;
  while (port === 0) {
    const m = /Ready to accept connections tcp on [^\s]+:(\d+)/.exec(text);
    if (m) port = Number(m[1]);
    else if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill(9);
      throw new Error(`mmapd did not start (exit ${proc.exitCode}):\n${text}`);
    } else await Bun.sleep(20);
  }
  return {
    port,
    proc,
    output: () => text,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill(9), 10_000);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Starts a server on a free port (unless given) with its own data directory, ready for a test. */
export async function startServer(options: StartOptions = {}): Promise<TestServer> {
  const dir = options.dir ?? tempDir();
  const madeDir = options.dir === undefined;
  const server = await launchServer(["--port", String(options.port ?? 0), "--dir", dir, ...(options.args ?? [])]);
  const proc = server.proc;
  return {
    ...server,
    dir,
    async kill9() {
      proc.kill(9);
      await proc.exited;
    },
    cleanup() {
      if (proc.exitCode === null) proc.kill(9);
      if (madeDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Whether a Redis tool is on the PATH. Without it a test reports itself skipped, naming the apt
 * package; with MMAPD_REQUIRE_TOOLS=1 (set by .ci/run) a missing tool fails the test instead.
 */
export function hasTool(name: string): boolean {
  const found = spawnSync(["sh", "-c", `command -v ${name}`]).exitCode === 0;
  if (!found && process.env.MMAPD_REQUIRE_TOOLS === "1") {
    throw new Error(`${name} is required (apt-get install -y ${name === "redis-server" ? "redis-server" : "redis-tools"})`);
  }
  return found;
}

/** Runs redis-cli against a port; returns stdout (trimmed of the final newline). */
export function redisCli(port: number, ...args: string[]): string {
  const r = spawnSync(["redis-cli", "-p", String(port), ...args]);
  return r.stdout.toString().replace(/\n$/, "");
}

/** Writes values into a new file with a DataView, little-endian: for interop tests. */
export function writeRawFile(file: string, width: number, values: number[], put: (v: DataView, at: number, x: number) => void): void {
  const buf = new ArrayBuffer(values.length * width);
  const view = new DataView(buf);
  for (const [i, x] of values.entries()) put(view, i * width, x);
  fs.writeFileSync(file, new Uint8Array(buf));
}

/** The shard, of `workers`, that owns `key`: where the server routes it. */
export function shardOfKey(key: string, workers: number): number {
  const bytes = Buffer.from(key);
  return shardOf(bytes, 0, bytes.length, workers);
}

/** The first key `prefix<n>` (n = 0, 1, ...) that lives on `shard` of `workers`. */
export function keyOnShard(prefix: string, shard: number, workers: number): string {
  for (let n = 0; ; n++) if (shardOfKey(`${prefix}${n}`, workers) === shard) return `${prefix}${n}`;
}
