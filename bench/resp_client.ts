/**
 * The one RESP client of the benchmark and the tests: a raw TCP connection that sends commands
 * as RESP arrays and reads replies as bytes (for byte-exact checks) or decoded (RESP2 and RESP3),
 * one at a time or pipelined. It speaks to mmapd and to Redis alike, so the benchmark prepares
 * and verifies both with the same code.
 */
import net from "node:net";

/** An error reply (`-ERR ...`), kept as a value so that a pipeline's replies decode in one pass. */
export class ErrorReply {
  constructor(readonly message: string) {}
  toString(): string {
    return this.message;
  }
}

/**
 * A decoded reply: simple and bulk strings as latin1 text (one char per byte), integers as
 * numbers or, decoded exactly, as bigint; nil as null; RESP3 doubles and big numbers as their
 * text, booleans as 1/0, maps and sets as flat arrays.
 */
export type Reply = string | number | bigint | null | ErrorReply | Reply[];

/** How integer replies decode: JavaScript numbers (exact up to 2^53), or bigint (always exact). */
type IntegerForm = "number" | "bigint";

const REPLY_TIMEOUT_MS = 60_000;

/** Encodes a command as a RESP array of bulk strings (strings in UTF-8). */
export function resp(...args: (string | Uint8Array)[]): Buffer {
  if (args.every((a) => typeof a === "string")) {
    // One string, one Buffer: the benchmark encodes a million commands to load a server.
    let text = `*${args.length}\r\n`;
    for (const a of args as string[]) text += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    return Buffer.from(text);
  }
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === "string" ? Buffer.from(a) : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
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
 * Decodes the RESP2/RESP3 reply that starts at `at` in `b`: the reply and the offset just past
 * it, or null while it is incomplete.
 */
export function decodeReply(b: Uint8Array, at = 0, integers: IntegerForm = "bigint"): { reply: Reply; end: number } | null {
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
      return { reply: new ErrorReply(line), end };
    case ":":
      return { reply: integers === "bigint" ? BigInt(line) : Number(line), end };
    case "#":
      return { reply: integers === "bigint" ? (line === "t" ? 1n : 0n) : line === "t" ? 1 : 0, end };
    case "_":
      return { reply: null, end };
    case "$":
    case "=":
    case "!": {
      const n = Number(line);
      if (n < 0) return { reply: null, end };
      if (end + n + 2 > b.length) return null;
      const text = Buffer.from(b.buffer, b.byteOffset + end, n).toString("latin1");
      return { reply: b[at] === 33 ? new ErrorReply(text) : text, end: end + n + 2 };
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
        const item = decodeReply(b, p, integers);
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

export class RespClient {
  private buffer: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  /** True once the server (or `close`) has closed the connection. */
  closed = false;
  private failure: Error | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => {
      this.buffer = this.buffer.length === 0 ? d : Buffer.concat([this.buffer, d]);
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", (e) => {
      this.failure = e;
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Connects to `host:port` (the loopback address unless told). */
  static connect(port: number, host = "127.0.0.1"): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => {
        socket.off("error", reject);
        resolve(new RespClient(socket));
      });
      socket.once("error", reject);
    });
  }

  write(bytes: string | Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Resolves with the bytes received once `done(buffer)` holds (or the socket closes, or the time is up). */
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

  /** Reads exactly `n` bytes (or what came before close or timeout). */
  async read(n: number, timeoutMs?: number): Promise<Buffer> {
    const all = await this.readUntil((b) => b.length >= n, timeoutMs);
    if (all.length > n) this.buffer = Buffer.concat([all.subarray(n), this.buffer]);
    return all.subarray(0, n);
  }

  /** Reads `count` whole replies (or what came before close or timeout), leaving later bytes buffered. */
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

  /** Sends bytes and reads `expectedLength` bytes back, as latin1 text. */
  async roundTrip(bytes: string | Uint8Array, expectedLength: number): Promise<string> {
    this.write(bytes);
    return (await this.read(expectedLength)).toString("latin1");
  }

  /** Resolves once the server has closed the connection (true), or after `timeoutMs` (false). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    this.buffer = await this.readUntil(() => false, timeoutMs);
    return this.closed;
  }

  /** Sends one command; its whole reply as latin1 text, for byte-exact checks. */
  async text(...args: (string | Uint8Array)[]): Promise<string> {
    this.write(resp(...args));
    return (await this.readReplies(1)).toString("latin1");
  }

  /** Sends commands in one write; the bytes of their replies, in order. */
  async replies(commands: (string | Uint8Array)[][], timeoutMs = 30_000): Promise<Buffer> {
    this.write(Buffer.concat(commands.map((c) => resp(...c))));
    return this.readReplies(commands.length, timeoutMs);
  }

  /** Sends one command and decodes its reply, integers as numbers (an error reply is returned, not thrown). */
  command(...args: string[]): Promise<Reply> {
    return this.decoded(args, "number");
  }

  /** Sends one command and decodes its reply, integers in the form asked for. */
  async decoded(args: (string | Uint8Array)[], integers: IntegerForm): Promise<Reply> {
    this.write(resp(...args));
    const bytes = await this.readReplies(1, REPLY_TIMEOUT_MS);
    const decoded = decodeReply(bytes, 0, integers);
    if (decoded === null) {
      if (this.failure !== null) throw this.failure;
      if (this.closed) throw new Error("the server closed the connection");
      throw new Error(`no whole reply to ${String(args[0])} (got ${JSON.stringify(bytes.toString("latin1").slice(0, 80))})`);
    }
    return decoded.reply;
  }

  /** Sends one command and returns its reply; an error reply is thrown, naming the command. */
  async expect(...args: string[]): Promise<Reply> {
    const reply = await this.command(...args);
    if (reply instanceof ErrorReply) throw new Error(`${args.slice(0, 3).join(" ")}: ${reply.message}`);
    return reply;
  }

  /** Sends commands in batches of `batchSize` without waiting in between; counts the replies and returns the errors. */
  async pipeline(commands: Iterable<string[]>, batchSize = 10_000): Promise<{ replies: number; errors: ErrorReply[] }> {
    let replies = 0;
    const errors: ErrorReply[] = [];
    let batch: string[][] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const bytes = await this.replies(batch, REPLY_TIMEOUT_MS);
      for (let at = 0, k = 0; k < batch.length; k++) {
        const decoded = decodeReply(bytes, at, "number");
        if (decoded === null)
          throw new Error(this.closed ? "the server closed the connection" : `no reply within ${REPLY_TIMEOUT_MS / 1000} s`);
        if (decoded.reply instanceof ErrorReply) errors.push(decoded.reply);
        at = decoded.end;
      }
      replies += batch.length;
      batch = [];
    };
    for (const args of commands) {
      batch.push(args);
      if (batch.length === batchSize) await flush();
    }
    await flush();
    return { replies, errors };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Sends one command and decodes its reply with exact (bigint) integers: the tests' usual call. */
export function call(c: RespClient, ...args: (string | Uint8Array)[]): Promise<Reply> {
  return c.decoded(args, "bigint");
}
