/**
 * The keyspace commands over ~200 bindings on two shards: DEL / UNLINK / EXISTS across shards,
 * TYPE, KEYS patterns, a full SCAN (with MATCH, COUNT and TYPE) that returns every key exactly
 * once, DBSIZE, and FLUSHDB / FLUSHALL, which unbind keys but never touch their files. Bindings
 * and unbindings survive a restart.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { hashSlot } from "../../core/slots.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import { errorOf, fileBytes } from "./clients.ts";

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

function shardOf(key: string): number {
  const bytes = Buffer.from(key);
  return hashSlot(bytes, 0, bytes.length) % WORKERS;
}

const fileOf = (key: string) => `${key.replace(/[^a-z0-9]/gi, "_")}.f64`;
const sorted = (keys: string[]) => [...keys].sort();

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
  for (const name of ["shared.f64", ...WRITERS.map(fileOf)]) files.set(name, fileBytes(server.dir, name));
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

describe("reading the keyspace", () => {
  test("DBSIZE counts the keys of every shard", async () => {
    expect(await client.call("DBSIZE")).toBe(ALL_KEYS.length);
  });

  test("TYPE: mmap for a bound key, none otherwise", async () => {
    expect(await client.call("TYPE", "user:1")).toBe("mmap");
    expect(await client.call("TYPE", "w:a")).toBe("mmap");
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

  test("KEYS with patterns", async () => {
    const keys = async (pattern: string) => sorted((await client.call("KEYS", pattern)) as string[]);
    expect(await keys("*")).toEqual(sorted(ALL_KEYS));
    expect(await keys("user:1?")).toEqual(sorted(Array.from({ length: 10 }, (_, i) => `user:1${i}`)));
    expect(await keys("user:[12]")).toEqual(["user:1", "user:2"]);
    expect(await keys("user:[^0-8]")).toEqual(["user:9"]);
    expect(await keys("user:1[3-4]?")).toEqual(sorted([..."0123456789"].flatMap((d) => [`user:13${d}`, `user:14${d}`])));
    expect(await keys("item:*9")).toEqual(["item:19", "item:29", "item:39", "item:49", "item:9"]);
    expect(await keys("w:?")).toEqual(["w:a", "w:b"]);
    expect(await keys("star\\*key")).toEqual(["star*key"]);
    expect(await keys("star?key")).toEqual(["star*key", "starXkey"]);
    expect(await keys("star*")).toEqual(["star*key", "starXkey"]);
    expect(await keys("nomatch*")).toEqual([]);
    expect(await keys("user:1")).toEqual(["user:1"]);
  });

  test("SCAN iterates every key exactly once", async () => {
    for (const options of [[], ["COUNT", "7"], ["COUNT", "1000"], ["COUNT", "1"], ["TYPE", "mmap"], ["type", "MMAP", "count", "13"]]) {
      const { keys, calls } = await scanAll(...options);
      expect(keys.length).toBe(ALL_KEYS.length);
      expect(sorted(keys)).toEqual(sorted(ALL_KEYS));
      if (options[1] === "1") expect(calls).toBeGreaterThanOrEqual(ALL_KEYS.length);
    }
  });

  test("SCAN with MATCH and TYPE filters", async () => {
    const users = await scanAll("MATCH", "user:*", "COUNT", "9");
    expect(sorted(users.keys)).toEqual(sorted(USERS));
    expect(users.keys.length).toBe(USERS.length);
    expect(sorted((await scanAll("MATCH", "item:?")).keys)).toEqual(sorted(ITEMS.slice(0, 10)));
    expect((await scanAll("MATCH", "nomatch*", "COUNT", "50")).keys).toEqual([]);
    expect((await scanAll("TYPE", "string")).keys).toEqual([]);
    expect(sorted((await scanAll("MATCH", "w:*", "TYPE", "mmap")).keys)).toEqual(["w:a", "w:b"]);
  });

  test("SCAN's errors", async () => {
    expect(await errorOf(client.call("SCAN", "abc"))).toBe("ERR invalid cursor");
    expect(await errorOf(client.call("SCAN", "-1"))).toBe("ERR invalid cursor");
    expect(await errorOf(client.call("SCAN", "0", "COUNT", "0"))).toBe("ERR syntax error");
    expect(await errorOf(client.call("SCAN", "0", "COUNT", "x"))).toBe("ERR value is not an integer or out of range");
    expect(await errorOf(client.call("SCAN", "0", "MATCH"))).toBe("ERR syntax error");
    expect(await errorOf(client.call("SCAN", "0", "BOGUS", "1"))).toBe("ERR syntax error");
    expect(await errorOf(client.call("SCAN"))).toBe("ERR wrong number of arguments for 'scan' command");
  });
});

describe("unbinding", () => {
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

  test("FLUSHDB and FLUSHALL unbind every key and never change a file", async () => {
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

describe("SCAN while the keyspace changes", () => {
  test("every key present from start to end is returned, though others are deleted meanwhile", async () => {
    const keys = Array.from({ length: 120 }, (_, i) => `scan:${i}`);
    const pipeline = client.pipeline();
    for (const key of keys) pipeline.call("MMAP", key, "shared.f64", "double");
    for (const [error] of (await pipeline.exec())!) expect(error).toBeNull();
    // Keys with an even number stay; odd ones are deleted once a page has returned them, and
    // every third odd key is deleted before any page could.
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
    const stable = keys.filter(stays);
    expect(sorted(seen.filter(stays))).toEqual(sorted(stable));
    expect(seen.filter((k) => early.includes(k))).toEqual([]);
    expect(await client.call("DBSIZE")).toBe(stable.length);
  });
});
