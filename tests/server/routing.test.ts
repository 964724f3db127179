/**
 * Commands whose keys live on different shards, through a real server with two shard workers:
 * the keyspace over ~200 bindings (DEL / UNLINK / EXISTS split by shard and summed, KEYS and
 * DBSIZE merged, SCAN's cursor crossing shards, FLUSHDB / FLUSHALL on every shard), bindings and
 * unbindings surviving a restart, and one writer per file across shards: a claim made on the main
 * thread, also for MMAPs pipelined in one write, released when the MMAP fails. Then SCAN on a
 * server with four shards: a page that ends its shard goes on into the next in the same call
 * (empty shards included), so the call that returns the last keys answers cursor 0 and no page is
 * empty while keys remain; with raw RESP, redis-cli --scan and ioredis's scanStream. What one
 * shard does with these commands: tests/commands/.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { resp, RespClient } from "../../bench/resp_client.ts";
import { hasTool, keyOnShard, shardOfKey, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(30_000);

const WORKERS = 2;
/** The server that made the data directory, and the one running now (after restarts). */
let first: TestServer;
let server: TestServer;
let client: Redis;

const USERS = Array.from({ length: 150 }, (_, i) => `user:${i}`);
const ITEMS = Array.from({ length: 50 }, (_, i) => `item:${i}`);
/** Keys with their own writable files; the others share one read-only file. */
const WRITERS = ["star*key", "starXkey", "w:a", "w:b"];
const ALL_KEYS = [...USERS, ...ITEMS, ...WRITERS];

const shardOf = (key: string) => shardOfKey(key, WORKERS);
const fileOf = (key: string) => `${key.replace(/[^a-z0-9]/gi, "_")}.f64`;
const sorted = (keys: string[]) => [...keys].sort();

/** The message of the error a command is answered with. */
async function errorOf(reply: Promise<unknown>): Promise<string> {
  try {
    return `no error: ${String(await reply)}`;
  } catch (e) {
    return (e as Error).message;
  }
}

async function connect(): Promise<void> {
  client = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true, maxRetriesPerRequest: 0 });
  await client.connect();
}

/** Stops the server and starts another on the same data directory. */
async function restart(): Promise<void> {
  await client.quit();
  expect(await server.stop()).toBe(0);
  server = await startServer({ dir: first.dir, args: ["--workers", String(WORKERS)] });
  await connect();
}

/** Every file the test made, with its bytes, to check that keyspace commands leave them alone. */
function snapshotFiles(): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const name of ["shared.f64", ...WRITERS.map(fileOf)]) files.set(name, new Uint8Array(fs.readFileSync(path.join(server.dir, name))));
  return files;
}

/** SCAN from 0 until the cursor comes back to 0; every key returned, in order, with the number of calls. */
async function scanAll(...options: string[]): Promise<{ keys: string[]; calls: number }> {
  const keys: string[] = [];
  let cursor = "0";
  let calls = 0;
  do {
    const [next, page] = (await client.call("SCAN", cursor, ...options)) as [string, string[]];
    cursor = next;
    keys.push(...page);
    calls++;
    expect(calls).toBeLessThan(1000);
  } while (cursor !== "0");
  return { keys, calls };
}

beforeAll(async () => {
  first = server = await startServer({ args: ["--workers", String(WORKERS)] });
  fs.writeFileSync(path.join(server.dir, "shared.f64"), new Uint8Array(new Float64Array([1, 2, 3]).buffer));
  await connect();
  const pipeline = client.pipeline();
  for (const key of [...USERS, ...ITEMS]) pipeline.call("MMAP", key, "shared.f64", "double");
  for (const key of WRITERS) pipeline.call("MMAP", key, fileOf(key));
  for (const key of WRITERS) pipeline.call("VADD", key, "4", "5");
  const results = (await pipeline.exec())!;
  for (const [error] of results) expect(error).toBeNull();
  // The keys are spread over both shards.
  expect(new Set(ALL_KEYS.map(shardOf)).size).toBe(WORKERS);
});

afterAll(async () => {
  await client?.quit().catch(() => client.disconnect());
  await server?.stop();
  first?.cleanup();
});

describe("the keyspace across shards", () => {
  test("DBSIZE counts the keys of every shard", async () => {
    expect(await client.call("DBSIZE")).toBe(ALL_KEYS.length);
  });

  test("TYPE: list for a bound key on either shard, none otherwise", async () => {
    expect(await client.call("TYPE", "user:1")).toBe("list");
    expect(await client.call("TYPE", "w:a")).toBe("list");
    expect(await client.call("TYPE", "nosuchkey")).toBe("none");
  });

  test("EXISTS across shards counts each key named, repeats included", async () => {
    const a = USERS.find((k) => shardOf(k) === 0)!;
    const b = USERS.find((k) => shardOf(k) === 1)!;
    expect(await client.call("EXISTS", a)).toBe(1);
    expect(await client.call("EXISTS", a, b)).toBe(2);
    expect(await client.call("EXISTS", a, b, "nosuchkey", a, b, b)).toBe(5);
    expect(await client.call("EXISTS", "nosuchkey", "nosuchkey2")).toBe(0);
  });

  test("KEYS merges the keys of every shard", async () => {
    const keys = async (pattern: string) => sorted((await client.call("KEYS", pattern)) as string[]);
    expect(await keys("*")).toEqual(sorted(ALL_KEYS));
    expect(await keys("user:1?")).toEqual(sorted(Array.from({ length: 10 }, (_, i) => `user:1${i}`)));
    expect(await keys("star?key")).toEqual(["star*key", "starXkey"]);
    expect(await keys("nomatch*")).toEqual([]);
  });

  test("SCAN iterates every key of every shard exactly once", async () => {
    for (const options of [[], ["COUNT", "7"], ["COUNT", "1000"], ["COUNT", "1"], ["TYPE", "mmap"], ["type", "MMAP", "count", "13"]]) {
      const { keys, calls } = await scanAll(...options);
      expect(keys.length).toBe(ALL_KEYS.length);
      expect(sorted(keys)).toEqual(sorted(ALL_KEYS));
      // COUNT 1: a key a call, but a page that ends a shard also takes the next shard's first key.
      if (options[1] === "1") expect(calls).toBeGreaterThanOrEqual(ALL_KEYS.length - (WORKERS - 1));
    }
    const users = await scanAll("MATCH", "user:*", "COUNT", "9");
    expect(sorted(users.keys)).toEqual(sorted(USERS));
    expect(users.keys.length).toBe(USERS.length);
    expect(sorted((await scanAll("MATCH", "w:*", "TYPE", "mmap")).keys)).toEqual(["w:a", "w:b"]);
  });

  test("SCAN's cursor is checked before it is routed", async () => {
    expect(await errorOf(client.call("SCAN", "abc"))).toBe("ERR invalid cursor");
    expect(await errorOf(client.call("SCAN", "-1"))).toBe("ERR invalid cursor");
    expect(await errorOf(client.call("SCAN", "0", "COUNT", "0"))).toBe("ERR syntax error");
    expect(await errorOf(client.call("SCAN"))).toBe("ERR wrong number of arguments for 'scan' command");
  });
});

describe("unbinding across shards", () => {
  test("DEL and UNLINK across shards unbind and leave the files as they were", async () => {
    const files = snapshotFiles();
    const [a0, a1] = [USERS.find((k) => shardOf(k) === 0)!, USERS.find((k) => shardOf(k) === 1)!];
    const [b0, b1] = [ITEMS.find((k) => shardOf(k) === 0)!, ITEMS.find((k) => shardOf(k) === 1)!];
    expect(await client.call("DEL", a0, a1, "nosuchkey", a0)).toBe(2);
    expect(await client.call("EXISTS", a0, a1)).toBe(0);
    expect(await client.call("UNLINK", b0, "w:a", b1, "nosuchkey")).toBe(3);
    expect(await client.call("EXISTS", b0, b1, "w:a")).toBe(0);
    expect(await client.call("DEL", a0)).toBe(0);
    expect(await client.call("DBSIZE")).toBe(ALL_KEYS.length - 5);
    expect(await client.call("TYPE", "w:a")).toBe("none");
    expect(await errorOf(client.call("VCOUNT", "w:a"))).toBe("ERR You must do MMAP first");
    expect(snapshotFiles()).toEqual(files);
    expect(await errorOf(client.call("DEL"))).toBe("ERR wrong number of arguments for 'del' command");
    expect(await errorOf(client.call("EXISTS"))).toBe("ERR wrong number of arguments for 'exists' command");
  });

  test("bindings and unbindings survive a restart", async () => {
    const before = sorted((await client.call("KEYS", "*")) as string[]);
    expect(before.length).toBe(ALL_KEYS.length - 5);
    await restart();
    expect(sorted((await client.call("KEYS", "*")) as string[])).toEqual(before);
    expect(await client.call("VALL", "w:b")).toEqual(["4", "5"]);
    expect(await client.call("VGET", "user:100", "2")).toBe("3");
  });

  test("FLUSHDB and FLUSHALL unbind every key of every shard, never change a file, and stay so after a restart", async () => {
    const files = snapshotFiles();
    expect(await client.call("FLUSHDB")).toBe("OK");
    expect(await client.call("DBSIZE")).toBe(0);
    expect(await client.call("KEYS", "*")).toEqual([]);
    expect((await scanAll()).keys).toEqual([]);
    expect(snapshotFiles()).toEqual(files);

    expect(await client.call("MMAP", "w:a", fileOf("w:a"))).toBe(2);
    expect(await client.call("MMAP", "user:1", "shared.f64", "double")).toBe(3);
    expect(await client.call("FLUSHDB", "SYNC")).toBe("OK");
    expect(await client.call("DBSIZE")).toBe(0);

    expect(await client.call("MMAP", "w:a", fileOf("w:a"))).toBe(2);
    expect(await client.call("MMAP", "item:1", "shared.f64", "double")).toBe(3);
    expect(await client.call("FLUSHALL")).toBe("OK");
    expect(await client.call("DBSIZE")).toBe(0);
    expect(await client.call("FLUSHALL", "ASYNC")).toBe("OK");
    expect(await errorOf(client.call("FLUSHALL", "BOGUS"))).toBe("ERR syntax error");
    expect(snapshotFiles()).toEqual(files);

    // Unbound for good: a restart restores nothing, and the files are still there.
    await restart();
    expect(await client.call("DBSIZE")).toBe(0);
    expect(snapshotFiles()).toEqual(files);
  });
});

describe("SCAN across shards while the keyspace changes", () => {
  test("every key present from start to end is returned, though others are deleted meanwhile", async () => {
    const keys = Array.from({ length: 120 }, (_, i) => `scan:${i}`);
    const pipeline = client.pipeline();
    for (const key of keys) pipeline.call("MMAP", key, "shared.f64", "double");
    for (const [error] of (await pipeline.exec())!) expect(error).toBeNull();
    const stays = (key: string) => Number(key.slice(5)) % 2 === 0;
    const early = keys.filter((k) => !stays(k) && Number(k.slice(5)) % 3 === 0);
    expect(await client.call("DEL", ...early)).toBe(early.length);
    const seen: string[] = [];
    let cursor = "0";
    let calls = 0;
    do {
      const [next, page] = (await client.call("SCAN", cursor, "COUNT", "5")) as [string, string[]];
      cursor = next;
      seen.push(...page);
      const goners = page.filter((k) => !stays(k));
      if (goners.length > 0) expect(await client.call("DEL", ...goners)).toBe(goners.length);
      expect(++calls).toBeLessThan(1000);
    } while (cursor !== "0");
    expect(sorted(seen.filter(stays))).toEqual(sorted(keys.filter(stays)));
    expect(seen.filter((k) => early.includes(k))).toEqual([]);
    expect(await client.call("DBSIZE")).toBe(keys.filter(stays).length);
  });
});

describe("one writer per file, across shards", () => {
  /** Sends one command on a raw connection; its reply as text. */
  async function text(...args: string[]): Promise<string> {
    const c = await RespClient.connect(server.port);
    try {
      return await c.text(...args);
    } finally {
      c.close();
    }
  }

  for (const where of ["the same shard", "another shard"]) {
    test(`a file bound writable cannot be bound under another key on ${where}`, async () => {
      const tag = where === "the same shard" ? "s" : "o";
      const writer = keyOnShard(`writer-${tag}-`, 0, WORKERS);
      const other = keyOnShard(`other-${tag}-`, where === "the same shard" ? 0 : 1, WORKERS);
      const third = keyOnShard(`third-${tag}-`, where === "the same shard" ? 0 : 1, WORKERS);
      const file = `shared-${tag}.f64`;
      expect(await text("MMAP", writer, file)).toBe(":0\r\n");
      expect(await text("VADD", writer, "7")).toBe(":1\r\n");
      const refused = `-ERR file is already bound writable to key '${writer}'\r\n`;
      expect(await text("MMAP", other, file)).toBe(refused);
      expect(await text("MMAP", other, file, "double")).toBe(refused);
      expect(await text("MMAP", other, file, "double", "WRITABLE")).toBe(refused);
      expect(await text("MMAP", third, `./${file}`, "int8")).toBe(refused);
      expect(await text("EXISTS", other, third)).toBe(":0\r\n");
      // Once the writer is gone, the file may be bound again.
      expect(await text("DEL", writer)).toBe(":1\r\n");
      expect(await text("MMAP", other, file, "double")).toBe(":1\r\n");
      expect(await text("MMAP", third, file, "double")).toBe(":1\r\n");
      expect(await text("VGET", third, "0")).toBe("$1\r\n7\r\n");
    });
  }

  test("several read-only bindings may share a file, on both shards", async () => {
    fs.writeFileSync(path.join(server.dir, "readers.f64"), new Uint8Array(new Float64Array([1.5, 2.5]).buffer));
    const readers = [keyOnShard("reader-", 0, WORKERS), keyOnShard("reader-", 1, WORKERS), keyOnShard("reader-x", 0, WORKERS)];
    for (const key of readers) expect(await text("MMAP", key, "readers.f64", "double")).toBe(":2\r\n");
    for (const key of readers) expect(await text("VGET", key, "1")).toBe("$3\r\n2.5\r\n");
  });

  test("pipelined MMAPs of one file under keys on different shards: the first binds, the others are refused", async () => {
    const keys = ["a", "b", "c", "d", "e", "f"];
    const firstKey = keys[0]!;
    const other = keys.find((k) => shardOf(k) !== shardOf(firstKey))!;
    const c = await RespClient.connect(server.port);
    try {
      c.write(Buffer.concat([resp("MMAP", firstKey, "F.f64"), resp("MMAP", other, "F.f64"), resp("MMAP", other, "F.f64", "double")]));
      const refused = `-ERR file is already bound writable to key '${firstKey}'\r\n`;
      expect((await c.readReplies(3)).toString()).toBe(`:0\r\n${refused}${refused}`);
      // A refused claim leaves nothing behind: once the writer is unbound, the other key may bind.
      c.write(Buffer.concat([resp("DEL", firstKey), resp("MMAP", other, "F.f64")]));
      expect((await c.readReplies(2)).toString()).toBe(":1\r\n:0\r\n");
    } finally {
      c.close();
    }
  });

  test("a writable MMAP that fails releases its claim", async () => {
    const c = await RespClient.connect(server.port);
    try {
      c.write(Buffer.concat([resp("MMAP", "bad", "G.f64", "nosuchtype", "WRITABLE"), resp("MMAP", "good", "G.f64")]));
      expect((await c.readReplies(2)).toString()).toBe(
        "-ERR value_type must be int8, uint8, int16, uint16, int32, uint32, int64, uint64, float, double, long_double or string\r\n:0\r\n",
      );
    } finally {
      c.close();
    }
  });
});

describe("SCAN over four shards", () => {
  const SHARDS = 4;
  let scanServer: TestServer;
  let c: RespClient;

  beforeAll(async () => {
    scanServer = await startServer({ args: ["--workers", String(SHARDS)] });
    c = await RespClient.connect(scanServer.port);
  });

  afterAll(async () => {
    c?.close();
    await scanServer?.stop();
    scanServer?.cleanup();
  });

  beforeEach(async () => {
    expect(await c.command("FLUSHALL")).toBe("OK");
  });

  const bind = async (keys: string[]) => {
    for (const k of keys) expect(await c.command("MMAP", k, `${k}.f64`)).toBe(0);
  };

  /** Every page of a whole iteration: [cursor, keys] per call. */
  const pages = async (...options: string[]) => {
    const out: [string, string[]][] = [];
    let cursor = "0";
    do {
      const [next, keys] = (await c.command("SCAN", cursor, ...options)) as [string, string[]];
      out.push([next, keys]);
      cursor = next;
    } while (cursor !== "0" && out.length < 10_000);
    return out;
  };

  test("no keys: cursor 0 at the first call", async () => {
    expect(await c.command("SCAN", "0")).toEqual(["0", []]);
    expect(await c.command("SCAN", "0", "COUNT", "1")).toEqual(["0", []]);
  });

  for (const shard of [0, 1, SHARDS - 1]) {
    test(`keys on shard ${shard} only: one call returns them all and cursor 0`, async () => {
      const keys = [0, 1, 2].map((n) => keyOnShard(`only${shard}-${n}-`, shard, SHARDS));
      await bind(keys);
      const [cursor, got] = (await c.command("SCAN", "0")) as [string, string[]];
      expect(cursor).toBe("0");
      expect(got.sort()).toEqual(keys.sort());
    });
  }

  test("a cursor that starts a shard goes on past the empty shards after it", async () => {
    const key = keyOnShard("first-", 0, SHARDS);
    await bind([key]);
    for (let s = 1; s < SHARDS; s++) expect(await c.command("SCAN", String(s))).toEqual(["0", []]);
    expect(await c.command("SCAN", "0")).toEqual(["0", [key]]);
  });

  test("every COUNT: each key once, no empty page, pages of at most COUNT + shards - 1 keys, the last with cursor 0", async () => {
    const keys = Array.from({ length: 60 }, (_, i) => `key:${i}`);
    await bind(keys);
    for (const count of [1, 2, 5, 10, 59, 60, 61, 1000]) {
      const all = await pages("COUNT", String(count));
      const seen = all.flatMap(([, k]) => k);
      expect(seen.sort()).toEqual([...keys].sort());
      for (const [, page] of all) {
        expect(page.length).toBeGreaterThan(0);
        expect(page.length).toBeLessThanOrEqual(count + SHARDS - 1);
      }
      expect(all.at(-1)![0]).toBe("0");
      if (count >= 60) expect(all.length).toBe(1);
    }
    // The default COUNT (10), MATCH and TYPE go along on every hop.
    expect((await pages()).flatMap(([, k]) => k).length).toBe(60);
    const matched = await pages("MATCH", "key:1*", "COUNT", "3");
    expect(matched.flatMap(([, k]) => k).sort()).toEqual(keys.filter((k) => k.startsWith("key:1")).sort());
    expect(matched.at(-1)![0]).toBe("0");
    expect((await pages("TYPE", "list", "COUNT", "7")).flatMap(([, k]) => k).length).toBe(60);
    expect(await pages("TYPE", "hash", "COUNT", "1000")).toEqual([["0", []]]);
  });

  test("pipelined, a SCAN sees the commands before it and none after it, on every shard it goes through", async () => {
    const late = keyOnShard("late-", SHARDS - 1, SHARDS);
    const commands = [["MMAP", late, "late.f64"], ["SCAN", "0", "COUNT", "100"], ["DEL", late], ["SCAN", "0"], ["PING"]];
    const reply = await c.replies(commands);
    const page = (keys: string[]) => `*2\r\n$1\r\n0\r\n*${keys.length}\r\n${keys.map((k) => `$${k.length}\r\n${k}\r\n`).join("")}`;
    expect(reply.toString()).toBe(`:0\r\n${page([late])}:1\r\n${page([])}+PONG\r\n`);
  });

  test("errors stop at the first shard, as before", async () => {
    expect(await c.text("SCAN", "0", "COUNT", "0")).toBe("-ERR syntax error\r\n");
    expect(await c.text("SCAN", "0", "MATCH")).toBe("-ERR syntax error\r\n");
    expect(await c.text("SCAN", "-1")).toBe("-ERR invalid cursor\r\n");
    // The connection is still in step.
    expect(await c.text("PING")).toBe("+PONG\r\n");
    expect(resp("PING").length).toBe(14);
  });

  test.skipIf(!hasTool("redis-cli"))("redis-cli --scan lists every key once; TYPE prints list", async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `cli:${i}`);
    await bind(keys);
    const r = spawnSync(["redis-cli", "-p", String(scanServer.port), "--scan"]);
    expect(r.stdout.toString().trim().split("\n").sort()).toEqual([...keys].sort());
    expect(spawnSync(["redis-cli", "-p", String(scanServer.port), "TYPE", "cli:0"]).stdout.toString()).toBe("list\n");
  });

  test("ioredis: scanStream over every shard", async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `io:${i}`);
    await bind(keys);
    const r = new Redis({ port: scanServer.port, lazyConnect: true });
    await r.connect();
    try {
      const seen: string[] = [];
      let calls = 0;
      await new Promise<void>((resolve, reject) => {
        const stream = r.scanStream({ count: 8 });
        stream.on("data", (batch: string[]) => {
          calls++;
          seen.push(...batch);
        });
        stream.on("end", resolve);
        stream.on("error", reject);
      });
      expect(seen.sort()).toEqual([...keys].sort());
      expect(calls).toBeLessThanOrEqual(Math.ceil(30 / 8) + SHARDS);
      expect(await r.type("io:1")).toBe("list");
    } finally {
      await r.quit();
    }
  });
});
