/**
 * The side-by-side benchmark (`npm run bench`): mmapd against Redis on this machine, on loopback,
 * with the same values in both (seeded standard-normal doubles; see fixtures.ts).
 *
 * It starts mmapd (default workers, and `--workers 1`) and a redis-server with persistence off,
 * each on a free port with a temporary directory, measures mmapd's memory at idle and with an
 * 8 GiB sparse file bound, loads the data, and then runs, each part interleaved (mmapd, Redis,
 * mmapd, Redis ...) so that noise falls on both sides:
 *   - the redis-benchmark rows (throughput.ts) at `-P 1` and `-P 16`, with server CPU per request;
 *   - transactions, one shard and two shards, with a client of our own (transactions.ts);
 *   - big replies of megabytes, timed to the first and the last byte (big_replies.ts), and
 *     mmapd's RSS right after them and 10 s later.
 * Any error reply, failed run or missing number fails the whole run (exit 1): a broken server
 * must never look fast. Results: tables on stdout, and in bench/results latest.json, latest.md
 * and ratios.svg (README's section too with --readme).
 *
 * `--soak` runs the soak instead (soak.ts): minutes of mixed load on one mmapd, sampled.
 *
 *   bun bench/run.ts [--quick] [--requests N] [--requests-p1 N] [--requests-p16 N] [--rounds N]
 *                    [--clients N] [--transactions N] [--out DIR] [--readme]
 *   bun bench/run.ts --soak [--soak-seconds N] [--clients N] [--out DIR]
 */
import { spawnSync } from "bun";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runBigReplies } from "./big_replies.ts";
import { runLatencyUnderLoad } from "./latency_under_load.ts";
import { CLOCK_TICKS_PER_SECOND } from "./cpu.ts";
import { BenchData, expectEqual, loadMmapd, loadRedis, verifyServers, withClient } from "./fixtures.ts";
import { cleanUp, makeTempDir, onPath, residentKiB, type RunningMmapd, startMmapd, startRedis } from "./processes.ts";
import {
  formatTable,
  type MemoryReport,
  type Results,
  type TransactionRow,
  updateReadme,
  writeJson,
  writeMarkdown,
  writeSvg,
} from "./report.ts";
import { runSoak } from "./soak.ts";
import { PIPELINES, pairedTests, type RunTiming, runThroughput, supportedTests } from "./throughput.ts";
import { bindTransactionKeys, runTransactions, TRANSACTION_BATCHES, transactionTests } from "./transactions.ts";

const INSTALL_LINE = "apt-get install -y redis-server redis-tools";
const SPARSE_FILE_BYTES = 8 * 2 ** 30;
const SPARSE_VALUES_READ = 1_000;
/** Growth of mmapd's RSS from reading the sparse file that counts as mapping it into memory. */
const SPARSE_RSS_GROWTH_LIMIT_KIB = 256 * 1024;
const RESULTS_DIR = path.join(import.meta.dir, "results");
const README = path.join(import.meta.dir, "..", "README.md");

interface Settings {
  requestsByPipeline: Record<number, number>;
  rounds: number;
  clients: number;
  transactionsByBatch: Record<number, number>;
  /** Rounds of the big-reply rows (each VALL of 10M values takes seconds). */
  bigReplyRounds: number;
  /** Where the results go; null for a quick run without --out (nothing written). */
  outDir: string | null;
  readme: boolean;
  quick: boolean;
  soak: boolean;
  soakSeconds: number;
}

const DEFAULT_SETTINGS: Settings = {
  requestsByPipeline: { 1: 50_000, 16: 200_000 },
  rounds: 5,
  clients: 50,
  transactionsByBatch: { 1: 20_000, 16: 100_000 },
  bigReplyRounds: 3,
  outDir: RESULTS_DIR,
  readme: false,
  quick: false,
  soak: false,
  soakSeconds: 600,
};

const USAGE = `Usage: bun bench/run.ts [options]

Runs mmapd and Redis side by side (redis-benchmark rows with server CPU per request,
transactions, big replies) and writes tables, latest.json, latest.md and ratios.svg.

  --quick            a smoke run: 2,000 requests per run, one round, no warm-up; writes
                     nothing unless --out is given
  --requests N       requests per run at both -P 1 and -P 16 (rows with 100 values per
                     reply run a quarter of it)
  --requests-p1 N    requests per run at -P 1 (default ${DEFAULT_SETTINGS.requestsByPipeline[1]})
  --requests-p16 N   requests per run at -P 16 (default ${DEFAULT_SETTINGS.requestsByPipeline[16]})
  --rounds N         interleaved rounds; each row reports the median (default ${DEFAULT_SETTINGS.rounds})
  --clients N        redis-benchmark -c and transaction connections (default ${DEFAULT_SETTINGS.clients})
  --transactions N   transactions per run at each batch size (default ${DEFAULT_SETTINGS.transactionsByBatch[1]} one by one,
                     ${DEFAULT_SETTINGS.transactionsByBatch[16]} in batches of 16)
  --out DIR          where the results go (default bench/results)
  --readme           also write the tables into README.md's benchmark section
  --soak             run the soak instead: mixed load on one mmapd, sampled every 10 s;
                     writes soak.json
  --soak-seconds N   how long the soak runs (default ${DEFAULT_SETTINGS.soakSeconds})
`;

function parseSettings(argv: string[]): Settings {
  const settings: Settings = {
    ...DEFAULT_SETTINGS,
    requestsByPipeline: { ...DEFAULT_SETTINGS.requestsByPipeline },
    transactionsByBatch: { ...DEFAULT_SETTINGS.transactionsByBatch },
  };
  let outGiven = false;
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
      settings.transactionsByBatch = { 1: 2_000, 16: 4_000 };
      settings.bigReplyRounds = 1;
    } else if (flag === "--requests") {
      const n = positive(flag, argv[++i]);
      settings.requestsByPipeline = { 1: n, 16: n };
    } else if (flag === "--requests-p1") settings.requestsByPipeline[1] = positive(flag, argv[++i]);
    else if (flag === "--requests-p16") settings.requestsByPipeline[16] = positive(flag, argv[++i]);
    else if (flag === "--rounds") settings.rounds = positive(flag, argv[++i]);
    else if (flag === "--clients") settings.clients = positive(flag, argv[++i]);
    else if (flag === "--transactions") {
      const n = positive(flag, argv[++i]);
      settings.transactionsByBatch = { 1: n, 16: n };
    } else if (flag === "--out") {
      if (argv[i + 1] === undefined) usageError("--out needs a directory");
      settings.outDir = path.resolve(argv[++i]);
      outGiven = true;
    } else if (flag === "--readme") settings.readme = true;
    else if (flag === "--soak") settings.soak = true;
    else if (flag === "--soak-seconds") settings.soakSeconds = positive(flag, argv[++i]);
    else usageError(`unknown option '${flag}'`);
  }
  // A smoke run must not replace the results of a real one.
  if (settings.quick && !outGiven) settings.outDir = null;
  if (settings.quick && settings.readme) usageError("--readme takes the numbers of a full run, not of --quick");
  return settings;
}

function usageError(message: string): never {
  process.stderr.write(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

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

/** RSS at idle, then after binding an 8 GiB sparse file and reading random values from it; the file is unbound and removed after. */
async function measureMemory(mmapd: RunningMmapd): Promise<MemoryReport> {
  await Bun.sleep(1_000);
  const idleKiB = residentKiB(mmapd.pid);
  const idleAnonKiB = residentKiB(mmapd.pid, "RssAnon");
  const idleFileKiB = residentKiB(mmapd.pid, "RssFile");
  const file = path.join(mmapd.dir, "sparse.f64");
  const fd = fs.openSync(file, "w");
  fs.ftruncateSync(fd, SPARSE_FILE_BYTES);
  fs.closeSync(fd);
  const memory = await withClient(mmapd, async (client): Promise<MemoryReport> => {
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
    return {
      idleKiB,
      idleAnonKiB,
      idleFileKiB,
      sparseFileBytes: SPARSE_FILE_BYTES,
      afterSparseBindKiB,
      randomValuesRead: SPARSE_VALUES_READ,
      afterSparseReadKiB,
      afterSparseReadFileKiB,
      afterBenchmarksKiB: null,
      bigReplies: null,
    };
  });
  fs.rmSync(file);
  if (idleKiB !== null && memory.afterSparseReadKiB !== null && memory.afterSparseReadKiB - idleKiB > SPARSE_RSS_GROWTH_LIMIT_KIB) {
    throw new Error(
      `mmapd's RSS grew from ${idleKiB} KiB to ${memory.afterSparseReadKiB} KiB for ${SPARSE_VALUES_READ} reads of a sparse file: is it reading the whole file?`,
    );
  }
  return memory;
}

/**
 * Seconds the same run would take at the default sizes, from this run's speeds and per-run
 * overheads. Short runs understate speeds (connecting is a larger part of them), so it errs long.
 */
function estimateDefaultSeconds(
  settings: Settings,
  phases: { setup: number; bigReplies: number },
  timings: RunTiming[],
  transactions: TransactionRow[],
): number {
  const overhead = timings.reduce((sum, t) => sum + Math.max(0, t.wallSeconds - t.requests / t.rps), 0);
  const perRound = timings.reduce(
    (sum, t) => sum + (DEFAULT_SETTINGS.requestsByPipeline[t.pipeline] / settings.requestsByPipeline[t.pipeline]) * (t.requests / t.rps),
    overhead,
  );
  const transactionRound = transactions.reduce(
    (sum, row) =>
      sum + DEFAULT_SETTINGS.transactionsByBatch[row.transactionsPerBatch] * (1 / row.mmapd.median.tps + 1 / row.redis.median.tps),
    0,
  );
  return (
    phases.setup +
    (perRound / settings.rounds) * DEFAULT_SETTINGS.rounds +
    // The warm-up pass is about one round at -P 16 sizes a tenth of the default.
    perRound / settings.rounds / 5 +
    transactionRound * DEFAULT_SETTINGS.rounds +
    (phases.bigReplies / settings.bigReplyRounds) * DEFAULT_SETTINGS.bigReplyRounds
  );
}

const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1);
const shown = (file: string) => (path.relative(process.cwd(), file).startsWith("..") ? file : path.relative(process.cwd(), file));

async function main(settings: Settings): Promise<void> {
  const started = performance.now();
  requireTools();
  const log = (line: string) => console.log(line);

  const data = new BenchData();
  const mmapd = await startMmapd("mmapd", makeTempDir("mmapd-bench-"));
  log(`mmapd (${mmapd.workers} workers) on port ${mmapd.port}, pid ${mmapd.pid}`);
  const memory = await measureMemory(mmapd);
  log(`memory measured after ${seconds(started)} s (reading the sparse file's holes costs one page fault per value)`);
  const oneWorker = await startMmapd("mmapd --workers 1", makeTempDir("mmapd-bench-one-worker-"), ["--workers", "1"]);
  log(`mmapd (--workers 1) on port ${oneWorker.port}, pid ${oneWorker.pid}`);
  const redis = await startRedis("redis-server", makeTempDir("mmapd-bench-redis-"));
  log(`redis-server on port ${redis.port}, pid ${redis.pid}`);
  await loadMmapd(mmapd, data, true);
  await loadMmapd(oneWorker, data, false);
  const txTests = transactionTests(mmapd.workers);
  await bindTransactionKeys(mmapd, txTests, data);
  await loadRedis(redis, data);
  const { tests, skipped } = await supportedTests(mmapd, pairedTests(data));
  for (const why of skipped) log(`not run: ${why}`);
  const setupSeconds = (performance.now() - started) / 1000;
  log(`set-up done after ${setupSeconds.toFixed(1)} s: the same standard-normal doubles in every server`);

  const timings: RunTiming[] = [];
  const rows = await runThroughput(
    { mmapd, redis, oneWorker },
    tests,
    { requestsByPipeline: settings.requestsByPipeline, rounds: settings.rounds, clients: settings.clients, warmUp: !settings.quick },
    timings,
    log,
  );
  await verifyServers(mmapd, oneWorker, redis, data);
  memory.afterBenchmarksKiB = residentKiB(mmapd.pid);
  log(`redis-benchmark rows done after ${seconds(started)} s`);

  const transactions = await runTransactions(
    { mmapd, redis },
    txTests,
    data,
    { transactionsByBatch: settings.transactionsByBatch, rounds: settings.rounds, connections: settings.clients },
    log,
  );
  log(`transactions done after ${seconds(started)} s`);

  const spread = tests.find((t) => t.name === "VMGET vs MGET, 100 spread" && t.shape === "doubles");
  const latencyUnderLoad =
    spread === undefined
      ? []
      : await runLatencyUnderLoad(
          [
            { server: mmapd, label: "mmapd", load: spread.mmapd },
            { server: redis, label: "Redis", load: spread.redis },
          ],
          settings.quick ? 1 : 3,
          log,
        );
  log(`latency under load done after ${seconds(started)} s`);

  const bigStarted = performance.now();
  const big = await runBigReplies({ mmapd, redis }, settings.bigReplyRounds, log);
  const bigReplySeconds = (performance.now() - bigStarted) / 1000;
  memory.bigReplies = big.memory;

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
      clockTicksPerSecond: CLOCK_TICKS_PER_SECOND,
      mmapdCommit: toolVersion(["git", "-C", path.join(import.meta.dir, ".."), "describe", "--always", "--dirty"], /(\S+)/),
    },
    settings: {
      quick: settings.quick,
      rounds: settings.rounds,
      clients: settings.clients,
      requestsAtP1: settings.requestsByPipeline[1],
      requestsAtP16: settings.requestsByPipeline[16],
      transactionsOneByOne: settings.transactionsByBatch[1],
      transactionsInBatchesOf16: settings.transactionsByBatch[16],
      bigReplyRounds: settings.bigReplyRounds,
      randomRange: 1_000_000,
      order: "per round, per pipeline depth, per test: mmapd, then Redis, then mmapd --workers 1",
    },
    memory,
    rows,
    transactions,
    latencyUnderLoad,
    bigReplies: big.rows,
    skipped,
    durationSeconds: Number(durationSeconds.toFixed(1)),
  };

  log("");
  log(formatTable(results));
  log("");
  if (settings.outDir === null) log(`took ${durationSeconds.toFixed(1)} s; a --quick run writes no files (give --out DIR to keep them)`);
  else {
    const files = ["latest.json", "latest.md", "ratios.svg"].map((name) => path.join(settings.outDir!, name));
    writeJson(files[0], results);
    writeMarkdown(files[1], results);
    writeSvg(files[2], results);
    log(`wrote ${files.map(shown).join(", ")}; took ${durationSeconds.toFixed(1)} s`);
  }
  if (settings.readme) {
    updateReadme(README, results);
    log(`wrote the tables into ${shown(README)}`);
  }
  const sizedOtherwise =
    settings.rounds !== DEFAULT_SETTINGS.rounds ||
    PIPELINES.some((p) => settings.requestsByPipeline[p] !== DEFAULT_SETTINGS.requestsByPipeline[p]) ||
    TRANSACTION_BATCHES.some((b) => settings.transactionsByBatch[b] !== DEFAULT_SETTINGS.transactionsByBatch[b]);
  if (sizedOtherwise) {
    const estimate = estimateDefaultSeconds(settings, { setup: setupSeconds, bigReplies: bigReplySeconds }, timings, transactions);
    log(`at the default sizes this would take about ${(estimate / 60).toFixed(1)} min`);
  }
}

async function soak(settings: Settings): Promise<void> {
  const log = (line: string) => console.log(line);
  const results = await runSoak({ seconds: settings.soakSeconds, clients: settings.clients }, log);
  log("");
  log(
    `${results.samples.length} samples; RSS slope over the second half ${Number.isFinite(results.rssSlopeMiBPerMinute) ? `${results.rssSlopeMiBPerMinute.toFixed(2)} MiB/min` : "n/a (too few samples)"}; ` +
      `${results.errorReplies} error replies; ${results.countMismatches.length} count mismatches; ${results.shardRestarts} shard restarts`,
  );
  log("operation   requests   p50 ms   p99 ms   max ms");
  for (const [op, o] of Object.entries(results.operations)) {
    log(
      `${op.padEnd(9)} ${o.requests.toLocaleString("en-US").padStart(10)} ${o.p50Ms.toFixed(3).padStart(8)} ${o.p99Ms.toFixed(3).padStart(8)} ${o.maxBucketMs.toFixed(1).padStart(8)}`,
    );
  }
  for (const error of results.firstErrors) log(`error reply: ${error}`);
  for (const mismatch of results.countMismatches) log(`mismatch: ${mismatch}`);
  const file = path.join(settings.outDir ?? RESULTS_DIR, "soak.json");
  writeJson(file, results);
  log(`wrote ${shown(file)}`);
  if (!results.passed) throw new Error("the soak saw error replies, count mismatches or worker restarts (above)");
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
  await (settings.soak ? soak(settings) : main(settings));
} catch (e) {
  // After SIGINT / SIGTERM the servers going away is expected; the signal handler sets the exit code.
  if (!interrupted) process.stderr.write(`\nbench FAILED: ${(e as Error).message}\n`);
  exitCode = 1;
} finally {
  await cleanUp();
}
process.exit(exitCode);
