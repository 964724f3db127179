/**
 * The soak (`npm run bench -- --soak`, not CI): minutes of mixed load on one mmapd, looking for
 * what a short run cannot show: memory that creeps up, replies that slow down, errors, workers
 * that die. 50 clients (one request in flight each) run VGET, VSET, VMGET, VADD, VALL, MMAP and DEL
 * over 1,000 keys; each client owns its keys (key i belongs to client i mod clients), so it always
 * knows whether a key is bound and how many values it holds, and a correct server never answers
 * with an error. Every 10 s: RSS, server CPU (main thread, workers, other), requests, p99 latency,
 * error replies and INFO's shard_restarts. The run fails on any error reply, any count that
 * differs from the client's own, or any worker restart.
 */
import path from "node:path";
import { cpuBetween, cpuSnapshot, type CpuSnapshot } from "./cpu.ts";
import { doubleText, SeededRandom, standardNormals, writeDoubles } from "./data.ts";
import { withClient } from "./fixtures.ts";
import { makeTempDir, residentKiB, type RunningMmapd, startMmapd } from "./processes.ts";
import { RawConnection } from "./raw_client.ts";
import { resp } from "./resp_client.ts";
import { LatencyHistogram, slope } from "./statistics.ts";

const KEYS = 1_000;
/** Values in each key's file at the start. */
const VALUES_PER_KEY = 1_000;
/** VADD turns into VSET once a key holds this many values, so files and VALL replies stay bounded. */
const MOST_VALUES_PER_KEY = 2_000;
const SAMPLE_SECONDS = 10;
/**
 * How often each operation is chosen, out of their sum (a key that is not bound is always bound
 * first). MMAP and DEL are rare, as changes of bindings are: each is logged and synced to disk.
 */
const WEIGHTS = { VGET: 40, VSET: 20, VMGET: 15, VADD: 12, VALL: 8, MMAP: 3, DEL: 2 } as const;
type Operation = keyof typeof WEIGHTS;
const OPERATIONS = Object.keys(WEIGHTS) as Operation[];
const OPERATION_TABLE: Operation[] = OPERATIONS.flatMap((op) => Array<Operation>(WEIGHTS[op]).fill(op));

export interface SoakSettings {
  seconds: number;
  clients: number;
}

interface SoakSample {
  atSeconds: number;
  rssMiB: number | null;
  anonMiB: number | null;
  requests: number;
  requestsPerSecond: number;
  p99Ms: number;
  /** Server CPU over the interval, as a share of one core (1.0 = one core busy), by thread group. */
  cpuCores: { total: number; main: number | null; workers: number[] | null; other: number | null };
  errorReplies: number;
  shardRestarts: number;
}

export interface SoakResults {
  date: string;
  settings: SoakSettings & { keys: number; sampleSeconds: number; weights: Record<Operation, number> };
  workers: number;
  idleRssMiB: number | null;
  samples: SoakSample[];
  /** Requests and latency (ms) of each operation over the whole run. */
  operations: Record<Operation, { requests: number; p50Ms: number; p99Ms: number; maxBucketMs: number }>;
  /** Least-squares slope of RSS over the second half of the run, MiB per minute. */
  rssSlopeMiBPerMinute: number;
  errorReplies: number;
  firstErrors: string[];
  countMismatches: string[];
  shardRestarts: number;
  passed: boolean;
}

/** The state of one key, known to the one client that uses it. */
interface KeyState {
  name: string;
  file: string;
  bound: boolean;
  count: number;
}

/** Everything the clients share: counts for the report and the latencies of the current sample. */
class SoakLoad {
  stopping = false;
  requests = 0;
  /** Latencies of the current sample. */
  window = new LatencyHistogram();
  /** Latencies of the whole run, by operation. */
  readonly byOperation = Object.fromEntries(OPERATIONS.map((op) => [op, new LatencyHistogram()])) as Record<Operation, LatencyHistogram>;
  readonly countMismatches: string[] = [];
}

/** One client's loop: a random key of its own, a random operation, one request at a time, until told to stop. */
async function clientLoop(connection: RawConnection, keys: KeyState[], seed: number, values: Float64Array, load: SoakLoad): Promise<void> {
  const random = new SeededRandom(seed);
  const valueText = () => doubleText(values[random.below(values.length)]);
  let expected = 0;
  while (!load.stopping) {
    const key = keys[random.below(keys.length)];
    let op: Operation = key.bound ? OPERATION_TABLE[random.below(OPERATION_TABLE.length)] : "MMAP";
    if (op === "VADD" && key.count >= MOST_VALUES_PER_KEY) op = "VSET";
    let command: string[];
    let added = 0;
    switch (op) {
      case "VGET":
        command = ["VGET", key.name, String(random.below(key.count))];
        break;
      case "VSET":
        command = ["VSET", key.name, String(random.below(key.count)), valueText()];
        break;
      case "VMGET":
        command = ["VMGET", key.name, ...Array.from({ length: 10 }, () => String(random.below(key.count)))];
        break;
      case "VADD":
        added = 1 + random.below(4);
        command = ["VADD", key.name, ...Array.from({ length: added }, valueText)];
        break;
      case "VALL":
        command = ["VALL", key.name];
        break;
      case "MMAP":
        command = ["MMAP", key.name, key.file];
        break;
      case "DEL":
        command = ["DEL", key.name];
        break;
    }
    const sent = performance.now();
    connection.send(resp(...command));
    await connection.until(++expected);
    const latency = performance.now() - sent;
    load.window.record(latency);
    load.byOperation[op].record(latency);
    load.requests++;
    const number = connection.scanner.lastTopNumber;
    if (op === "VADD") key.count += added;
    else if (op === "DEL") key.bound = false;
    else if (op === "MMAP") {
      if (number !== key.count && load.countMismatches.length < 20)
        load.countMismatches.push(`MMAP ${key.name} answered ${number}, the client counted ${key.count}`);
      key.bound = true;
    } else if (op === "VALL" && number !== key.count && load.countMismatches.length < 20) {
      load.countMismatches.push(`VALL ${key.name} held ${number} values, the client counted ${key.count}`);
    }
  }
}

async function infoField(mmapd: RunningMmapd, field: string): Promise<number> {
  const info = await withClient(mmapd, (client) => client.expect("INFO", "stats"));
  const match = new RegExp(`^${field}:(\\d+)`, "m").exec(String(info));
  if (match === null) throw new Error(`INFO stats has no ${field}`);
  return Number(match[1]);
}

/** Starts mmapd, binds the keys, runs the load for the time asked for while sampling, and returns the figures. */
export async function runSoak(settings: SoakSettings, log: (line: string) => void): Promise<SoakResults> {
  const mmapd = await startMmapd("mmapd (soak)", makeTempDir("mmapd-soak-"));
  log(`mmapd (${mmapd.workers} workers) on port ${mmapd.port}, pid ${mmapd.pid}`);
  const values = standardNormals(KEYS * VALUES_PER_KEY);
  const keys: KeyState[] = [];
  await withClient(mmapd, async (client) => {
    for (let i = 0; i < KEYS; i++) {
      const key: KeyState = { name: `soak:${i}`, file: `soak-${i}.f64`, bound: true, count: VALUES_PER_KEY };
      writeDoubles(path.join(mmapd.dir, key.file), values.subarray(i * VALUES_PER_KEY, (i + 1) * VALUES_PER_KEY));
      await client.expect("MMAP", key.name, key.file);
      keys.push(key);
    }
  });
  await Bun.sleep(1_000);
  const idleKiB = residentKiB(mmapd.pid);
  const mib = (kib: number | null) => (kib === null ? null : kib / 1024);
  log(`${KEYS} keys bound; idle RSS ${mib(idleKiB)?.toFixed(1)} MiB; ${settings.clients} clients for ${settings.seconds} s`);

  const load = new SoakLoad();
  const connections = await Promise.all(Array.from({ length: settings.clients }, () => RawConnection.connect(mmapd.port)));
  const loops = connections.map((connection, c) =>
    clientLoop(
      connection,
      keys.filter((_, i) => i % settings.clients === c),
      1_000 + c,
      values,
      load,
    ),
  );
  const loopsDone = Promise.all(loops);
  let failure: Error | null = null;
  loopsDone.catch((e: Error) => {
    failure ??= e;
    load.stopping = true;
  });

  const samples: SoakSample[] = [];
  const started = performance.now();
  let previous: CpuSnapshot | null = cpuSnapshot(mmapd.pid);
  let previousRequests = 0;
  const errorReplies = () => connections.reduce((sum, c) => sum + c.scanner.errorCount, 0);
  log("    s   RSS MiB  anon MiB      req/s  p99 ms   CPU cores (main / workers / other)   errors  restarts");
  while (!load.stopping) {
    const elapsed = (performance.now() - started) / 1000;
    const nextSample = (samples.length + 1) * SAMPLE_SECONDS;
    const end = Math.min(nextSample, settings.seconds);
    await Promise.race([Bun.sleep(Math.max(0, (end - elapsed) * 1000)), loopsDone.catch(() => undefined)]);
    if (failure !== null) break;
    const now = cpuSnapshot(mmapd.pid);
    if (now === null || previous === null)
      throw new Error(`mmapd (pid ${mmapd.pid}) is gone; its last output:\n${mmapd.output().slice(-2000)}`);
    const cpu = cpuBetween(mmapd.pid, previous, now, true);
    const latencies = load.window;
    load.window = new LatencyHistogram();
    const requests = load.requests - previousRequests;
    previousRequests = load.requests;
    const sample: SoakSample = {
      atSeconds: Math.round((performance.now() - started) / 1000),
      rssMiB: mib(residentKiB(mmapd.pid)),
      anonMiB: mib(residentKiB(mmapd.pid, "RssAnon")),
      requests,
      requestsPerSecond: requests / cpu.wallSeconds,
      p99Ms: latencies.percentile(99),
      cpuCores: {
        total: cpu.totalSeconds / cpu.wallSeconds,
        main: cpu.mainSeconds === null ? null : cpu.mainSeconds / cpu.wallSeconds,
        workers: cpu.workerSeconds?.map((s) => s / cpu.wallSeconds) ?? null,
        other: cpu.otherSeconds === null ? null : cpu.otherSeconds / cpu.wallSeconds,
      },
      errorReplies: errorReplies(),
      shardRestarts: await infoField(mmapd, "shard_restarts"),
    };
    samples.push(sample);
    previous = now;
    const cores = sample.cpuCores;
    const split = `${cores.total.toFixed(2)} (${cores.main?.toFixed(2)} / ${cores.workers?.map((w) => w.toFixed(2)).join(" + ")} / ${cores.other?.toFixed(2)})`;
    log(
      `${String(sample.atSeconds).padStart(5)}  ${sample.rssMiB?.toFixed(1).padStart(8)}  ${sample.anonMiB?.toFixed(1).padStart(8)}  ` +
        `${Math.round(sample.requestsPerSecond).toLocaleString("en-US").padStart(9)}  ${sample.p99Ms.toFixed(2).padStart(6)}   ${split.padEnd(36)}  ` +
        `${String(sample.errorReplies).padStart(6)}  ${String(sample.shardRestarts).padStart(8)}`,
    );
    if (end >= settings.seconds) load.stopping = true;
  }
  await loopsDone.catch(() => undefined);
  for (const connection of connections) connection.close();
  if (failure !== null) throw failure;

  const secondHalf = samples.filter((s) => s.atSeconds > settings.seconds / 2 && s.rssMiB !== null);
  const rssSlopeMiBPerMinute = slope(secondHalf.map((s) => ({ x: s.atSeconds / 60, y: s.rssMiB! })));
  const shardRestarts = await infoField(mmapd, "shard_restarts");
  const total = errorReplies();
  return {
    date: new Date().toISOString(),
    settings: { ...settings, keys: KEYS, sampleSeconds: SAMPLE_SECONDS, weights: { ...WEIGHTS } },
    workers: mmapd.workers,
    idleRssMiB: mib(idleKiB),
    samples,
    operations: Object.fromEntries(
      OPERATIONS.map((op) => {
        const h = load.byOperation[op];
        return [op, { requests: h.count, p50Ms: h.percentile(50), p99Ms: h.percentile(99), maxBucketMs: h.percentile(100) }];
      }),
    ) as SoakResults["operations"],
    rssSlopeMiBPerMinute,
    errorReplies: total,
    firstErrors: connections.flatMap((c) => c.scanner.errors).slice(0, 5),
    countMismatches: load.countMismatches,
    shardRestarts,
    passed: total === 0 && load.countMismatches.length === 0 && shardRestarts === 0,
  };
}
