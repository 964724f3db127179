/**
 * What each server holds before the runs, the same values on both sides: mmapd gets files of
 * float64 bound to keys, Redis the same numbers as text in string keys and lists.
 *
 * | mmapd | Redis | what |
 * |---|---|---|
 * | `k` (1M doubles) | `key:%012d` (1M strings) | standard-normal values: VGET, VMGET, VALL |
 * | `kw` (copy of `k`) | `wkey:%012d` (1M strings) | targets of VSET / SET, so reads keep their values |
 * | `k2` (empty) | `list` (one element) | targets of VADD / RPUSH |
 * | `ks` (1M times 1.5) | `skey:%012d` (the fixed indices) | the earlier shape: one short decimal |
 * | `k10m` (10M doubles) | `biglist` (1M-element list), `big8m` (8 MB string) | big replies |
 */
import path from "node:path";
import { doubleText, spreadIndices, standardNormals, writeDoubles } from "./data.ts";
import type { RunningMmapd, RunningServer } from "./processes.ts";
import { call, ErrorReply, type Reply, RespClient } from "./resp_client.ts";

/** Values in `k` (and keys in Redis); also redis-benchmark's `-r`. */
export const VALUE_COUNT = 1_000_000;
/** Values in `k10m`, the big-reply file (80 MB). */
export const BIG_VALUE_COUNT = 10_000_000;
/** Bytes of Redis's `big8m`: the raw bytes of `k`'s values. */
export const BIG_STRING_BYTES = VALUE_COUNT * Float64Array.BYTES_PER_ELEMENT;
/** The earlier shape's value: a short decimal that prints in three characters. */
const SHORT_DECIMAL = "1.5";
/** The width of Redis key numbers, as redis-benchmark writes `__rand_int__`. */
const KEY_DIGITS = 12;

export const redisKey = (index: number, prefix = "key") => `${prefix}:${String(index).padStart(KEY_DIGITS, "0")}`;

/** The benchmark's values: 10M seeded standard normals, of which `k` holds the first million. */
export class BenchData {
  readonly values = standardNormals(BIG_VALUE_COUNT);
  /** 100 indices spread at random over `k`, the same on every run. */
  readonly spread = spreadIndices(100, VALUE_COUNT);
  /** 100 neighbouring indices: the earlier shape. */
  readonly neighbours = Array.from({ length: 100 }, (_, i) => i);
  /** The value VSET / SET and VADD / RPUSH write: one of the normals, as text. */
  readonly writtenText = doubleText(this.values[VALUE_COUNT + 1]);

  text(index: number): string {
    return doubleText(this.values[index]);
  }
}

export async function withClient<T>(server: RunningServer, use: (client: RespClient) => Promise<T>): Promise<T> {
  const client = await RespClient.connect(server.port);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

export function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function expectOk(client: RespClient, what: string, args: (string | Uint8Array)[]): Promise<Reply> {
  const reply = await call(client, ...args);
  if (reply instanceof ErrorReply) throw new Error(`${what}: ${reply.message}`);
  return reply;
}

async function pipelineOk(client: RespClient, what: string, commands: Iterable<string[]>): Promise<void> {
  const { errors } = await client.pipeline(commands);
  if (errors.length > 0) throw new Error(`${what}: ${errors.length} error replies, the first: ${errors[0]}`);
}

async function bind(client: RespClient, server: RunningMmapd, key: string, file: string, values: Float64Array): Promise<void> {
  writeDoubles(path.join(server.dir, file), values);
  expectEqual(`${server.label}: MMAP ${key}`, await expectOk(client, `MMAP ${key}`, ["MMAP", key, file]), BigInt(values.length));
}

/** Binds `k` (and, with `everything`, every other key of the table above) in mmapd. */
export async function loadMmapd(mmapd: RunningMmapd, data: BenchData, everything: boolean): Promise<void> {
  const k = data.values.subarray(0, VALUE_COUNT);
  await withClient(mmapd, async (client) => {
    await bind(client, mmapd, "k", "k.f64", k);
    if (!everything) return;
    await bind(client, mmapd, "kw", "kw.f64", k);
    await bind(client, mmapd, "k2", "k2.f64", new Float64Array(0));
    await bind(client, mmapd, "ks", "ks.f64", new Float64Array(VALUE_COUNT).fill(Number(SHORT_DECIMAL)));
    await bind(client, mmapd, "k10m", "k10m.f64", data.values);
  });
}

/** Loads the Redis side of the table above. */
export async function loadRedis(redis: RunningServer, data: BenchData): Promise<void> {
  await withClient(redis, async (client) => {
    function* sets(prefix: string) {
      for (let i = 0; i < VALUE_COUNT; i++) yield ["SET", redisKey(i, prefix), data.text(i)];
    }
    await pipelineOk(client, "loading Redis key:*", sets("key"));
    await pipelineOk(client, "loading Redis wkey:*", sets("wkey"));
    const shortKeys = [...new Set([...data.spread, ...data.neighbours])];
    await pipelineOk(
      client,
      "loading Redis skey:*",
      shortKeys.map((i) => ["SET", redisKey(i, "skey"), SHORT_DECIMAL]),
    );
    function* pushes() {
      const perCommand = 1_000;
      for (let i = 0; i < VALUE_COUNT; i += perCommand) {
        const values = Array.from({ length: Math.min(perCommand, VALUE_COUNT - i) }, (_, j) => data.text(i + j));
        yield ["RPUSH", "biglist", ...values];
      }
    }
    await pipelineOk(client, "loading Redis biglist", pushes());
    const raw = new Uint8Array(data.values.buffer, 0, BIG_STRING_BYTES);
    await expectOk(client, "SET big8m", ["SET", "big8m", raw]);
    expectEqual("RPUSH list", await expectOk(client, "RPUSH list", ["RPUSH", "list", data.writtenText]), 1n);
    expectEqual("Redis DBSIZE after loading", await expectOk(client, "DBSIZE", ["DBSIZE"]), BigInt(2 * VALUE_COUNT + shortKeys.length + 3));
  });
}

/** Checks, after the runs, that every server still answers with the values it was given, and that appends matched. */
export async function verifyServers(mmapd: RunningMmapd, oneWorker: RunningMmapd, redis: RunningServer, data: BenchData): Promise<void> {
  const probes = [0, data.spread[50], VALUE_COUNT - 1];
  const appended = await withClient(mmapd, async (client) => {
    expectEqual("mmapd VCOUNT k", await client.expect("VCOUNT", "k"), VALUE_COUNT);
    for (const i of probes) expectEqual(`mmapd VGET k ${i}`, await client.expect("VGET", "k", String(i)), data.text(i));
    expectEqual("mmapd VGET ks 0", await client.expect("VGET", "ks", "0"), SHORT_DECIMAL);
    expectEqual(
      `mmapd VGET k10m ${BIG_VALUE_COUNT - 1}`,
      await client.expect("VGET", "k10m", String(BIG_VALUE_COUNT - 1)),
      data.text(BIG_VALUE_COUNT - 1),
    );
    return client.expect("VCOUNT", "k2");
  });
  await withClient(oneWorker, async (client) =>
    expectEqual("mmapd --workers 1 VGET k 0", await client.expect("VGET", "k", "0"), data.text(0)),
  );
  const pushed = await withClient(redis, async (client) => {
    for (const i of probes) expectEqual(`Redis GET ${redisKey(i)}`, await client.expect("GET", redisKey(i)), data.text(i));
    return ((await client.expect("LLEN", "list")) as number) - 1;
  });
  expectEqual("values appended by VADD in mmapd (VCOUNT k2) against elements pushed by RPUSH in Redis (LLEN list - 1)", appended, pushed);
}
