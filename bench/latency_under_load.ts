/**
 * A main-thread command's latency while one shard is busy: a client sends PING once a millisecond
 * while redis-benchmark keeps 50 connections of `VMGET` of 100 spread indices (pipelines of 16)
 * going on one key; on Redis, PING while the same clients send MGET of the same 100 keys. It shows
 * whether other clients wait behind a slow shard: the main thread does not block on a shard whose
 * turns take long, but reads other sockets meanwhile.
 */
import { RespClient } from "./resp_client.ts";
import { runRedisBenchmark } from "./redis_benchmark.ts";
import type { RunningServer } from "./processes.ts";
import { median } from "./statistics.ts";

export interface LatencyUnderLoadRow {
  server: string;
  load: string;
  /** Requests per second of the load (median over rounds). */
  loadRps: number;
  /** PINGs answered during the load, and their latency in ms (medians over rounds). */
  pings: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const LOAD_REQUESTS = 150_000;
/** The probe starts after the load has begun, and waits this long between two PINGs. */
const PROBE_START_MS = 300;
const PROBE_GAP_MS = 1;

/** The q-quantile of ascending `sorted`. */
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** PINGs one at a time until `done()`; their round-trip times in ms. */
async function probe(server: RunningServer, done: () => boolean): Promise<number[]> {
  const client = await RespClient.connect(server.port);
  const times: number[] = [];
  try {
    await Bun.sleep(PROBE_START_MS);
    while (!done()) {
      const t0 = performance.now();
      const reply = await client.text("PING");
      if (reply !== "+PONG\r\n") throw new Error(`PING under load answered ${JSON.stringify(reply)}`);
      times.push(performance.now() - t0);
      await Bun.sleep(PROBE_GAP_MS);
    }
  } finally {
    client.close();
  }
  return times;
}

/** Runs the probe under each server's load, interleaved over `rounds`. */
export async function runLatencyUnderLoad(
  targets: { server: RunningServer; label: string; load: string[] }[],
  rounds: number,
  log: (line: string) => void,
): Promise<LatencyUnderLoadRow[]> {
  const runs = new Map<string, { rps: number; times: number[] }[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const target of targets) {
      let finished = false;
      const load = runRedisBenchmark(
        target.server.port,
        { clients: 50, requests: LOAD_REQUESTS, pipeline: 16, randomRange: null },
        target.load,
      ).finally(() => {
        finished = true;
      });
      const times = await probe(target.server, () => finished);
      const { rps } = await load;
      if (times.length === 0) throw new Error(`no PING was answered during the load on ${target.label}`);
      times.sort((a, b) => a - b);
      log(
        `round ${round}/${rounds}  PING under ${target.load[0]} load  ${target.label.padEnd(6)} p50 ${quantile(times, 0.5).toFixed(2)} ms, p99 ${quantile(times, 0.99).toFixed(2)} ms (${times.length} PINGs; load ${Math.round(rps).toLocaleString("en-US")} req/s)`,
      );
      const list = runs.get(target.label) ?? [];
      list.push({ rps, times });
      runs.set(target.label, list);
    }
  }
  return targets.map((target) => {
    const all = runs.get(target.label)!;
    return {
      server: target.label,
      load: `${target.load[0]} of ${target.load.length - (target.load[0] === "VMGET" ? 2 : 1)} values, -c 50 -P 16`,
      loadRps: median(all.map((r) => r.rps)),
      pings: median(all.map((r) => r.times.length)),
      p50Ms: median(all.map((r) => quantile(r.times, 0.5))),
      p99Ms: median(all.map((r) => quantile(r.times, 0.99))),
      maxMs: median(all.map((r) => r.times.at(-1)!)),
    };
  });
}
