/**
 * A protocol fuzzer against a real server: 100,000 frames from a fixed seed, in short sessions on
 * four connections at a time: random bytes, valid commands with random argument counts and values
 * (every command of the command table but SHUTDOWN and CONFIG SET), mutations of valid commands, huge or malformed
 * declared lengths, and inline commands, each session's bytes cut at random points. Afterwards
 * the server must answer PING on a new connection, must not have reported an internal error, its
 * RSS must have stayed bounded, read-only bound files must be unchanged, a writable key written
 * only by the test (interleaved with the fuzz) must hold exactly what the test wrote, and nothing
 * may have been created outside the data directory.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { call, ErrorReply, RespClient } from "../../bench/resp_client.ts";
import { SHARD_COMMANDS } from "../../core/commands.ts";
import { COMMANDS } from "../../server/command_table.ts";
import { seededRandom } from "../helpers/random.ts";
import { startServer, tempDir, type TestServer } from "../helpers/server.ts";

const SEED = 0x6d6d6170; // "mmap"
const FRAMES = 100_000;
const PARALLEL_SESSIONS = 4;
const TIME_BUDGET_MS = 60_000;
/**
 * RSS the server may reach while fuzzed: its baseline with two shards is about 60 MB, and no frame
 * may make it hold much more (a `$536870912` header once cost 512 MB and seconds of stall).
 */
const RSS_LIMIT_KB = 256 * 1024;

/** mulberry32: a small, fast, seedable generator; the same seed gives the same frames. */
class Random {
  private readonly draw: () => number;
  constructor(seed: number) {
    this.draw = seededRandom(seed);
  }
  next(): number {
    return this.draw();
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// Names the fuzzer must never produce: the files and keys whose content the test checks.
const PROTECTED = ["rodata", "tracked"];

/**
 * The command names the fuzzer sends, from the command table: every client command but SHUTDOWN
 * (it would stop the server under test; CONFIG SET is dropped frame by frame below), the shard's
 * internal commands (clients must be refused them), and names no table has.
 */
const COMMAND_NAMES = [
  ...COMMANDS.filter((c) => c.name !== "shutdown").map((c) => c.name.toUpperCase()),
  ...SHARD_COMMANDS.filter((c) => c.internal).map((c) => c.name.toUpperCase()),
  "NOSUCH",
  "VGETX",
];
/** Subcommands by container command (CLIENT, CONFIG, COMMAND ...), from the table, with an unknown one. */
const SUBCOMMANDS = new Map(
  COMMANDS.filter((c) => c.subcommands !== undefined).map((c) => [
    c.name.toUpperCase(),
    [...c.subcommands!.map((sub) => sub.name.toUpperCase()).filter((sub) => !(c.name === "config" && sub === "SET")), "x"],
  ]),
);
const KEYS = ["k", "k1", "k2", "fz", "fz:2", "{t}a", "{t}b", "", "\u0000", "é", "x".repeat(300), "k\r\n"];
const PATHS = [
  "fz.f64",
  "fz2.i32",
  "fz3.s",
  "sub/fz.bin",
  "../up.f64",
  "../../etc/passwd",
  "/etc/passwd",
  "/dev/zero",
  "/proc/self/mem",
  "",
  ".",
  "..",
  "/",
  "bindings.log",
  "a".repeat(300),
  "x\r\ny.f64",
  "nul\u0000byte",
  "fz.f64/child",
  "dir/",
  "fifo",
  "./fz.f64",
];
const TYPES = [
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
  "float",
  "float32",
  "double",
  "float64",
  "long_double",
  "string",
  "STRING",
  "Double",
  "int128",
  "",
];
const NUMBERS = [
  "0",
  "1",
  "-1",
  "2",
  "7",
  "8",
  "16",
  "127",
  "128",
  "255",
  "256",
  "-129",
  "65535",
  "2147483647",
  "-2147483648",
  "4294967296",
  "9223372036854775807",
  "-9223372036854775808",
  "18446744073709551615",
  "18446744073709551616",
  "000000004711",
  "1e3",
  "0x10",
  "+5",
  "-0",
  "3.14",
  "-2.5e-300",
  "1e400",
  "nan",
  "NaN",
  "inf",
  "-inf",
  "Infinity",
  " 1",
  "1 ",
  "99999999999999999999999",
  "0.1",
  "1e-45",
  "3.4028235e38",
  "3.5e38",
];
const WORDS = [
  "WRITABLE",
  "writable",
  "RAW",
  "MATCH",
  "COUNT",
  "TYPE",
  "AUTH",
  "SETNAME",
  "default",
  "GET",
  "ID",
  "LIST",
  "INFO",
  "GETNAME",
  "NOSAVE",
  "REDUCE",
  "FP32",
  "VALUES",
  "*",
  "?",
  "[a-",
  "\\",
  "mmap",
  "none",
  "3",
  "2",
  "keyspace",
  "shards",
  "DOCS",
  "maxclients",
  "dir",
  "port",
];

function randomArgument(r: Random): Buffer {
  switch (r.int(7)) {
    case 0:
    case 1:
      return Buffer.from(r.pick(KEYS));
    case 2:
    case 3:
      return Buffer.from(r.chance(0.8) ? r.pick(NUMBERS) : String(r.int(2000) - 1000));
    case 4:
      return Buffer.from(r.chance(0.5) ? r.pick(TYPES) : r.pick(WORDS));
    case 5:
      return Buffer.from(r.pick(PATHS));
    default:
      return r.bytes(r.int(40));
  }
}

/** A RESP array of bulk strings. */
function encode(args: Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) parts.push(Buffer.from(`$${a.length}\r\n`), a, Buffer.from("\r\n"));
  return Buffer.concat(parts);
}

/** A command with a random argument count and random values (name in random case at times). */
function validCommand(r: Random): Buffer {
  const command = r.pick(COMMAND_NAMES);
  let name = command;
  if (r.chance(0.2)) name = [...name].map((c) => (r.chance(0.5) ? c.toLowerCase() : c)).join("");
  const args: Buffer[] = [Buffer.from(name)];
  const subcommands = SUBCOMMANDS.get(command);
  if (subcommands !== undefined) args.push(Buffer.from(r.pick(subcommands)));
  const count = r.chance(0.1) ? r.int(60) : r.int(7);
  for (let i = 0; i < count; i++) args.push(randomArgument(r));
  return encode(args);
}

/** A valid command with one to four byte-level mutations. */
function mutatedCommand(r: Random): Buffer {
  let b = validCommand(r);
  for (let n = 1 + r.int(4); n > 0; n--) {
    const at = r.int(b.length + 1);
    switch (r.int(6)) {
      case 0:
        if (b.length > 0) b[Math.min(at, b.length - 1)] = r.int(256);
        break;
      case 1:
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.from(r.pick(["\r", "\n", "\r\n", "*", "$", "-", "0", "9", "\0", " ", '"'])),
          b.subarray(at),
        ]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(8)))]);
        break;
      case 3:
        b = b.subarray(0, at);
        break;
      case 4: {
        const text = b
          .toString("latin1")
          .replace(/\$(\d+)/, () => `$${r.pick(["0", "1", "99", "65536", "4294967297", "-1", "536870912"])}`);
        b = Buffer.from(text, "latin1");
        break;
      }
      default:
        b = Buffer.concat([b, b.subarray(at, at + r.int(32))]);
    }
  }
  return b;
}

/** Declared lengths that are huge, negative, not numbers, or lie about what follows. */
function hugeLengths(r: Random): Buffer {
  const count = r.pick([
    "2147483647",
    "2147483648",
    "9999999999999999999",
    "-1",
    "-2147483649",
    "0",
    "1e9",
    "00000003",
    " 3",
    "3 ",
    "",
    "+3",
    "abc",
  ]);
  const length = r.pick(["536870912", "536870913", "2147483647", "99999999999", "-1", "-100", "1e9", "", "4 ", "0004", "65536", "1048576"]);
  switch (r.int(4)) {
    case 0:
      return Buffer.from(`*${count}\r\n`);
    case 1:
      return Buffer.from(`*1\r\n$${length}\r\n${"x".repeat(r.int(20))}`);
    case 2:
      return Buffer.from(`*2\r\n$4\r\nECHO\r\n$${length}\r\nabc\r\n`);
    default:
      return Buffer.from(`*${count}\r\n$4\r\nPING\r\n`);
  }
}

/** An inline command, quotes and escapes included. */
function inlineCommand(r: Random): Buffer {
  const words = [
    r.pick(COMMAND_NAMES),
    ...Array.from({ length: r.int(5) }, () =>
      r.pick([...KEYS, ...NUMBERS, ...WORDS, '"a b"', "'c'", '"\\x41"', '"unbalanced', "'x", '"a"b']),
    ),
  ];
  return Buffer.from(words.join(r.pick([" ", "  ", "\t"])) + r.pick(["\r\n", "\n", ""]), "latin1");
}

/** One frame of any kind; never one naming a protected file or key, or able to stop the server. */
function frame(r: Random): Buffer {
  for (;;) {
    const kind = r.int(10);
    const b =
      kind < 2
        ? r.bytes(1 + r.int(r.chance(0.1) ? 2000 : 120))
        : kind < 5
          ? validCommand(r)
          : kind < 8
            ? mutatedCommand(r)
            : kind < 9
              ? hugeLengths(r)
              : inlineCommand(r);
    const text = b.toString("latin1");
    const lower = text.toLowerCase();
    if (PROTECTED.some((p) => text.includes(p))) continue;
    if (lower.includes("shutdown") || (lower.includes("config") && lower.includes("set"))) continue;
    return b;
  }
}

/** Resident set size of a process, in kB. */
function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

interface SessionResult {
  replies: string;
  timedOut: boolean;
}

/** Sends `bytes` on a new connection, cut at random points, half-closes, and collects the replies until the server closes. */
function session(port: number, bytes: Buffer, cuts: number[]): Promise<SessionResult> {
  return new Promise((resolve) => {
    let replies = "";
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      let from = 0;
      for (const cut of [...cuts, bytes.length]) {
        socket.write(bytes.subarray(from, cut));
        from = cut;
      }
      socket.end();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ replies, timedOut: true });
    }, 5000);
    socket.on("data", (d: Buffer) => {
      if (replies.length < 1 << 20) replies += d.toString("latin1");
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ replies, timedOut: false });
    });
  });
}

let base: string;
let data: string;
let server: TestServer;

beforeAll(async () => {
  base = fs.realpathSync(tempDir("mmapd-fuzz-"));
  data = path.join(base, "data");
  fs.mkdirSync(path.join(data, "sub"), { recursive: true });
  server = await startServer({ dir: data, args: ["--workers", "2"] });
});

afterAll(async () => {
  await server?.stop();
  fs.rmSync(base, { recursive: true, force: true });
});

test("100,000 fuzzed frames: the server lives, stays small, and bound files change only by valid writes", async () => {
  const r = new Random(SEED);
  // Read-only bindings the fuzzer may read (by other names) but never write.
  const readOnly: Record<string, Buffer> = {
    "rodata1.f64": Buffer.from(new Float64Array(Array.from({ length: 500 }, (_, i) => i * 1.25 - 7)).buffer),
    "rodata2.i32": Buffer.from(new Int32Array(Array.from({ length: 500 }, (_, i) => (i * 7919) | 0)).buffer),
    "rodata3.str": Buffer.from("abcdefgh".repeat(200)),
  };
  for (const [name, bytes] of Object.entries(readOnly)) fs.writeFileSync(path.join(data, name), bytes);
  const control = await RespClient.connect(server.port);
  expect(await call(control, "MMAP", "rodata-a", "rodata1.f64", "double")).toBe(500n);
  expect(await call(control, "MMAP", "rodata-b", "rodata2.i32", "int32")).toBe(500n);
  expect(await call(control, "MMAP", "rodata-c", "rodata3.str", "string", "8")).toBe(200n);

  // The writable key only this test writes; its expected content follows every successful write.
  const tracked: number[] = [];
  async function trackedWrite(): Promise<void> {
    const count = await call(control, "MMAP", "tracked", "tracked.f64"); // FLUSHALL may have unbound it
    expect(count).toBe(BigInt(tracked.length));
    const op = r.int(3);
    const value = Math.round((r.next() - 0.5) * 1e6) / 64;
    if (op === 0 || tracked.length === 0) {
      const reply = await call(control, "VADD", "tracked", String(value));
      if (reply === 1n) tracked.push(value);
      else expect(reply).toBeInstanceOf(ErrorReply);
    } else if (op === 1) {
      const index = r.int(tracked.length);
      const reply = await call(control, "VSET", "tracked", String(index), String(value));
      if (reply === 1n) tracked[index] = value;
      else expect(reply).toBeInstanceOf(ErrorReply);
    } else {
      const reply = await call(control, "VPOP", "tracked");
      if (typeof reply === "string") expect(Number(reply)).toBe(tracked.pop()!);
      else expect(reply).toBeInstanceOf(ErrorReply);
    }
  }

  const baselineRss = rssKb(server.proc.pid);
  let peakRss = baselineRss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssKb(server.proc.pid))), 100);

  const started = performance.now();
  let framesSent = 0;
  let sessions = 0;
  let timedOut = 0;
  let internalErrors = 0;
  let protocolErrors = 0;
  const running = new Set<Promise<void>>();
  while (framesSent < FRAMES) {
    expect(performance.now() - started).toBeLessThan(TIME_BUDGET_MS);
    const count = Math.min(FRAMES - framesSent, 1 + r.int(40));
    const frames = Array.from({ length: count }, () => frame(r));
    framesSent += count;
    const bytes = Buffer.concat(frames);
    const cuts = Array.from({ length: r.int(4) }, () => r.int(bytes.length + 1)).sort((a, b) => a - b);
    const done = session(server.port, bytes, cuts).then((result) => {
      if (result.timedOut) timedOut++;
      if (result.replies.includes("internal error")) internalErrors++;
      if (result.replies.includes("Protocol error")) protocolErrors++;
      running.delete(done);
    });
    running.add(done);
    sessions++;
    if (sessions % 25 === 0) await trackedWrite();
    if (running.size >= PARALLEL_SESSIONS) await Promise.race(running);
  }
  await Promise.all(running);
  const elapsed = performance.now() - started;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, rssKb(server.proc.pid));

  expect(framesSent).toBe(FRAMES);
  expect(elapsed).toBeLessThan(TIME_BUDGET_MS);
  expect(server.proc.exitCode).toBeNull();
  expect(timedOut).toBe(0);
  expect(internalErrors).toBe(0);
  expect(protocolErrors).toBeGreaterThan(100); // the malformed frames did reach the parser
  expect(server.output()).not.toContain("Internal error");
  expect(server.output()).not.toContain("worker died");
  expect(peakRss).toBeLessThan(RSS_LIMIT_KB);

  // A new connection is served.
  const fresh = await RespClient.connect(server.port);
  expect(await call(fresh, "PING")).toBe("PONG");
  fresh.close();

  // Read-only files are byte for byte as they were; the tracked file holds what the test wrote.
  for (const [name, bytes] of Object.entries(readOnly)) expect(fs.readFileSync(path.join(data, name)).equals(bytes)).toBe(true);
  expect(await call(control, "MMAP", "tracked", "tracked.f64")).toBe(BigInt(tracked.length));
  expect([...new Float64Array(new Uint8Array(fs.readFileSync(path.join(data, "tracked.f64"))).buffer)]).toEqual(tracked);
  // Nothing was created outside the data directory.
  expect(fs.readdirSync(base)).toEqual(["data"]);
  control.close();

  console.log(
    `fuzz: ${framesSent} frames in ${sessions} sessions, ${(elapsed / 1000).toFixed(1)} s; ` +
      `${protocolErrors} sessions ended by a protocol error; ${tracked.length} tracked values; ` +
      `RSS ${Math.round(baselineRss / 1024)} MB before, peak ${Math.round(peakRss / 1024)} MB`,
  );
}, 90_000);
