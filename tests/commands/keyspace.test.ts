/**
 * The keyspace commands of one shard, in-process and byte for byte, over ~200 bindings: DEL /
 * UNLINK / EXISTS (repeats counted), TYPE, KEYS patterns, a full SCAN (with MATCH, COUNT and TYPE)
 * that returns every key exactly once even while keys are deleted, SCAN's cursor handing over to
 * the next shard, DBSIZE, and FLUSHDB / FLUSHALL, which unbind keys but never touch their files.
 * The same commands across shards, and across a restart: tests/server/routing.test.ts.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { decodeReply, type Reply } from "../../bench/resp_client.ts";
import { bulk, err, int, shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const run = h.run;

const USERS = Array.from({ length: 150 }, (_, i) => `user:${i}`);
const ITEMS = Array.from({ length: 50 }, (_, i) => `item:${i}`);
/** Keys with their own writable files; the others share one read-only file. */
const WRITERS = ["star*key", "starXkey", "w:a", "w:b"];
const ALL_KEYS = [...USERS, ...ITEMS, ...WRITERS];

const fileOf = (key: string) => `${key.replace(/[^a-z0-9]/gi, "_")}.f64`;
const sorted = (keys: string[]) => [...keys].sort();

/** A reply decoded (strings as latin1 text, integers as bigint). */
function decoded(reply: string): Reply {
  return decodeReply(Buffer.from(reply, "latin1"))!.reply;
}

/** The keys of a KEYS reply. */
const keys = (pattern: string) => sorted(decoded(run(["KEYS", pattern])) as string[]);

/** Every file the test made, with its bytes, to check that keyspace commands leave them alone. */
function snapshotFiles(): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  for (const name of ["shared.f64", ...WRITERS.map(fileOf)]) files.set(name, new Uint8Array(fs.readFileSync(h.file(name))));
  return files;
}

/** SCAN from 0 until the cursor comes back to 0; every key returned, in order, with the number of calls. */
function scanAll(...options: string[]): { keys: string[]; calls: number } {
  const found: string[] = [];
  let cursor = "0";
  let calls = 0;
  do {
    const [next, page] = decoded(run(["SCAN", cursor, ...options])) as [string, string[]];
    cursor = next;
    found.push(...page);
    calls++;
    expect(calls).toBeLessThan(1000);
  } while (cursor !== "0");
  return { keys: found, calls };
}

beforeAll(() => {
  fs.writeFileSync(h.file("shared.f64"), new Uint8Array(new Float64Array([1, 2, 3]).buffer));
  for (const key of [...USERS, ...ITEMS]) expect(run(["MMAP", key, "shared.f64", "double"])).toBe(int(3));
  for (const key of WRITERS) expect(run(["MMAP", key, fileOf(key)])).toBe(int(0));
  for (const key of WRITERS) expect(run(["VADD", key, "4", "5"])).toBe(int(2));
});

describe("reading the keyspace", () => {
  test("DBSIZE counts the keys", () => {
    expect(run(["DBSIZE"])).toBe(int(ALL_KEYS.length));
    expect(run(["DBSIZE", "x"])).toBe(err("ERR wrong number of arguments for 'dbsize' command"));
  });

  test("TYPE: list for a bound key, none otherwise, in both protocols", () => {
    for (const proto of [2, 3] as const) {
      expect(run(["TYPE", "user:1"], proto)).toBe("+list\r\n");
      expect(run(["TYPE", "w:a"], proto)).toBe("+list\r\n");
      expect(run(["TYPE", "nosuchkey"], proto)).toBe("+none\r\n");
    }
  });

  test("EXISTS counts each key named, repeats included", () => {
    const [a, b] = USERS;
    expect(run(["EXISTS", a!])).toBe(int(1));
    expect(run(["EXISTS", a!, b!])).toBe(int(2));
    expect(run(["EXISTS", a!, b!, "nosuchkey", a!, b!, b!])).toBe(int(5));
    expect(run(["EXISTS", "nosuchkey", "nosuchkey2"])).toBe(int(0));
  });

  test("KEYS with patterns", () => {
    expect(keys("*")).toEqual(sorted(ALL_KEYS));
    expect(keys("user:1?")).toEqual(sorted(Array.from({ length: 10 }, (_, i) => `user:1${i}`)));
    expect(keys("user:[12]")).toEqual(["user:1", "user:2"]);
    expect(keys("user:[^0-8]")).toEqual(["user:9"]);
    expect(keys("user:1[3-4]?")).toEqual(sorted([..."0123456789"].flatMap((d) => [`user:13${d}`, `user:14${d}`])));
    expect(keys("item:*9")).toEqual(["item:19", "item:29", "item:39", "item:49", "item:9"]);
    expect(keys("w:?")).toEqual(["w:a", "w:b"]);
    expect(keys("star\\*key")).toEqual(["star*key"]);
    expect(keys("star?key")).toEqual(["star*key", "starXkey"]);
    expect(keys("star*")).toEqual(["star*key", "starXkey"]);
    expect(keys("nomatch*")).toEqual([]);
    expect(keys("user:1")).toEqual(["user:1"]);
    expect(run(["KEYS", "w:?"], 3)).toBe(`*2\r\n${bulk("w:a")}${bulk("w:b")}`);
  });

  test("SCAN iterates every key exactly once", () => {
    for (const options of [
      [],
      ["COUNT", "7"],
      ["COUNT", "1000"],
      ["COUNT", "1"],
      ["TYPE", "list"],
      ["TYPE", "mmap"],
      ["type", "MMAP", "count", "13"],
    ]) {
      const { keys: found, calls } = scanAll(...options);
      expect(found.length).toBe(ALL_KEYS.length);
      expect(sorted(found)).toEqual(sorted(ALL_KEYS));
      if (options[1] === "1") expect(calls).toBeGreaterThanOrEqual(ALL_KEYS.length);
    }
  });

  test("SCAN with MATCH and TYPE filters", () => {
    const users = scanAll("MATCH", "user:*", "COUNT", "9");
    expect(sorted(users.keys)).toEqual(sorted(USERS));
    expect(users.keys.length).toBe(USERS.length);
    expect(sorted(scanAll("MATCH", "item:?").keys)).toEqual(sorted(ITEMS.slice(0, 10)));
    expect(scanAll("MATCH", "nomatch*", "COUNT", "50").keys).toEqual([]);
    expect(scanAll("TYPE", "string").keys).toEqual([]);
    expect(sorted(scanAll("MATCH", "w:*", "TYPE", "mmap").keys)).toEqual(["w:a", "w:b"]);
  });

  test("SCAN's reply: the next cursor as a bulk string and a page of keys, in both protocols", () => {
    for (const proto of [2, 3] as const) {
      const reply = run(["SCAN", "0", "MATCH", "w:a", "COUNT", "1000"], proto);
      expect(reply).toBe(`*2\r\n${bulk("0")}*1\r\n${bulk("w:a")}`);
    }
  });

  test("SCAN's errors", () => {
    expect(run(["SCAN", "abc"])).toBe(err("ERR invalid cursor"));
    expect(run(["SCAN", "-1"])).toBe(err("ERR invalid cursor"));
    expect(run(["SCAN", "0", "COUNT", "0"])).toBe(err("ERR syntax error"));
    expect(run(["SCAN", "0", "COUNT", "x"])).toBe(err("ERR value is not an integer or out of range"));
    expect(run(["SCAN", "0", "MATCH"])).toBe(err("ERR syntax error"));
    expect(run(["SCAN", "0", "BOGUS", "1"])).toBe(err("ERR syntax error"));
    expect(run(["SCAN"])).toBe(err("ERR wrong number of arguments for 'scan' command"));
  });
});

describe("SCAN's cursor over several shards", () => {
  const first = shardHarness({ index: 0, count: 2 });
  const last = shardHarness({ index: 1, count: 2 });

  test("a shard's last page hands the cursor to the next shard; the last shard's ends the scan", () => {
    for (const s of [first, last]) {
      fs.writeFileSync(s.file("one.i8"), new Uint8Array([1]));
      expect(s.run(["MMAP", "k", "one.i8", "int8"])).toBe(int(1));
    }
    expect(first.run(["SCAN", "0"])).toBe(`*2\r\n${bulk("1")}*1\r\n${bulk("k")}`);
    expect(last.run(["SCAN", "1"])).toBe(`*2\r\n${bulk("0")}*1\r\n${bulk("k")}`);
  });

  test("on a shard's own cursor, SCAN's TYPE takes list (what TYPE says) and mmap", () => {
    expect(last.run(["TYPE", "k"])).toBe("+list\r\n");
    expect(last.run(["TYPE", "nokey"])).toBe("+none\r\n");
    const page = `*2\r\n${bulk("0")}*1\r\n${bulk("k")}`;
    expect(last.run(["SCAN", "1", "TYPE", "list"])).toBe(page);
    expect(last.run(["SCAN", "1", "TYPE", "MMAP"])).toBe(page);
    expect(last.run(["SCAN", "1", "TYPE", "string"])).toBe(`*2\r\n${bulk("0")}*0\r\n`);
  });
});

describe("unbinding", () => {
  test("DEL and UNLINK unbind and leave the files as they were", () => {
    const files = snapshotFiles();
    const [a0, a1] = USERS;
    const [b0, b1] = ITEMS;
    expect(run(["DEL", a0!, a1!, "nosuchkey", a0!])).toBe(int(2));
    expect(run(["EXISTS", a0!, a1!])).toBe(int(0));
    expect(run(["UNLINK", b0!, "w:a", b1!, "nosuchkey"])).toBe(int(3));
    expect(run(["EXISTS", b0!, b1!, "w:a"])).toBe(int(0));
    expect(run(["DEL", a0!])).toBe(int(0));
    expect(run(["DBSIZE"])).toBe(int(ALL_KEYS.length - 5));
    expect(run(["TYPE", "w:a"])).toBe("+none\r\n");
    expect(run(["VCOUNT", "w:a"])).toBe(err("ERR You must do MMAP first"));
    expect(snapshotFiles()).toEqual(files);
    expect(run(["DEL"])).toBe(err("ERR wrong number of arguments for 'del' command"));
    expect(run(["UNLINK"])).toBe(err("ERR wrong number of arguments for 'unlink' command"));
    expect(run(["EXISTS"])).toBe(err("ERR wrong number of arguments for 'exists' command"));
  });

  test("FLUSHDB and FLUSHALL unbind every key and never change a file", () => {
    const files = snapshotFiles();
    expect(run(["FLUSHDB"])).toBe("+OK\r\n");
    expect(run(["DBSIZE"])).toBe(int(0));
    expect(run(["KEYS", "*"])).toBe("*0\r\n");
    expect(scanAll().keys).toEqual([]);
    expect(snapshotFiles()).toEqual(files);

    expect(run(["MMAP", "w:a", fileOf("w:a")])).toBe(int(2));
    expect(run(["MMAP", "user:1", "shared.f64", "double"])).toBe(int(3));
    expect(run(["FLUSHDB", "SYNC"])).toBe("+OK\r\n");
    expect(run(["DBSIZE"])).toBe(int(0));

    expect(run(["MMAP", "w:a", fileOf("w:a")])).toBe(int(2));
    expect(run(["MMAP", "item:1", "shared.f64", "double"])).toBe(int(3));
    expect(run(["FLUSHALL"], 3)).toBe("+OK\r\n");
    expect(run(["DBSIZE"])).toBe(int(0));
    expect(run(["FLUSHALL", "ASYNC"])).toBe("+OK\r\n");
    expect(run(["FLUSHALL", "BOGUS"])).toBe(err("ERR syntax error"));
    expect(run(["FLUSHDB", "SYNC", "ASYNC"])).toBe(err("ERR syntax error"));
    expect(snapshotFiles()).toEqual(files);
  });
});

describe("SCAN while the keyspace changes", () => {
  test("every key present from start to end is returned, though others are deleted meanwhile", () => {
    const scanKeys = Array.from({ length: 120 }, (_, i) => `scan:${i}`);
    for (const key of scanKeys) expect(run(["MMAP", key, "shared.f64", "double"])).toBe(int(3));
    // Keys with an even number stay; odd ones are deleted once a page has returned them, and
    // every third odd key is deleted before any page could.
    const stays = (key: string) => Number(key.slice(5)) % 2 === 0;
    const early = scanKeys.filter((k) => !stays(k) && Number(k.slice(5)) % 3 === 0);
    expect(run(["DEL", ...early])).toBe(int(early.length));

    const seen: string[] = [];
    let cursor = "0";
    let calls = 0;
    do {
      const [next, page] = decoded(run(["SCAN", cursor, "COUNT", "5"])) as [string, string[]];
      cursor = next;
      seen.push(...page);
      const goners = page.filter((k) => !stays(k));
      if (goners.length > 0) expect(run(["DEL", ...goners])).toBe(int(goners.length));
      expect(++calls).toBeLessThan(1000);
    } while (cursor !== "0");
    const stable = scanKeys.filter(stays);
    expect(sorted(seen.filter(stays))).toEqual(sorted(stable));
    expect(seen.filter((k) => early.includes(k))).toEqual([]);
    expect(run(["DBSIZE"])).toBe(int(stable.length));
  });
});
