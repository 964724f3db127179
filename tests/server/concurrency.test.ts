/**
 * Many clients and long pipelines on a real server: 50 ioredis clients appending to one key lose
 * and reorder nothing; a pipeline of 1,000 mixed commands over 100 keys on both shards gets the
 * replies that running them one by one gets, byte for byte and in order; pipelines over both
 * shards keep their order while one shard runs long VALLs; appends pipelined in one batch grow
 * the file once and leave it at its exact size; VALL of 10 million doubles (a reply bigger than
 * the ring between threads) arrives whole and in order; redis-benchmark's random-index VGET and
 * VSET finish without a single error reply.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import Redis from "ioredis";
import { resp, RespClient } from "../../bench/resp_client.ts";
import { hasTool, shardOfKey, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const WORKERS = 2;
const haveBenchmark = hasTool("redis-benchmark");
let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", String(WORKERS)] });
});

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
});

function connect(): Redis {
  return new Redis({ host: "127.0.0.1", port: server.port, maxRetriesPerRequest: 0 });
}

describe("50 clients appending to one key", () => {
  test("100,000 VADDs: every value present once, each client's in its order", async () => {
    const CLIENTS = 50;
    const PER_CLIENT = 2000;
    const setup = connect();
    const clients = Array.from({ length: CLIENTS }, connect);
    try {
      expect(await setup.call("MMAP", "crowd", "crowd.f64")).toBe(0);
      // Client c appends c*2000 .. c*2000+1999, without waiting between commands.
      const replies = await Promise.all(
        clients.map((client, c) =>
          Promise.all(Array.from({ length: PER_CLIENT }, (_, j) => client.call("VADD", "crowd", String(c * PER_CLIENT + j)))),
        ),
      );
      for (const perClient of replies) expect(perClient.every((r) => r === 1)).toBe(true);
      expect(await setup.call("VCOUNT", "crowd")).toBe(CLIENTS * PER_CLIENT);

      const all = ((await setup.call("VALL", "crowd")) as string[]).map(Number);
      expect(all.length).toBe(CLIENTS * PER_CLIENT);
      const sortedValues = Float64Array.from(all).sort();
      expect(sortedValues.every((v, i) => v === i)).toBe(true);
      // One connection's commands run in the order sent.
      const lastOfClient = new Array<number>(CLIENTS).fill(-1);
      const outOfOrder: number[] = [];
      for (const v of all) {
        const c = Math.floor(v / PER_CLIENT);
        if (v <= lastOfClient[c]!) outOfOrder.push(v);
        lastOfClient[c] = v;
      }
      expect(outOfOrder).toEqual([]);
      expect(fs.statSync(path.join(server.dir, "crowd.f64")).size).toBe(8 * CLIENTS * PER_CLIENT);
    } finally {
      await Promise.all([setup, ...clients].map((c) => c.quit().catch(() => c.disconnect())));
    }
  });
});

describe("a pipeline of 1,000 mixed commands", () => {
  const KEYS = 100;
  const TYPES = [["double"], ["int32"], ["float"], ["uint8"], ["string", "4"], ["int64"]];
  const typeOf = (k: number) => TYPES[k % TYPES.length]!;

  /** A deterministic pseudo-random sequence (a linear congruential generator). */
  function random(seed: number): () => number {
    let state = seed;
    return () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state >>> 8;
    };
  }

  /** A value for key k's type: mostly valid, sometimes refused. */
  function valueFor(k: number, r: number): string {
    if (r % 17 === 0) return "bad-value";
    switch (typeOf(k)[0]) {
      case "double":
        return String((r % 1000) / 8);
      case "float":
        return String((r % 100) / 4);
      case "int32":
        return String((r % 100000) - 50000);
      case "uint8":
        return String(r % 300); // above 255 now and then
      case "string":
        return `s${r % 10000}`; // five bytes now and then: too long
      default:
        return `${r % 2 ? "-" : ""}9007199254740${r % 1000}`;
    }
  }

  /** Binds the keys to fresh files with five values each. */
  async function setUp(raw: RespClient): Promise<void> {
    for (let k = 0; k < KEYS; k++) {
      fs.rmSync(path.join(server.dir, `mix${k}.bin`), { force: true });
      expect(await raw.text("MMAP", `k${k}`, `mix${k}.bin`, ...typeOf(k), "WRITABLE")).toBe(":0\r\n");
      expect(await raw.text("VADD", `k${k}`, ...[1, 2, 3, 4, 5].map((v) => (typeOf(k)[0] === "string" ? `v${v}` : String(v))))).toBe(
        ":5\r\n",
      );
    }
  }

  function commands(): string[][] {
    const next = random(20251124);
    const out: string[][] = [];
    for (let n = 0; n < 1000; n++) {
      const r = next();
      const k = r % KEYS;
      const key = `k${k}`;
      const other = `k${(k + 1 + (next() % (KEYS - 1))) % KEYS}`;
      const index = String(next() % 9); // out of range now and then
      switch (next() % 16) {
        case 0:
        case 1:
          out.push(["VADD", key, valueFor(k, next()), valueFor(k, next())]);
          break;
        case 2:
          out.push(["VSET", key, index, valueFor(k, next())]);
          break;
        case 3:
        case 4:
          out.push(["VGET", key, index]);
          break;
        case 5:
          out.push(["VMGET", key, "0", index, "000001"]);
          break;
        case 6:
          out.push(["VCOUNT", key]);
          break;
        case 7:
          out.push(["VPOP", key]);
          break;
        case 8:
          out.push(["VALL", key]);
          break;
        case 9:
          out.push(["EXISTS", key, other, "nokey", other]);
          break;
        case 10:
          out.push(["DBSIZE"]);
          break;
        case 11:
          out.push(["MMAP", key, `mix${k}.bin`]);
          break;
        case 12:
          out.push(r % 5 === 0 ? ["VCLEAR", key] : ["VTYPE", key]);
          break;
        case 13:
          out.push(["VGET", `unbound${k}`, "0"]);
          break;
        case 14:
          out.push(["PING"]);
          break;
        default:
          out.push(["ECHO", `echo-${n}`]);
      }
    }
    return out;
  }

  test("replies in order, byte for byte the same as one by one", async () => {
    const keysOnShard = new Set(Array.from({ length: KEYS }, (_, k) => shardOfKey(`k${k}`, WORKERS)));
    expect(keysOnShard.size).toBe(WORKERS);
    const list = commands();
    const raw = await RespClient.connect(server.port);
    try {
      // Both runs start from the same keyspace: only these keys, with fresh files.
      expect(await raw.text("FLUSHALL")).toBe("+OK\r\n");
      await setUp(raw);
      const pipelined = await raw.replies(list);

      expect(await raw.text("FLUSHALL")).toBe("+OK\r\n");
      await setUp(raw);
      const oneByOne: string[] = [];
      for (const c of list) oneByOne.push(await raw.text(...c));

      expect(pipelined.toString("latin1")).toBe(oneByOne.join(""));
      // The run exercised replies of every kind, errors included.
      const text = oneByOne.join("");
      const markers = [
        "-ERR index exceeds size",
        "-ERR You must do MMAP first",
        "-ERR value must be",
        "-ERR value is too long",
        "+PONG",
        "*0\r\n",
        ":100\r\n",
      ];
      expect(markers.filter((m) => !text.includes(m))).toEqual([]);
    } finally {
      raw.close();
    }
  });
});

describe("pipelines over both shards while one shard runs long commands", () => {
  test("every client gets its replies in order, byte for byte", async () => {
    // Four small files on keys of both shards, and a big one whose VALL keeps its shard busy.
    const keys = ["p0", "p1", "p2", "p3"];
    expect(new Set(keys.map((k) => shardOfKey(k, WORKERS))).size).toBe(WORKERS);
    const setup = await RespClient.connect(server.port);
    try {
      for (const [n, key] of keys.entries()) {
        const values = Float64Array.from({ length: 64 }, (_, i) => n * 1000 + i + 0.5);
        fs.writeFileSync(path.join(server.dir, `${key}.f64`), new Uint8Array(values.buffer));
        expect(await setup.text("MMAP", key, `${key}.f64`)).toBe(":64\r\n");
      }
      const big = new Float64Array(1_000_000).fill(0.25);
      fs.writeFileSync(path.join(server.dir, "long.f64"), new Uint8Array(big.buffer));
      expect(await setup.text("MMAP", "long", "long.f64")).toBe(":1000000\r\n");
    } finally {
      setup.close();
    }

    const clients = 12;
    const perClient = 400;
    const sessions = await Promise.all(Array.from({ length: clients }, () => RespClient.connect(server.port)));
    const longSession = await RespClient.connect(server.port);
    try {
      const runs = sessions.map((session, c) => {
        const list: string[][] = [];
        let expected = "";
        for (let i = 0; i < perClient; i++) {
          const n = (c + i * 7) % keys.length;
          const index = (c * 13 + i) % 64;
          list.push(["VGET", keys[n], String(index)]);
          const text = String(n * 1000 + index + 0.5);
          expected += `$${text.length}\r\n${text}\r\n`;
        }
        return { run: session.replies(list), expected };
      });
      const longRun = longSession.replies([
        ["VALL", "long"],
        ["VCOUNT", "long"],
        ["VALL", "long"],
        ["VCOUNT", "long"],
      ]);
      for (const { run, expected } of runs) expect((await run).toString("latin1")).toBe(expected);
      const longReplies = (await longRun).toString("latin1");
      const all = "*1000000\r\n" + "$4\r\n0.25\r\n".repeat(1_000_000);
      expect(longReplies).toBe(all + ":1000000\r\n" + all + ":1000000\r\n");
    } finally {
      for (const session of sessions) session.close();
      longSession.close();
    }
  });
});

describe("redis-benchmark (apt package redis-tools)", () => {
  const COUNT = 1000;

  /** Runs redis-benchmark with --csv against the server. */
  function benchmark(...args: string[]): { exitCode: number; stdout: string; stderr: string } {
    const r = spawnSync(["redis-benchmark", "-p", String(server.port), "-c", "8", "--csv", ...args], { timeout: 60_000 });
    return { exitCode: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  /** Checks a run that must have finished with no error: exit 0, nothing on stderr, a CSV row with a rate. */
  function expectClean(run: { exitCode: number; stdout: string; stderr: string }, name: string): void {
    expect({ exitCode: run.exitCode, stderr: run.stderr }).toEqual({ exitCode: 0, stderr: "" });
    const rows = run.stdout.trim().split("\n");
    expect(rows[0]).toStartWith('"test","rps"');
    const row = rows.find((line) => line.startsWith(`"${name}"`));
    expect(row).toBeDefined();
    expect(Number(row!.split(",")[1]!.replace(/"/g, ""))).toBeGreaterThan(0);
  }

  beforeAll(async () => {
    const values = Float64Array.from({ length: COUNT }, (_, i) => i + 0.25);
    fs.writeFileSync(path.join(server.dir, "bench.f64"), new Uint8Array(values.buffer));
    const raw = await RespClient.connect(server.port);
    try {
      expect(await raw.text("MMAP", "bench", "bench.f64")).toBe(`:${COUNT}\r\n`);
    } finally {
      raw.close();
    }
  });

  test.skipIf(!haveBenchmark)("an error reply would be caught: indices beyond the file", () => {
    const run = benchmark("-n", "2000", "-P", "16", "-r", String(2 * COUNT), "VGET", "bench", "__rand_int__");
    expect(run.exitCode).not.toBe(0);
    expect(run.stdout + run.stderr).toContain("ERR index exceeds size");
  });

  test.skipIf(!haveBenchmark)("VGET k __rand_int__ -r N -P 16 -n 20000: no errors", () => {
    expectClean(benchmark("-n", "20000", "-P", "16", "-r", String(COUNT), "VGET", "bench", "__rand_int__"), "VGET bench __rand_int__");
  });

  test.skipIf(!haveBenchmark)("VSET k __rand_int__ 1.5 -r N -P 16 -n 20000: no errors, and the values landed", async () => {
    expectClean(
      benchmark("-n", "20000", "-P", "16", "-r", String(COUNT), "VSET", "bench", "__rand_int__", "1.5"),
      "VSET bench __rand_int__ 1.5",
    );
    const raw = await RespClient.connect(server.port);
    try {
      expect(await raw.text("PING")).toBe("+PONG\r\n");
      expect(await raw.text("VCOUNT", "bench")).toBe(`:${COUNT}\r\n`);
    } finally {
      raw.close();
    }
    const values = new Float64Array(new Uint8Array(fs.readFileSync(path.join(server.dir, "bench.f64"))).buffer);
    let set = 0;
    values.forEach((v, i) => {
      if (v === 1.5) set++;
      else expect(v).toBe(i + 0.25);
    });
    // 20,000 uniform draws over 1,000 indices miss one with probability about 2e-9 each.
    expect(set).toBeGreaterThan(COUNT * 0.99);
  });
});

describe("appends pipelined in one batch", () => {
  const doubles = (file: string) => {
    const b = fs.readFileSync(path.join(server.dir, file));
    return Array.from({ length: b.length / 8 }, (_, i) => b.readDoubleLE(i * 8));
  };

  test("a refused VADD inside a pipelined batch of appends leaves the file at its exact size", async () => {
    const c = await RespClient.connect(server.port);
    try {
      c.write(resp("MMAP", "k", "k.f64"));
      expect((await c.readReplies(1)).toString()).toBe(":0\r\n");
      const batch = [resp("VADD", "k", "1", "2"), resp("VADD", "k", "3", "oops", "4"), resp("VADD", "k", "5"), resp("VCOUNT", "k")];
      c.write(Buffer.concat(batch));
      expect((await c.readReplies(4)).toString()).toBe(":2\r\n-ERR value must be double\r\n:1\r\n:3\r\n");
      expect(doubles("k.f64")).toEqual([1, 2, 5]);
    } finally {
      c.close();
    }
  });

  test("a DEL in the same batch as appends unbinds a file of exactly the appended values", async () => {
    const c = await RespClient.connect(server.port);
    try {
      c.write(resp("MMAP", "d", "d.f64"));
      expect((await c.readReplies(1)).toString()).toBe(":0\r\n");
      c.write(Buffer.concat([resp("VADD", "d", "7", "8", "9"), resp("VADD", "d", "nope"), resp("DEL", "d")]));
      expect((await c.readReplies(3)).toString()).toBe(":3\r\n-ERR value must be double\r\n:1\r\n");
      expect(doubles("d.f64")).toEqual([7, 8, 9]);
    } finally {
      c.close();
    }
  });
});

/** Makes a sparse file of `bytes` zero bytes, then writes doubles at some indices. */
function sparseDoubles(name: string, bytes: number, values: Map<number, number>): string {
  const file = path.join(server.dir, name);
  const fd = fs.openSync(file, "w");
  try {
    fs.ftruncateSync(fd, bytes);
    for (const [index, value] of values) fs.writeSync(fd, new Uint8Array(new Float64Array([value]).buffer), 0, 8, index * 8);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/**
 * Reads a RESP2 array of bulk strings from a socket as it streams in, comparing each element with
 * `expected(i)` without holding the whole reply; then reads `after` more bytes. Resolves with a
 * report of what was seen.
 */
function streamArray(
  socket: net.Socket,
  count: number,
  expected: (i: number) => string,
  after: string,
): Promise<{ header: string; mismatches: string[]; elements: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const encoder = new TextEncoder();
    const zero = encoder.encode("$1\r\n0\r\n");
    let pending: Buffer = Buffer.alloc(0);
    let header: string | null = null;
    let elements = 0;
    const mismatches: string[] = [];
    let tail = "";
    const timer = setTimeout(() => reject(new Error(`timed out after ${elements} elements`)), 100_000);
    const finish = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      resolve({ header: header ?? "", mismatches, elements, tail });
    };
    const onData = (chunk: Buffer) => {
      const b = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      let p = 0;
      if (header === null) {
        const lf = b.indexOf(10);
        if (lf < 0) {
          pending = b;
          return;
        }
        header = b.toString("latin1", 0, lf + 1);
        p = lf + 1;
        if (!header.startsWith("*")) {
          finish(); // an error or another reply instead of the array: nothing more to read
          return;
        }
      }
      while (elements < count) {
        const want = expected(elements);
        if (want === "0") {
          if (p + zero.length > b.length) break;
          let same = true;
          for (let k = 0; k < zero.length; k++) if (b[p + k] !== zero[k]) same = false;
          if (!same) {
            const headerEnd = b.indexOf(10, p);
            const lf = headerEnd < 0 ? -1 : b.indexOf(10, headerEnd + 1);
            if (lf < 0) break;
            if (mismatches.length < 10) mismatches.push(`${elements}: ${JSON.stringify(b.toString("latin1", p, lf + 1))}`);
            p = lf + 1;
          } else p += zero.length;
        } else {
          const text = `$${want.length}\r\n${want}\r\n`;
          if (p + text.length > b.length) break;
          const got = b.toString("latin1", p, p + text.length);
          if (got !== text && mismatches.length < 10)
            mismatches.push(`${elements}: ${JSON.stringify(got)} instead of ${JSON.stringify(text)}`);
          p += text.length;
        }
        elements++;
      }
      if (elements === count) {
        tail += b.toString("latin1", p);
        pending = Buffer.alloc(0);
        if (tail.length >= after.length) finish();
        return;
      }
      pending = Buffer.from(b.subarray(p));
    };
    socket.on("data", onData);
  });
}

describe("VALL of 10 million doubles", () => {
  const COUNT = 10_000_000;
  const values = new Map<number, number>([
    [0, 1.5],
    [1, -2.25],
    [65_535, 1e21],
    [5_000_000, 0.1],
    [COUNT - 1, 42],
  ]);

  test("the 70 MB reply arrives whole and correct, and the replies after it in order", async () => {
    sparseDoubles("ten-million.f64", COUNT * 8, values);
    const setup = await RespClient.connect(server.port);
    try {
      expect(await setup.text("MMAP", "big", "ten-million.f64", "double")).toBe(`:${COUNT}\r\n`);
    } finally {
      setup.close();
    }
    const socket = net.connect({ port: server.port, host: "127.0.0.1" });
    try {
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      const after = "+PONG\r\n$2\r\n42\r\n";
      const reading = streamArray(socket, COUNT, (i) => (values.has(i) ? String(values.get(i)) : "0"), after);
      socket.write(Buffer.concat([resp("VALL", "big"), resp("PING"), resp("VGET", "big", String(COUNT - 1))]));
      const report = await reading;
      expect(report.header).toBe(`*${COUNT}\r\n`);
      expect(report.mismatches).toEqual([]);
      expect(report.elements).toBe(COUNT);
      expect(report.tail).toBe(after);
    } finally {
      socket.destroy();
    }
  }, 120_000);
});
