/**
 * The transaction rows: `MULTI; VSET a i v; VSET b i v; EXEC` with both keys on one shard and with
 * the keys on two shards, against Redis's `MULTI; SET a v; SET b v; EXEC`. redis-benchmark sends
 * one command per request, so a small client of our own does it: N connections, each sending a
 * prepared batch of transactions and waiting for all of its replies before the next, the same
 * client and the same batches against both servers. It reports transactions per second, the
 * batch round trip's p50/p99, and the server's CPU per transaction.
 */
import path from "node:path";
import { measuringCpu, medianCpu, perRequest } from "./cpu.ts";
import { type BenchData, expectEqual, withClient } from "./fixtures.ts";
import type { RunningMmapd, RunningServer } from "./processes.ts";
import { RawConnection } from "./raw_client.ts";
import type { TransactionRow, TransactionRun } from "./report.ts";
import { resp } from "./resp_client.ts";
import { median, percentile } from "./statistics.ts";
import { shardOf } from "../core/slots.ts";
import { writeDoubles } from "./data.ts";

/** Transactions per batch: one (each transaction waits for the last) and 16 (pipelined). */
export const TRANSACTION_BATCHES = [1, 16] as const;
/** Values in each transaction key's file; the transactions write indices below it. */
const TRANSACTION_KEY_VALUES = 1_000;
/** Replies of one transaction: +OK, +QUEUED, +QUEUED and EXEC's array. */
const REPLIES_PER_TRANSACTION = 4;

const encoder = new TextEncoder();
const shardOfKey = (key: string, workers: number) => {
  const bytes = encoder.encode(key);
  return shardOf(bytes, 0, bytes.length, workers);
};

interface TransactionTest {
  name: string;
  keys: [string, string];
  shards: [number, number];
  /** The least tx/s ratio to Redis set for this machine. */
  goal: string;
}

/** The two tests for mmapd's worker count: keys sharing a hash tag (one shard), and keys on two shards (none with one worker). */
export function transactionTests(workers: number): TransactionTest[] {
  const oneShard: [string, string] = ["{t}a", "{t}b"];
  const shardsOf = (keys: [string, string]): [number, number] => [shardOfKey(keys[0], workers), shardOfKey(keys[1], workers)];
  if (shardsOf(oneShard)[0] !== shardsOf(oneShard)[1]) throw new Error(`${oneShard.join(" and ")} should share a shard`);
  const tests: TransactionTest[] = [{ name: "MULTI, 2 writes, one shard", keys: oneShard, shards: shardsOf(oneShard), goal: "≥ 0.8" }];
  if (workers > 1) {
    const first = "tx:a";
    let second = "";
    for (let n = 0; second === ""; n++) if (shardOfKey(`tx:b${n}`, workers) !== shardOfKey(first, workers)) second = `tx:b${n}`;
    tests.push({ name: "MULTI, 2 writes, two shards", keys: [first, second], shards: shardsOf([first, second]), goal: "≥ 0.5" });
  }
  return tests;
}

/** Binds every transaction key in mmapd to a file of TRANSACTION_KEY_VALUES doubles. */
export async function bindTransactionKeys(mmapd: RunningMmapd, tests: TransactionTest[], data: BenchData): Promise<void> {
  await withClient(mmapd, async (client) => {
    for (const key of tests.flatMap((t) => t.keys)) {
      const file = `tx-${key.replace(/[^a-z0-9]/gi, "_")}.f64`;
      writeDoubles(path.join(mmapd.dir, file), data.values.subarray(0, TRANSACTION_KEY_VALUES));
      expectEqual(`MMAP ${key}`, await client.expect("MMAP", key, file), TRANSACTION_KEY_VALUES);
    }
  });
}

/** One batch of transactions as bytes: mmapd's VSET at varied indices, or Redis's SET. */
function batchBytes(server: "mmapd" | "redis", keys: [string, string], transactions: number, value: string): Uint8Array {
  const commands: Uint8Array[] = [];
  for (let t = 0; t < transactions; t++) {
    const index = String((t * 37) % TRANSACTION_KEY_VALUES);
    commands.push(resp("MULTI"));
    for (const key of keys) commands.push(server === "mmapd" ? resp("VSET", key, index, value) : resp("SET", key, value));
    commands.push(resp("EXEC"));
  }
  return Buffer.concat(commands);
}

/** N connections send batches back to back until `transactions` have been answered; any error or refused EXEC fails the run. */
async function runTransactionLoad(port: number, batch: Uint8Array, perBatch: number, transactions: number, connections: number) {
  const batches = Math.max(1, Math.round(transactions / perBatch));
  const latencies = new Float64Array(batches);
  let started = 0;
  let finished = 0;
  const clients = await Promise.all(Array.from({ length: connections }, () => RawConnection.connect(port)));
  const begin = performance.now();
  try {
    await Promise.all(
      clients.map(async (client) => {
        let replies = 0;
        while (started < batches) {
          started++;
          const sent = performance.now();
          client.send(batch);
          replies += perBatch * REPLIES_PER_TRANSACTION;
          await client.until(replies);
          latencies[finished++] = performance.now() - sent;
        }
      }),
    );
  } finally {
    for (const client of clients) client.close();
  }
  const seconds = (performance.now() - begin) / 1000;
  const errors = clients.flatMap((c) => c.scanner.errors);
  const errorCount = clients.reduce((sum, c) => sum + c.scanner.errorCount, 0);
  const refused = clients.reduce((sum, c) => sum + c.scanner.nulls, 0);
  if (errorCount > 0) throw new Error(`transactions: ${errorCount} error replies, the first: ${errors[0]}`);
  if (refused > 0) throw new Error(`transactions: ${refused} EXECs answered with a null reply (no WATCH was set)`);
  return {
    transactions: batches * perBatch,
    tps: (batches * perBatch) / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

export interface TransactionSettings {
  transactionsByBatch: Record<number, number>;
  rounds: number;
  connections: number;
}

/** Runs each test at each batch size, mmapd and Redis interleaved, for the rounds asked for. */
export async function runTransactions(
  servers: { mmapd: RunningMmapd; redis: RunningServer },
  tests: TransactionTest[],
  data: BenchData,
  settings: TransactionSettings,
  log: (line: string) => void,
): Promise<TransactionRow[]> {
  const value = data.writtenText;
  const runOn = async (server: RunningServer, threads: boolean, batch: Uint8Array, perBatch: number): Promise<TransactionRun> => {
    const { result, cpu } = await measuringCpu(server.pid, threads, () =>
      runTransactionLoad(server.port, batch, perBatch, settings.transactionsByBatch[perBatch], settings.connections),
    );
    return { tps: result.tps, p50Ms: result.p50Ms, p99Ms: result.p99Ms, cpu: perRequest(cpu, result.transactions) };
  };
  const seen = new Map<string, { mmapd: TransactionRun[]; redis: TransactionRun[] }>();
  for (let round = 1; round <= settings.rounds; round++) {
    for (const perBatch of TRANSACTION_BATCHES) {
      for (const test of tests) {
        const key = `${test.name} ${perBatch}`;
        const runs = seen.get(key) ?? { mmapd: [], redis: [] };
        seen.set(key, runs);
        const m = await runOn(servers.mmapd, true, batchBytes("mmapd", test.keys, perBatch, value), perBatch);
        const r = await runOn(servers.redis, false, batchBytes("redis", test.keys, perBatch, value), perBatch);
        runs.mmapd.push(m);
        runs.redis.push(r);
        log(
          `round ${round}/${settings.rounds}  ${String(perBatch).padStart(2)} per batch  ${test.name.padEnd(28)}  ` +
            `mmapd ${Math.round(m.tps).toLocaleString("en-US").padStart(8)} tx/s (${m.cpu.totalUs.toFixed(1)} µs CPU)  ` +
            `Redis ${Math.round(r.tps).toLocaleString("en-US").padStart(8)} tx/s (${r.cpu.totalUs.toFixed(1)} µs)`,
        );
      }
    }
  }
  await withClient(servers.mmapd, async (client) => {
    for (const key of tests.flatMap((t) => t.keys))
      expectEqual(`mmapd VGET ${key} 0 after the transactions`, await client.expect("VGET", key, "0"), value);
  });
  const medianRun = (runs: TransactionRun[]): TransactionRun => ({
    tps: median(runs.map((r) => r.tps)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    cpu: medianCpu(runs.map((r) => r.cpu)),
  });
  const rows: TransactionRow[] = [];
  for (const perBatch of TRANSACTION_BATCHES) {
    for (const test of tests) {
      const runs = seen.get(`${test.name} ${perBatch}`)!;
      const m = medianRun(runs.mmapd);
      const r = medianRun(runs.redis);
      rows.push({
        test: test.name,
        keys: test.keys,
        shards: test.shards,
        transactionsPerBatch: perBatch,
        transactions: settings.transactionsByBatch[perBatch],
        connections: settings.connections,
        goal: test.goal,
        mmapd: { rounds: runs.mmapd, median: m },
        redis: { rounds: runs.redis, median: r },
        ratio: m.tps / r.tps,
        cpuRatio: m.cpu.totalUs / r.cpu.totalUs,
      });
    }
  }
  return rows;
}
