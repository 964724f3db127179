/**
 * How the server reads a request stream over a real socket: a long pipeline across both shards
 * answered in order however it is cut, inline commands with quotes and escapes, and protocol
 * errors answered with Redis's text before the connection is closed, leaving others unaffected.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import net from "node:net";
import path from "node:path";
import { RespClient, replyEnd, resp } from "../../bench/resp_client.ts";
import { shardOfKey, startServer, type TestServer, writeRawFile } from "../helpers/server.ts";

setDefaultTimeout(30_000);

const WORKERS = 2;
const SLOTS = 100;

let server: TestServer;
/** One key owned by each shard. */
const keyOfShard: string[] = [];

const shardOf = (key: string) => shardOfKey(key, WORKERS);

for (let i = 0; keyOfShard.filter((k) => k !== undefined).length < WORKERS; i++) {
  const key = `pipe${i}`;
  keyOfShard[shardOf(key)] ??= key;
}

beforeAll(async () => {
  // Byte-exact limits small enough to test: a 1 KiB bulk limit.
  server = await startServer({ args: ["--workers", String(WORKERS), "--proto-max-bulk-len", "1024"] });
  const c = await RespClient.connect(server.port);
  try {
    for (const key of keyOfShard) {
      writeRawFile(path.join(server.dir, `${key}.i64`), 8, new Array(SLOTS).fill(0), (v, at, x) => v.setBigInt64(at, BigInt(x), true));
      c.write(resp("MMAP", key, `${key}.i64`, "int64", "WRITABLE"));
    }
    expect((await c.readReplies(WORKERS)).toString()).toBe(`:${SLOTS}\r\n`.repeat(WORKERS));
  } finally {
    c.close();
  }
});

afterAll(async () => {
  await server.stop();
  server.cleanup();
});

/**
 * A deterministic mix of PING, ECHO, VSET and VGET on keys of every shard, with the replies a
 * model predicts and the number of commands each shard must run.
 */
function pipeline(count: number): { request: Buffer; expected: Buffer; perShard: number[] } {
  const values = keyOfShard.map(() => new Array<number>(SLOTS).fill(0));
  const requests: Buffer[] = [];
  const replies: string[] = [];
  const perShard = keyOfShard.map(() => 0);
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    // The low bits of this generator repeat quickly; the high ones do not.
    return Math.floor(seed / 65536) % n;
  };
  for (let i = 0; i < count; i++) {
    const shard = random(WORKERS);
    const key = keyOfShard[shard]!;
    const index = random(SLOTS);
    switch (random(4)) {
      case 0:
        requests.push(resp("PING"));
        replies.push("+PONG\r\n");
        break;
      case 1: {
        const text = `m${i}`;
        requests.push(resp("ECHO", text));
        replies.push(`$${text.length}\r\n${text}\r\n`);
        break;
      }
      case 2: {
        const value = random(2_000_000) - 1_000_000;
        values[shard]![index] = value;
        perShard[shard]!++;
        requests.push(resp("VSET", key, String(index), String(value)));
        replies.push(":1\r\n");
        break;
      }
      default:
        perShard[shard]!++;
        requests.push(resp("VGET", key, String(index)));
        replies.push(`:${values[shard]![index]}\r\n`);
    }
  }
  // Leave the files as they were for the next run of the same pipeline.
  for (let s = 0; s < WORKERS; s++) {
    for (let index = 0; index < SLOTS; index++) {
      if (values[s]![index] !== 0) {
        perShard[s]!++;
        requests.push(resp("VSET", keyOfShard[s]!, String(index), "0"));
        replies.push(":1\r\n");
      }
    }
  }
  return { request: Buffer.concat(requests), expected: Buffer.from(replies.join("")), perShard };
}

/** Each shard's count of commands run, from INFO shards. */
async function shardCommands(c: RespClient): Promise<number[]> {
  c.write(resp("INFO", "shards"));
  const info = (await c.readReplies(1)).toString();
  return keyOfShard.map((_, s) => Number(new RegExp(`shard${s}:alive=1,commands=(\\d+)`).exec(info)?.[1]));
}

describe("a pipeline of 10,000 commands on both shards", () => {
  const { request, expected, perShard } = pipeline(10_000);

  test("each shard runs exactly the pipeline's commands on its keys; the others run on the main thread", async () => {
    // The pipeline mixes every command kind on both shards.
    const text = request.toString();
    const count = (needle: string) => text.split(needle).length - 1;
    for (const key of keyOfShard) expect(count(`$${key.length}\r\n${key}\r\n`)).toBeGreaterThan(2000);
    for (const name of ["PING", "ECHO", "VSET", "VGET"]) expect(count(`\r\n${name}\r\n`)).toBeGreaterThan(2000);

    const c = await RespClient.connect(server.port);
    try {
      const before = await shardCommands(c);
      expect(before.every((n) => n >= 0)).toBe(true);
      c.write(request);
      expect((await c.read(expected.length, 30_000)).equals(expected)).toBe(true);
      const after = await shardCommands(c);
      expect(after.map((n, s) => n - before[s]!)).toEqual(perShard);
    } finally {
      c.close();
    }
  });

  test("written in one chunk: replies in order", async () => {
    const c = await RespClient.connect(server.port);
    try {
      c.write(request);
      const got = await c.read(expected.length, 30_000);
      expect(got.length).toBe(expected.length);
      expect(got.equals(expected)).toBe(true);
    } finally {
      c.close();
    }
  });

  test("written in 1-byte chunks: the same replies", async () => {
    const c = await RespClient.connect(server.port);
    try {
      c.socket.setNoDelay(true);
      for (let i = 0; i < request.length; i++) c.write(request.subarray(i, i + 1));
      const got = await c.read(expected.length, 60_000);
      expect(got.length).toBe(expected.length);
      expect(got.equals(expected)).toBe(true);
    } finally {
      c.close();
    }
  });

  test("a short pipeline sent one byte per read: the same replies as in one chunk", async () => {
    // Each byte waits for the previous one to leave, so the server's reads hold one byte each.
    const short = pipeline(30);
    const c = await RespClient.connect(server.port);
    try {
      c.socket.setNoDelay(true);
      for (let i = 0; i < short.request.length; i++) {
        await new Promise<void>((resolve) => c.socket.write(short.request.subarray(i, i + 1), () => resolve()));
        await Bun.sleep(1);
      }
      const got = await c.read(short.expected.length);
      expect(got.toString()).toBe(short.expected.toString());
    } finally {
      c.close();
    }
  });
});

describe("inline commands", () => {
  const cases: [string, string, string][] = [
    ["PING", "PING\r\n", "+PONG\r\n"],
    ["a bare LF ends the line", "PING\n", "+PONG\r\n"],
    ["lowercase with extra spaces", "  ping   \r\n", "+PONG\r\n"],
    ["double quotes keep spaces", 'ECHO "a b"\r\n', "$3\r\na b\r\n"],
    ["single quotes keep spaces", "ECHO 'a b'\r\n", "$3\r\na b\r\n"],
    ["escapes in double quotes", 'ECHO "tab\\there\\n\\x41\\\\\\""\r\n', '$12\r\ntab\there\nA\\"\r\n'],
    ["an escaped quote in single quotes", "ECHO 'it\\'s'\r\n", "$4\r\nit's\r\n"],
    ["an empty quoted argument", 'ECHO ""\r\n', "$0\r\n\r\n"],
    ["empty lines are skipped", "\r\n\r\nPING\r\n", "+PONG\r\n"],
    ["several on one write", "PING\r\nECHO x\r\nPING hi\r\n", "+PONG\r\n$1\r\nx\r\n$2\r\nhi\r\n"],
    ["mixed with RESP", `PING\r\n${resp("ECHO", "r")}ECHO i\r\n`, "+PONG\r\n$1\r\nr\r\n$1\r\ni\r\n"],
    ["an unknown inline command", "NOPE a b\r\n", "-ERR unknown command 'NOPE', with args beginning with: 'a' 'b' \r\n"],
  ];
  for (const [name, request, reply] of cases) {
    test(name, async () => {
      const c = await RespClient.connect(server.port);
      try {
        expect(await c.roundTrip(request, reply.length)).toBe(reply);
        // The connection stays usable.
        expect(await c.roundTrip("PING\r\n", 7)).toBe("+PONG\r\n");
      } finally {
        c.close();
      }
    });
  }

  test("an inline VGET reaches the shard", async () => {
    const c = await RespClient.connect(server.port);
    try {
      expect(await c.roundTrip(`VSET ${keyOfShard[1]} 7 -42\r\nVGET ${keyOfShard[1]} 000000000007\r\n`, 10)).toBe(":1\r\n:-42\r\n");
      expect(await c.roundTrip(`VSET ${keyOfShard[1]} 7 0\r\n`, 4)).toBe(":1\r\n");
    } finally {
      c.close();
    }
  });
});

describe("protocol errors: answered, then the connection is closed", () => {
  const cases: [string, string | Buffer, string][] = [
    ["a non-numeric multibulk length", "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"],
    ["a non-numeric bulk length", "*3\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"],
    ["a negative bulk length", "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"],
    ["a bulk over proto-max-bulk-len", "*2\r\n$4\r\nECHO\r\n$1025\r\n", "-ERR Protocol error: invalid bulk length\r\n"],
    ["something other than a bulk", "*1\r\n:1\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"],
    ["unbalanced quotes", 'ECHO "abc\r\n', "-ERR Protocol error: unbalanced quotes in request\r\n"],
    ["a closing quote not followed by a space", 'ECHO "a"b\r\n', "-ERR Protocol error: unbalanced quotes in request\r\n"],
  ];
  // These are refused while their line is still open, so nothing may follow them in the stream.
  const unterminated: [string, string | Buffer, string][] = [
    ["a too big inline request", Buffer.alloc(70 * 1024, "a"), "-ERR Protocol error: too big inline request\r\n"],
    [
      "a too big multibulk count line",
      Buffer.concat([Buffer.from("*"), Buffer.alloc(70 * 1024, "1")]),
      "-ERR Protocol error: too big mbulk count string\r\n",
    ],
    [
      "a too big bulk length line",
      Buffer.concat([Buffer.from("*1\r\n$"), Buffer.alloc(70 * 1024, "1")]),
      "-ERR Protocol error: too big bulk count string\r\n",
    ],
  ];
  for (const [name, request, reply] of [...cases, ...unterminated]) {
    const followed = cases.some((c) => c[0] === name);
    test(name, async () => {
      const bystander = await RespClient.connect(server.port);
      const c = await RespClient.connect(server.port);
      try {
        // Replies owed before the error are sent first, and nothing after it runs.
        c.write(Buffer.concat([resp("PING"), Buffer.from(request), followed ? resp("ECHO", "after") : Buffer.alloc(0)]));
        const got = await c.readUntil(() => false, 5000);
        expect(got.toString()).toBe("+PONG\r\n" + reply);
        expect(c.closed).toBe(true);
        expect(await bystander.roundTrip(resp("ECHO", "still here"), 17)).toBe("$10\r\nstill here\r\n");
      } finally {
        c.close();
        bystander.close();
      }
    });
  }

  test("a bulk at exactly proto-max-bulk-len is accepted", async () => {
    const c = await RespClient.connect(server.port);
    try {
      const payload = "z".repeat(1024);
      expect(await c.roundTrip(resp("ECHO", payload), 1024 + 9)).toBe(`$1024\r\n${payload}\r\n`);
    } finally {
      c.close();
    }
  });

  test("the server counts protocol errors in INFO stats", async () => {
    const c = await RespClient.connect(server.port);
    try {
      c.write(resp("INFO", "stats"));
      const info = (await c.readReplies(1)).toString();
      const count = Number(/protocol_errors:(\d+)/.exec(info)?.[1]);
      expect(count).toBeGreaterThanOrEqual(cases.length + unterminated.length);
    } finally {
      c.close();
    }
  });
});

test("a client that closes mid-command leaves the server serving others", async () => {
  const half = net.connect({ port: server.port, host: "127.0.0.1" });
  await new Promise<void>((r) => half.once("connect", () => r()));
  half.write("*2\r\n$4\r\nECHO\r\n$100\r\nabc");
  half.destroy();
  const c = await RespClient.connect(server.port);
  try {
    expect(await c.roundTrip("PING\r\n", 7)).toBe("+PONG\r\n");
  } finally {
    c.close();
  }
});

describe("commands held until earlier replies arrive (MMAP), while more input keeps coming", () => {
  test("2,000 MMAPs, each behind pipelined commands, with reads split at seeded random places: every command arrives intact", async () => {
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const N = 2000;
    const commands: Buffer[] = [];
    for (let i = 0; i < N; i++)
      commands.push(resp("VADD", `held:${i - 1}`, "1"), resp("MMAP", `held:${i}`, `held-${i}.f64`), resp("VGET", `held:${i - 1}`, "0"));
    const bytes = Buffer.concat(commands);
    const socket = net.connect(server.port, "127.0.0.1");
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    await new Promise((resolve) => socket.once("connect", resolve));
    for (let at = 0; at < bytes.length; ) {
      const n = 1 + Math.floor(random() * 200);
      socket.write(bytes.subarray(at, at + n));
      at += n;
      if (random() < 0.05) await Bun.sleep(0);
    }
    const deadline = Date.now() + 30_000;
    const replies = () => {
      const bytes = Buffer.from(received, "latin1");
      let count = 0;
      for (let at = 0; at >= 0 && at < bytes.length; count++) at = replyEnd(bytes, at);
      return count;
    };
    while (replies() < 3 * N && Date.now() < deadline) await Bun.sleep(20);
    expect(replies()).toBe(3 * N);
    socket.destroy();
    // A parse that lost its place answers "unknown command" or a protocol error; every MMAP binds an empty file.
    expect(received).not.toContain("unknown command");
    expect(received).not.toContain("Protocol error");
    expect(received.match(/:0\r\n/g)?.length ?? 0).toBeGreaterThanOrEqual(N);
  }, 60_000);
});
