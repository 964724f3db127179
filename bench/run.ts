/**
 * The side-by-side benchmark (`npm run bench`): mmapd against Redis, both measured by
 * redis-benchmark on this machine, on loopback, with the same load.
 *
 * It starts mmapd (default workers, and `--workers 1`) and a redis-server with persistence off,
 * each on a free port with a temporary directory; loads the same data into both (a file of
 * 1,000,000 doubles bound as `k` against 1,000,000 string keys `key:%012d`, an empty `k2` against
 * a list); runs every test once as a warm-up (mmapd compiles its code as it runs); then runs each
 * pair of equivalent commands interleaved (mmapd, Redis, mmapd, Redis ...) for a number of rounds
 * at `-P 1` and `-P 16`, and reports the median of the rounds. It also
 * measures mmapd's resident memory at idle and after binding an 8 GiB sparse file.
 *
 * Any error reply, failed run or missing number fails the whole run (exit 1): a broken server
 * must never look fast. Results: a table on stdout, bench/results/latest.json, bench/results/ratios.svg.
 *
 *   bun bench/run.ts [--quick] [--requests N] [--requests-p1 N] [--requests-p16 N] [--rounds N]
 *                    [--clients N] [--out DIR]
 */
import { spawnSync } from "bun";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cleanUp, makeTempDir, onPath, residentKiB, startMmapd, startRedis, type RunningMmapd, type RunningServer } from "./processes.ts";
import { runRedisBenchmark, type LoadShape, type Measurement } from "./redis_benchmark.ts";
import { formatTable, medianOf, writeJson, writeSvg, type MemoryReport, type Results, type ResultRow, type VariantResult } from "./report.ts";
import { RespClient } from "./resp_client.ts";

const INSTALL_LINE = "apt-get install -y redis-server redis-tools";
/** Values in `k`, and string keys in Redis; also redis-benchmark's `-r`. */
const VALUE_COUNT = 1_000_000;
const STORED_VALUE = 1.5;
const SPARSE_FILE_BYTES = 8 * 2 ** 30;
const SPARSE_VALUES_READ = 1_000;
/** Growth of mmapd's RSS from reading the sparse file that counts as mapping it into memory. */
const SPARSE_RSS_GROWTH_LIMIT_KIB = 256 * 1024;
const PIPELINES = [1, 16] as const;
/** Requests per test in the warm-up pass, at -P 16. */
const WARM_UP_REQUESTS = 20_000;

interface Settings {
  requestsByPipeline: Record<number, number>;
  rounds: number;
  clients: number;
  outDir: string;
  quick: boolean;
}

const DEFAULT_SETTINGS: Settings = {
  requestsByPipeline: { 1: 50_000, 16: 200_000 },
  rounds: 5,
  clients: 50,
  outDir: path.join(import.meta.dir, "results"),
  quick: false,
};

const USAGE = `Usage: bun bench/run.ts [options]

Runs redis-benchmark against mmapd and Redis side by side and writes a table, latest.json and ratios.svg.

  --quick            a smoke run: 2,000 requests per run, one round
  --requests N       requests per run at both -P 1 and -P 16
  --requests-p1 N    requests per run at -P 1 (default ${DEFAULT_SETTINGS.requestsByPipeline[1]})
  --requests-p16 N   requests per run at -P 16 (default ${DEFAULT_SETTINGS.requestsByPipeline[16]})
  --rounds N         interleaved rounds; each row reports the median (default ${DEFAULT_SETTINGS.rounds})
  --clients N        redis-benchmark -c (default ${DEFAULT_SETTINGS.clients})
  --out DIR          where latest.json and ratios.svg go (default bench/results)
`;

function parseSettings(argv: string[]): Settings {
  const settings: Settings = { ...DEFAULT_SETTINGS, requestsByPipeline: { ...DEFAULT_SETTINGS.requestsByPipeline } };
  const positive = (flag: string, value: string | undefined) => {
    if (value === undefined || !/^[1-9][0-9]*$/.test(value)) usageError(`${flag} needs a positive integer`);
    return Number(value);
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stdout.write(USAGE);
      process.exit(0);
    } else if (flag === "--quick") {
      settings.quick = true;
      settings.requestsByPipeline = { 1: 2_000, 16: 2_000 };
      settings.rounds = 1;
    } else if (flag === "--requests") {
      const n = positive(flag, argv[++i]);
      settings.requestsByPipeline = { 1: n, 16: n };
    } else if (flag === "--requests-p1") settings.requestsByPipeline[1] = positive(flag, argv[++i]);
    else if (flag === "--requests-p16") settings.requestsByPipeline[16] = positive(flag, argv[++i]);
    else if (flag === "--rounds") settings.rounds = positive(flag, argv[++i]);
    else if (flag === "--clients") settings.clients = positive(flag, argv[++i]);
    else if (flag === "--out") {
      if (argv[i + 1] === undefined) usageError("--out needs a directory");
      settings.outDir = path.resolve(argv[++i]);
    } else usageError(`unknown option '${flag}'`);
  }
  return settings;
}

function usageError(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

/** One pair of equivalent loads: the redis-benchmark arguments for mmapd and for Redis. */
interface PairedTest {
  name: string;
  mmapd: string[];
  redis: string[];
  /** Whether the commands hold `__rand_int__` (then `-r` is passed). */
  random: boolean;
  /** Whether mmapd `--workers 1` runs it too. */
  withOneWorker: boolean;
}

const redisKey = (index: number) => `key:${String(index).padStart(12, "0")}`;
const repeated = (text: string, times: number) => Array.from({ length: times }, () => text);
const firstHundred = Array.from({ length: 100 }, (_, i) => i);

// redis-benchmark replaces every `__rand_int__` in a command with its own random number.
const TESTS: PairedTest[] = [
  { name: "PING_MBULK", mmapd: ["-t", "ping_mbulk"], redis: ["-t", "ping_mbulk"], random: false, withOneWorker: true },
  { name: "VGET vs GET", mmapd: ["VGET", "k", "__rand_int__"], redis: ["GET", "key:__rand_int__"], random: true, withOneWorker: true },
  { name: "VSET vs SET", mmapd: ["VSET", "k", "__rand_int__", "1.5"], redis: ["SET", "key:__rand_int__", "1.5"], random: true, withOneWorker: false },
  { name: "VADD vs RPUSH", mmapd: ["VADD", "k2", "2.5"], redis: ["RPUSH", "list", "2.5"], random: false, withOneWorker: false },
  { name: "VCOUNT vs LLEN", mmapd: ["VCOUNT", "k"], redis: ["LLEN", "list"], random: false, withOneWorker: false },
  {
    name: "VMGET vs MGET, 10 random",
    mmapd: ["VMGET", "k", ...repeated("__rand_int__", 10)],
    redis: ["MGET", ...repeated("key:__rand_int__", 10)],
    random: true,
    withOneWorker: false,
  },
  {
    name: "VMGET vs MGET, 100 fixed",
    mmapd: ["VMGET", "k", ...firstHundred.map(String)],
    redis: ["MGET", ...firstHundred.map(redisKey)],
    random: false,
    withOneWorker: false,
  },
];

function requireTools(): void {
  const missing = ["redis-server", "redis-benchmark"].filter((tool) => !onPath(tool));
  if (missing.length > 0) {
    process.stderr.write(`bench: ${missing.join(" and ")} not found. Install them with:\n  ${INSTALL_LINE}\n`);
    process.exit(1);
  }
}

function toolVersion(command: string[], pattern: RegExp): string {
  const output = spawnSync(command).stdout.toString();
  return pattern.exec(output)?.[1] ?? output.trim();
}

async function withClient<T>(server: RunningServer, use: (client: RespClient) => Promise<T>): Promise<T> {
  const client = await RespClient.connect(server.port);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (actual !== expected) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/** RSS at idle, then after binding an 8 GiB sparse file and reading random values from it; the file is unbound and removed after. */
async function measureMemory(mmapd: RunningMmapd): Promise<MemoryReport> {
  await Bun.sleep(1_000);
  const idleKiB = residentKiB(mmapd.pid);
  const file = path.join(mmapd.dir, "sparse.f64");
  const fd = fs.openSync(file, "w");
  fs.ftruncateSync(fd, SPARSE_FILE_BYTES);
  fs.closeSync(fd);
  const memory = await withClient(mmapd, async (client) => {
    const count = SPARSE_FILE_BYTES / Float64Array.BYTES_PER_ELEMENT;
    expectEqual("MMAP of the sparse file", await client.expect("MMAP", "sparse", "sparse.f64", "double"), count);
    const afterSparseBindKiB = residentKiB(mmapd.pid);
    const reads = Array.from({ length: SPARSE_VALUES_READ }, () => ["VGET", "sparse", String(Math.floor(Math.random() * count))]);
    const { errors } = await client.pipeline(reads);
    if (errors.length > 0) throw new Error(`reading the sparse file: ${errors.length} error replies, the first: ${errors[0]}`);
    expectEqual("VGET of a hole in the sparse file", await client.expect("VGET", "sparse", String(count - 1)), "0");
    const afterSparseReadKiB = residentKiB(mmapd.pid);
    const afterSparseReadFileKiB = residentKiB(mmapd.pid, "RssFile");
    await client.expect("DEL", "sparse");
    return { idleKiB, sparseFileBytes: SPARSE_FILE_BYTES, afterSparseBindKiB, randomValuesRead: SPARSE_VALUES_READ, afterSparseReadKiB, afterSparseReadFileKiB, afterBenchmarksKiB: null };
  });
  fs.rmSync(file);
  if (idleKiB !== null && memory.afterSparseReadKiB !== null && memory.afterSparseReadKiB - idleKiB > SPARSE_RSS_GROWTH_LIMIT_KIB) {
    throw new Error(`mmapd's RSS grew from ${idleKiB} KiB to ${memory.afterSparseReadKiB} KiB for ${SPARSE_VALUES_READ} reads of a sparse file: is it reading the whole file?`);
  }
  return memory;
}

/** Writes `k.f64` (VALUE_COUNT doubles) and binds it as `k`; with `appendKey`, binds an empty `k2`. */
async function loadMmapd(mmapd: RunningMmapd, appendKey: boolean): Promise<void> {
  const values = new Float64Array(VALUE_COUNT).fill(STORED_VALUE);
  fs.writeFileSync(path.join(mmapd.dir, "k.f64"), new Uint8Array(values.buffer));
  await withClient(mmapd, async (client) => {
    expectEqual(`${mmapd.label}: MMAP k`, await client.expect("MMAP", "k", "k.f64"), VALUE_COUNT);
    if (appendKey) expectEqual(`${mmapd.label}: MMAP k2`, await client.expect("MMAP", "k2", "k2.f64"), 0);
  });
}

/** SETs VALUE_COUNT keys `key:%012d` (pipelined) and starts `list` with one element. */
async function loadRedis(redis: RunningServer): Promise<void> {
  await withClient(redis, async (client) => {
    function* sets() {
      for (let i = 0; i < VALUE_COUNT; i++) yield ["SET", redisKey(i), String(STORED_VALUE)];
    }
    const { errors } = await client.pipeline(sets());
    if (errors.length > 0) throw new Error(`loading Redis: ${errors.length} error replies, the first: ${errors[0]}`);
    expectEqual("Redis DBSIZE after loading", await client.expect("DBSIZE"), VALUE_COUNT);
    expectEqual("RPUSH list", await client.expect("RPUSH", "list", "2.5"), 1);
  });
}

/** After the runs: every server still answers, and both received the same number of appends. */
async function verifyServers(mmapd: RunningMmapd, oneWorker: RunningMmapd, redis: RunningServer): Promise<void> {
  const stored = String(STORED_VALUE);
  const appended = await withClient(mmapd, async (client) => {
    expectEqual("mmapd VCOUNT k", await client.expect("VCOUNT", "k"), VALUE_COUNT);
    expectEqual("mmapd VGET k 0", await client.expect("VGET", "k", "0"), stored);
    expectEqual(`mmapd VGET k ${VALUE_COUNT - 1}`, await client.expect("VGET", "k", String(VALUE_COUNT - 1)), stored);
    return client.expect("VCOUNT", "k2");
  });
  await withClient(oneWorker, async (client) => expectEqual("mmapd --workers 1 VGET k 0", await client.expect("VGET", "k", "0"), stored));
  const pushed = await withClient(redis, async (client) => {
    expectEqual("Redis GET key:000000000000", await client.expect("GET", redisKey(0)), stored);
    expectEqual(`Redis GET ${redisKey(VALUE_COUNT - 1)}`, await client.expect("GET", redisKey(VALUE_COUNT - 1)), stored);
    return ((await client.expect("LLEN", "list")) as number) - 1;
  });
  expectEqual("values appended by VADD in mmapd (VCOUNT k2) against elements pushed by RPUSH in Redis (LLEN list - 1)", appended, pushed);
}

interface RunTiming {
  pipeline: number;
  requests: number;
  rps: number;
  wallSeconds: number;
}

async function measure(server: RunningServer, shape: LoadShape, testArgs: string[], timings: RunTiming[]): Promise<Measurement> {
  // redis-benchmark waits forever for a server that is gone: fail at once instead.
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) {
    throw new Error(`${server.label} has exited (code ${server.proc.exitCode ?? server.proc.signalCode}); its last output:\n${server.output().slice(-2000)}`);
  }
  const started = performance.now();
  const result = await runRedisBenchmark(server.port, shape, testArgs);
  timings.push({ pipeline: shape.pipeline, requests: shape.requests, rps: result.rps, wallSeconds: (performance.now() - started) / 1000 });
  return result;
}

/** Seconds the same runs would take at the default sizes, from this run's speeds and per-run overhead. */
function estimateDefaultSeconds(settings: Settings, setupSeconds: number, timings: RunTiming[]): number {
  const overhead = timings.reduce((sum, t) => sum + Math.max(0, t.wallSeconds - t.requests / t.rps), 0);
  const perRound = timings.reduce((sum, t) => sum + DEFAULT_SETTINGS.requestsByPipeline[t.pipeline] / t.rps, overhead);
  return setupSeconds + (perRound / settings.rounds) * DEFAULT_SETTINGS.rounds;
}

const integerText = (n: number) => Math.round(n).toLocaleString("en-US");
const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1);

async function main(settings: Settings): Promise<void> {
  const started = performance.now();
  requireTools();

  const mmapd = await startMmapd("mmapd", makeTempDir("mmapd-bench-"));
  console.log(`mmapd (${mmapd.workers} workers) on port ${mmapd.port}, pid ${mmapd.pid}`);
  const memory = await measureMemory(mmapd);
  console.log(`memory measured in ${seconds(started)} s (reading the sparse file's holes costs one page fault per value)`);
  const oneWorker = await startMmapd("mmapd --workers 1", makeTempDir("mmapd-bench-one-worker-"), ["--workers", "1"]);
  console.log(`mmapd (--workers 1) on port ${oneWorker.port}, pid ${oneWorker.pid}`);
  const redis = await startRedis("redis-server", makeTempDir("mmapd-bench-redis-"));
  console.log(`redis-server on port ${redis.port}, pid ${redis.pid}`);
  await loadMmapd(mmapd, true);
  await loadMmapd(oneWorker, false);
  await loadRedis(redis);
  const setupSeconds = (performance.now() - started) / 1000;
  console.log(`set-up done after ${setupSeconds.toFixed(1)} s: ${integerText(VALUE_COUNT)} values in each server`);

  const timings: RunTiming[] = [];
  if (!settings.quick) {
    const warmUpTimings: RunTiming[] = [];
    // mmapd's code is compiled while it runs: one short pass of every test first, on every
    // server alike, so that the rounds measure the steady state.
    for (const test of TESTS) {
      const shape: LoadShape = { clients: settings.clients, requests: WARM_UP_REQUESTS, pipeline: 16, randomRange: test.random ? VALUE_COUNT : null };
      await measure(mmapd, shape, test.mmapd, warmUpTimings);
      await measure(redis, shape, test.redis, warmUpTimings);
      if (test.withOneWorker) await measure(oneWorker, shape, test.mmapd, warmUpTimings);
    }
    console.log(`warm-up pass done after ${seconds(started)} s`);
  }
  const rounds = new Map<string, { mmapd: Measurement[]; redis: Measurement[]; oneWorker: Measurement[] }>();
  for (let round = 1; round <= settings.rounds; round++) {
    for (const pipeline of PIPELINES) {
      for (const test of TESTS) {
        const shape: LoadShape = {
          clients: settings.clients,
          requests: settings.requestsByPipeline[pipeline],
          pipeline,
          randomRange: test.random ? VALUE_COUNT : null,
        };
        const key = `${test.name} -P ${pipeline}`;
        const seen = rounds.get(key) ?? { mmapd: [], redis: [], oneWorker: [] };
        rounds.set(key, seen);
        const mmapdResult = await measure(mmapd, shape, test.mmapd, timings);
        const redisResult = await measure(redis, shape, test.redis, timings);
        seen.mmapd.push(mmapdResult);
        seen.redis.push(redisResult);
        let line = `round ${round}/${settings.rounds}  -P ${String(pipeline).padEnd(2)}  ${test.name.padEnd(26)}  mmapd ${integerText(mmapdResult.rps).padStart(9)}  Redis ${integerText(redisResult.rps).padStart(9)}`;
        if (test.withOneWorker) {
          const oneWorkerResult = await measure(oneWorker, shape, test.mmapd, timings);
          seen.oneWorker.push(oneWorkerResult);
          line += `  workers=1 ${integerText(oneWorkerResult.rps).padStart(9)}`;
        }
        console.log(line);
      }
    }
  }

  await verifyServers(mmapd, oneWorker, redis);
  memory.afterBenchmarksKiB = residentKiB(mmapd.pid);

  const variant = (args: string[], measured: Measurement[]): VariantResult => ({ command: args.join(" "), rounds: measured, median: medianOf(measured) });
  const rows: ResultRow[] = [];
  for (const pipeline of PIPELINES) {
    for (const test of TESTS) {
      const seen = rounds.get(`${test.name} -P ${pipeline}`)!;
      const mmapdVariant = variant(test.mmapd, seen.mmapd);
      const redisVariant = variant(test.redis, seen.redis);
      rows.push({
        test: test.name,
        pipeline,
        requests: settings.requestsByPipeline[pipeline],
        mmapd: mmapdVariant,
        redis: redisVariant,
        mmapdOneWorker: test.withOneWorker ? variant(test.mmapd, seen.oneWorker) : null,
        ratio: mmapdVariant.median.rps / redisVariant.median.rps,
      });
    }
  }

  const durationSeconds = (performance.now() - started) / 1000;
  const cpus = os.cpus();
  const results: Results = {
    date: new Date().toISOString(),
    machine: {
      cpus: os.availableParallelism?.() ?? cpus.length,
      cpuModel: cpus[0]?.model ?? "unknown",
      memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      bun: Bun.version,
      redisServer: toolVersion(["redis-server", "--version"], /v=(\S+)/),
      redisBenchmark: toolVersion(["redis-benchmark", "--version"], /redis-benchmark (\S+)/),
      mmapdWorkers: mmapd.workers,
      mmapdCommit: toolVersion(["git", "-C", path.join(import.meta.dir, ".."), "describe", "--always", "--dirty"], /(\S+)/),
    },
    settings: {
      quick: settings.quick,
      rounds: settings.rounds,
      clients: settings.clients,
      requestsAtP1: settings.requestsByPipeline[1],
      requestsAtP16: settings.requestsByPipeline[16],
      randomRange: VALUE_COUNT,
      order: "per round, per pipeline depth, per test: mmapd, then Redis, then mmapd --workers 1",
    },
    memory,
    rows,
    durationSeconds: Number(durationSeconds.toFixed(1)),
  };

  console.log("");
  console.log(formatTable(results));
  const jsonFile = path.join(settings.outDir, "latest.json");
  const svgFile = path.join(settings.outDir, "ratios.svg");
  writeJson(jsonFile, results);
  writeSvg(svgFile, results);
  const shown = (file: string) => (path.relative(process.cwd(), file).startsWith("..") ? file : path.relative(process.cwd(), file));
  console.log(`\nwrote ${shown(jsonFile)} and ${shown(svgFile)}; took ${durationSeconds.toFixed(1)} s`);
  const sizedOtherwise =
    settings.rounds !== DEFAULT_SETTINGS.rounds || PIPELINES.some((p) => settings.requestsByPipeline[p] !== DEFAULT_SETTINGS.requestsByPipeline[p]);
  if (sizedOtherwise) {
    console.log(`at the default sizes this would take about ${(estimateDefaultSeconds(settings, setupSeconds, timings) / 60).toFixed(1)} min`);
  }
}

const settings = parseSettings(process.argv.slice(2));
let interrupted = false;
for (const [signal, exitCode] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  process.on(signal, () => {
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}, stopping the servers and removing the temporary directories\n`);
    void cleanUp().finally(() => process.exit(exitCode));
  });
}
let exitCode = 0;
try {
  await main(settings);
} catch (e) {
  // After SIGINT / SIGTERM the servers going away is expected; the signal handler sets the exit code.
  if (!interrupted) process.stderr.write(`\nbench FAILED: ${(e as Error).message}\n`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
