/**
 * Test helpers: start a real mmapd process on a free port with its own data directory, talk to
 * it over raw TCP, and find the Redis tools. Every server and directory is cleaned up by `stop()`.
 */
import { spawn, spawnSync, type Subprocess } from "bun";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

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

/** Encodes a command as a RESP array of bulk strings. */
export function resp(...args: (string | Uint8Array)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === "string" ? Buffer.from(a) : Buffer.from(a);
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/**
 * A raw TCP connection: write bytes, read until a number of bytes (or a predicate) is satisfied.
 * Used for byte-exact protocol tests.
 */
export class RawClient {
  private buffer: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => {});
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(new RawClient(s)));
      s.once("error", reject);
    });
  }

  write(bytes: string | Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Resolves with the bytes received once `done(buffer)` holds (or the socket closes, or 10 s pass). */
  async readUntil(done: (b: Buffer) => boolean, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.buffer) && !this.closed && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const out = this.buffer;
    this.buffer = Buffer.alloc(0);
    return out;
  }

  /** Reads exactly `n` bytes (or what came before close/timeout). */
  async read(n: number, timeoutMs?: number): Promise<Buffer> {
    const all = await this.readUntil((b) => b.length >= n, timeoutMs);
    if (all.length > n) this.buffer = Buffer.concat([all.subarray(n), this.buffer]);
    return all.subarray(0, n);
  }

  /** Reads `count` whole RESP replies (or what came before close/timeout), leaving later bytes buffered. */
  async readReplies(count: number, timeoutMs?: number): Promise<Buffer> {
    const endOf = (b: Buffer) => {
      let at = 0;
      for (let k = 0; k < count && at >= 0; k++) at = replyEnd(b, at);
      return at;
    };
    const all = await this.readUntil((b) => endOf(b) >= 0, timeoutMs);
    const end = endOf(all);
    if (end < 0) return all;
    this.buffer = Buffer.concat([all.subarray(end), this.buffer]);
    return all.subarray(0, end);
  }

  /** Sends bytes and reads until the reply has `expected.length` bytes; returns it as a string. */
  async roundTrip(bytes: string | Uint8Array, expectedLength: number): Promise<string> {
    this.write(bytes);
    return (await this.read(expectedLength)).toString("latin1");
  }

  /** Resolves once the server has closed the connection. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    await this.readUntil(() => false, timeoutMs).then((b) => {
      this.buffer = b;
    });
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * The offset just past the RESP2/RESP3 reply that starts at `at` in `b`, or -1 while it is
 * incomplete. Aggregates count their elements (maps two per entry).
 */
export function replyEnd(b: Uint8Array, at: number): number {
  if (at >= b.length) return -1;
  let lf = at;
  while (lf < b.length && b[lf] !== 10) lf++;
  if (lf >= b.length) return -1;
  const type = String.fromCharCode(b[at]!);
  const n = Number(Buffer.from(b.subarray(at + 1, lf - 1)).toString("latin1"));
  let end = lf + 1;
  switch (type) {
    case "$":
    case "=":
    case "!":
      if (n < 0) return end;
      return end + n + 2 <= b.length ? end + n + 2 : -1;
    case "*":
    case "~":
    case ">":
    case "%": {
      const elements = type === "%" ? 2 * n : n;
      for (let k = 0; k < elements && end >= 0; k++) end = replyEnd(b, end);
      return end;
    }
    default:
      return end;
  }
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
  values.forEach((x, i) => put(view, i * width, x));
  fs.writeFileSync(file, new Uint8Array(buf));
}

/** A decoded reply: integers as bigint (exact), simple and bulk strings as latin1 text (one char per byte), nil as null. */
export type Reply = string | bigint | null | ReplyError | Reply[];

/** An error reply, kept as a value so that a pipeline's replies decode in one pass. */
export class ReplyError {
  constructor(readonly message: string) {}
}

/**
 * Decodes the RESP2/RESP3 reply that starts at `at` in `b`: the reply and the offset just past
 * it, or null while it is incomplete. RESP3 doubles and big numbers come back as their text,
 * booleans as 1n/0n, maps and sets as flat arrays.
 */
export function decodeReply(b: Uint8Array, at = 0): { reply: Reply; end: number } | null {
  if (at >= b.length) return null;
  let lf = at;
  while (lf < b.length && b[lf] !== 10) lf++;
  if (lf >= b.length) return null;
  const line = Buffer.from(b.buffer, b.byteOffset + at + 1, lf - 1 - (at + 1)).toString("latin1");
  const end = lf + 1;
  switch (String.fromCharCode(b[at]!)) {
    case "+":
    case ",":
    case "(":
      return { reply: line, end };
    case "-":
      return { reply: new ReplyError(line), end };
    case ":":
      return { reply: BigInt(line), end };
    case "#":
      return { reply: line === "t" ? 1n : 0n, end };
    case "_":
      return { reply: null, end };
    case "$":
    case "=":
    case "!": {
      const n = Number(line);
      if (n < 0) return { reply: null, end };
      if (end + n + 2 > b.length) return null;
      const text = Buffer.from(b.buffer, b.byteOffset + end, n).toString("latin1");
      return { reply: b[at] === 33 ? new ReplyError(text) : text, end: end + n + 2 };
    }
    case "*":
    case "~":
    case ">":
    case "%": {
      const n = Number(line);
      if (n < 0) return { reply: null, end };
      const items: Reply[] = [];
      let p = end;
      for (let k = 0; k < (b[at] === 37 ? 2 * n : n); k++) {
        const item = decodeReply(b, p);
        if (item === null) return null;
        items.push(item.reply);
        p = item.end;
      }
      return { reply: items, end: p };
    }
    default:
      throw new Error(`not a RESP reply at offset ${at}: ${JSON.stringify(line.slice(0, 40))}`);
  }
}

/** Sends one command on a RawClient and decodes its reply. */
export async function call(c: RawClient, ...args: string[]): Promise<Reply> {
  c.write(resp(...args));
  const bytes = await c.readReplies(1);
  const decoded = decodeReply(bytes);
  if (decoded === null) throw new Error(`no whole reply to ${args[0]} (got ${JSON.stringify(bytes.toString("latin1").slice(0, 80))})`);
  return decoded.reply;
}
