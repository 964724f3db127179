/**
 * What a benchmark run produces: the tables printed to the terminal, the same tables in Markdown
 * (`bench/results/latest.md`, and README's benchmark section with `--readme`), `latest.json`
 * (machine, settings, memory, every row with every round) and `ratios.svg`, a bar chart of
 * mmapd / Redis throughput per test drawn by hand, with no dependencies.
 */
import type { LatencyUnderLoadRow } from "./latency_under_load.ts";
import fs from "node:fs";
import path from "node:path";
import type { CpuPerRequest } from "./cpu.ts";
import type { Measurement } from "./redis_benchmark.ts";
import { median } from "./statistics.ts";

/** Which data a row reads: the benchmark's arbitrary doubles, the earlier single short decimal, or none. */
export type Shape = "doubles" | "short decimal" | "no values";

/** One redis-benchmark run, with the server's CPU per request over it. */
export interface RunResult extends Measurement {
  cpu: CpuPerRequest;
}

export interface VariantResult {
  /** The command (or `-t` test) redis-benchmark ran. */
  command: string;
  rounds: RunResult[];
  median: RunResult;
}

export interface ResultRow {
  test: string;
  shape: Shape;
  pipeline: number;
  requests: number;
  /** The goal set for this machine, as text ("" when none was set). */
  goal: string;
  mmapd: VariantResult;
  redis: VariantResult;
  /** mmapd started with `--workers 1`, for the tests that show what the workers add. */
  mmapdOneWorker: VariantResult | null;
  /** mmapd req/s divided by Redis req/s (medians). */
  ratio: number;
  /** mmapd's CPU per request divided by Redis's (medians). */
  cpuRatio: number;
}

/** One run of the transaction client: transactions per second, batch round trip, CPU per transaction. */
export interface TransactionRun {
  tps: number;
  p50Ms: number;
  p99Ms: number;
  cpu: CpuPerRequest;
}

export interface TransactionRow {
  test: string;
  keys: string[];
  /** The shard of each key for mmapd's worker count. */
  shards: number[];
  transactionsPerBatch: number;
  transactions: number;
  connections: number;
  goal: string;
  mmapd: { rounds: TransactionRun[]; median: TransactionRun };
  redis: { rounds: TransactionRun[]; median: TransactionRun };
  ratio: number;
  cpuRatio: number;
}

/** One big reply, timed by the raw client; CPU (per reply) is null for the byte source. */
export interface BigReplyRun {
  firstByteMs: number;
  totalMs: number;
  bytes: number;
  mbPerSecond: number;
  valuesPerSecond: number;
  cpu: CpuPerRequest | null;
}

export interface BigReplyRow {
  test: string;
  server: string;
  command: string;
  values: number;
  goal: string;
  rounds: BigReplyRun[];
  median: BigReplyRun;
}

/** mmapd's RSS around the big-reply rows, in KiB. */
export interface MemoryAfterBigReplies {
  beforeKiB: number | null;
  afterKiB: number | null;
  settleSeconds: number;
  settledKiB: number | null;
  /** settledKiB's two parts: anonymous memory (heaps, buffers, rings) and file-backed pages (Bun itself, the data files' pages in use). */
  settledAnonKiB: number | null;
  settledFileKiB: number | null;
}

/** mmapd's VmRSS at points of the run, in KiB (null where /proc is missing). */
export interface MemoryReport {
  idleKiB: number | null;
  /** idleKiB's anonymous and file-backed parts. */
  idleAnonKiB: number | null;
  idleFileKiB: number | null;
  sparseFileBytes: number;
  afterSparseBindKiB: number | null;
  randomValuesRead: number;
  afterSparseReadKiB: number | null;
  /** The file-backed part (RssFile) of afterSparseReadKiB: the pages the reads faulted in. */
  afterSparseReadFileKiB: number | null;
  afterBenchmarksKiB: number | null;
  bigReplies: MemoryAfterBigReplies | null;
}

export interface Results {
  date: string;
  machine: Record<string, string | number>;
  settings: Record<string, string | number | boolean>;
  memory: MemoryReport;
  rows: ResultRow[];
  transactions: TransactionRow[];
  /** PING's latency while a shard is busy (older results lack it). */
  latencyUnderLoad?: LatencyUnderLoadRow[];
  bigReplies: BigReplyRow[];
  /** Rows this build could not run, with the reason. */
  skipped: string[];
  durationSeconds: number;
}

/** The median of each field over the rounds. */
export function medianOf(rounds: Measurement[]): Measurement {
  return {
    rps: median(rounds.map((r) => r.rps)),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
  };
}

const integerText = (n: number) => Math.round(n).toLocaleString("en-US");
const latencyText = (m: { p50Ms: number; p99Ms: number }) => `${m.p50Ms.toFixed(3)}/${m.p99Ms.toFixed(3)}`;
const mebibytes = (kib: number | null) => (kib === null ? "n/a" : `${(kib / 1024).toFixed(1)} MiB`);
const microseconds = (us: number | null) => (us === null ? "" : us.toFixed(2));
const milliseconds = (us: number | null) => (us === null ? "" : (us / 1000).toFixed(1));
const ratioText = (ratio: number) => (Number.isFinite(ratio) ? ratio.toFixed(2) : "n/a");

/** What one clock tick of CPU time is per request in the shortest run of a table: the resolution of its CPU figures. */
function resolutionNote(results: Results, requests: number[]): string {
  const tick = 1e6 / Number(results.machine.clockTicksPerSecond);
  const fewest = Math.min(...requests);
  return `CPU time is counted in clock ticks (${tick / 1000} ms); over the shortest run here (${fewest.toLocaleString("en-US")}) one tick is ${(tick / fewest).toFixed(2)} µs.`;
}

const SHAPE_TEXT: Record<Shape, string> = { doubles: "normal doubles", "short decimal": "1.5 (earlier shape)", "no values": "" };

/** A row's name with what its values are, for one-column listings (the SVG). */
const rowLabel = (row: ResultRow) => (row.shape === "short decimal" ? `${row.test} (values 1.5)` : row.test);

/** mmapd's worker count in a run: the largest per-worker list any CPU figure has. */
function workerCount(results: Results): number {
  const lists = [...results.rows.map((r) => r.mmapd.median.cpu.workerUs), ...results.transactions.map((r) => r.mmapd.median.cpu.workerUs)];
  return Math.max(0, ...lists.map((l) => l?.length ?? 0));
}

/** The main / per-worker / other cells of a CPU split (per request in µs, or per reply in ms). */
function splitCells(cpu: CpuPerRequest | null, workers: number, unit: (us: number | null) => string): string[] {
  return [
    unit(cpu?.mainUs ?? null),
    ...Array.from({ length: workers }, (_, w) => unit(cpu?.workerUs?.[w] ?? null)),
    unit(cpu?.otherUs ?? null),
  ];
}

interface Table {
  title: string;
  header: string[];
  rows: string[][];
  /** Columns aligned left (the rest are numbers, aligned right). */
  leftColumns: number;
  /** A line shown under the table. */
  note?: string;
}

/** Every table of the run, in the order they are shown. */
function tables(results: Results): Table[] {
  const workers = workerCount(results);
  const workerHeaders = Array.from({ length: workers }, (_, w) => `worker ${w + 1}`);
  const out: Table[] = [
    {
      title: `redis-benchmark -c ${results.settings.clients}: requests per second (median of ${results.settings.rounds})`,
      header: [
        "test",
        "values",
        "-P",
        "mmapd req/s",
        "Redis req/s",
        "ratio",
        "goal",
        "mmapd p50/p99 ms",
        "Redis p50/p99 ms",
        "workers=1 req/s",
      ],
      leftColumns: 2,
      rows: results.rows.map((row) => [
        row.test,
        SHAPE_TEXT[row.shape],
        String(row.pipeline),
        integerText(row.mmapd.median.rps),
        integerText(row.redis.median.rps),
        ratioText(row.ratio),
        row.goal,
        latencyText(row.mmapd.median),
        latencyText(row.redis.median),
        row.mmapdOneWorker ? integerText(row.mmapdOneWorker.median.rps) : "",
      ]),
    },
    {
      title: "Server CPU per request, µs (all threads, from /proc; mmapd split into main thread, shard workers, other threads)",
      header: ["test", "values", "-P", "mmapd", "Redis", "mmapd/Redis", "main", ...workerHeaders, "other", "workers=1"],
      leftColumns: 2,
      rows: results.rows.map((row) => [
        row.test,
        SHAPE_TEXT[row.shape],
        String(row.pipeline),
        microseconds(row.mmapd.median.cpu.totalUs),
        microseconds(row.redis.median.cpu.totalUs),
        ratioText(row.cpuRatio),
        ...splitCells(row.mmapd.median.cpu, workers, microseconds),
        row.mmapdOneWorker ? microseconds(row.mmapdOneWorker.median.cpu.totalUs) : "",
      ]),
      note: resolutionNote(
        results,
        results.rows.map((row) => row.requests),
      ),
    },
  ];
  if (results.transactions.length > 0) {
    const first = results.transactions[0];
    out.push({
      title: `Transactions (MULTI, 2 writes, EXEC), ${first.connections} connections, batches sent back to back: transactions per second and CPU per transaction (µs)`,
      header: [
        "test",
        "keys (shards)",
        "per batch",
        "mmapd tx/s",
        "Redis tx/s",
        "ratio",
        "goal",
        "mmapd p50/p99 ms",
        "Redis p50/p99 ms",
        "mmapd CPU",
        "Redis CPU",
        "main",
        ...workerHeaders,
        "other",
      ],
      leftColumns: 2,
      rows: results.transactions.map((row) => [
        row.test,
        row.keys.map((k, i) => `${k} (${row.shards[i]})`).join(", "),
        String(row.transactionsPerBatch),
        integerText(row.mmapd.median.tps),
        integerText(row.redis.median.tps),
        ratioText(row.ratio),
        row.goal,
        latencyText(row.mmapd.median),
        latencyText(row.redis.median),
        microseconds(row.mmapd.median.cpu.totalUs),
        microseconds(row.redis.median.cpu.totalUs),
        ...splitCells(row.mmapd.median.cpu, workers, microseconds),
      ]),
      note: resolutionNote(
        results,
        results.transactions.map((row) => row.transactions),
      ),
    });
  }
  if ((results.latencyUnderLoad ?? []).length > 0) {
    out.push({
      title: "PING from one more client while 50 others keep one shard busy (median of the rounds; ms)",
      header: ["server", "load", "load req/s", "PINGs answered", "p50", "p99", "max"],
      leftColumns: 2,
      rows: results.latencyUnderLoad!.map((row) => [
        row.server,
        row.load,
        Math.round(row.loadRps).toLocaleString("en-US"),
        String(row.pings),
        row.p50Ms.toFixed(2),
        row.p99Ms.toFixed(2),
        row.maxMs.toFixed(2),
      ]),
    });
  }
  if (results.bigReplies.length > 0) {
    out.push({
      title: "Big replies, one request on a fresh connection, raw client (median); server CPU per reply, ms",
      header: [
        "reply",
        "server",
        "command",
        "MB",
        "first byte ms",
        "total ms",
        "MB/s",
        "M values/s",
        "goal",
        "CPU ms",
        "main",
        ...workerHeaders,
        "other",
      ],
      leftColumns: 3,
      rows: results.bigReplies.map((row) => [
        row.test,
        row.server,
        row.command,
        (row.median.bytes / 1e6).toFixed(1),
        row.median.firstByteMs.toFixed(1),
        row.median.totalMs.toFixed(1),
        integerText(row.median.mbPerSecond),
        (row.median.valuesPerSecond / 1e6).toFixed(1),
        row.goal,
        milliseconds(row.median.cpu?.totalUs ?? null),
        ...(row.server === "mmapd" ? splitCells(row.median.cpu, workers, milliseconds) : splitCells(null, workers, milliseconds)),
      ]),
    });
  }
  return out;
}

/** The memory figures as sentences. */
function memoryLines(results: Results): string[] {
  const memory = results.memory;
  const growth = memory.idleKiB !== null && memory.afterSparseReadKiB !== null ? memory.afterSparseReadKiB - memory.idleKiB : null;
  const lines = [
    `mmapd RSS (VmRSS, ${results.machine.mmapdWorkers} workers): idle after start ${mebibytes(memory.idleKiB)}; ` +
      `after binding an ${(memory.sparseFileBytes / 2 ** 30).toFixed(0)} GiB sparse file ${mebibytes(memory.afterSparseBindKiB)}; ` +
      `after reading ${memory.randomValuesRead.toLocaleString("en-US")} random values from it ${mebibytes(memory.afterSparseReadKiB)} ` +
      `(${growth === null ? "n/a" : `+${mebibytes(growth)}`} over idle, file-backed ${mebibytes(memory.afterSparseReadFileKiB)}); ` +
      `after the redis-benchmark rows ${mebibytes(memory.afterBenchmarksKiB)}.`,
  ];
  const big = memory.bigReplies;
  if (big !== null) {
    const over = (kib: number | null, idle: number | null) => (kib === null || idle === null ? "n/a" : `+${mebibytes(kib - idle)}`);
    lines.push(
      `mmapd RSS around the big replies: before ${mebibytes(big.beforeKiB)}; right after ${mebibytes(big.afterKiB)} (idle ${over(big.afterKiB, memory.idleKiB)}); ` +
        `${big.settleSeconds} s later ${mebibytes(big.settledKiB)} (idle ${over(big.settledKiB, memory.idleKiB)}: anonymous ${over(big.settledAnonKiB, memory.idleAnonKiB)}, ` +
        `file-backed ${over(big.settledFileKiB, memory.idleFileKiB)}, the pages of the data files that the rows before read at random and that stay in use) ` +
        `(goal: idle + 50 MiB at most).`,
    );
  }
  if (results.skipped.length > 0) lines.push(`Not run (this build does not answer the command): ${results.skipped.join("; ")}.`);
  return lines;
}

/** Renders a table as fixed-width text or as Markdown. */
function renderTable(table: Table, markdown: boolean): string[] {
  if (markdown) {
    const line = (cells: string[]) => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`;
    const rule = `|${table.header.map((_, i) => (i < table.leftColumns ? "---" : "---:")).join("|")}|`;
    return [`**${table.title}**`, "", line(table.header), rule, ...table.rows.map(line), ...(table.note ? ["", table.note] : [])];
  }
  const widths = table.header.map((title, column) => Math.max(title.length, ...table.rows.map((cells) => cells[column].length)));
  const render = (cells: string[]) =>
    cells
      .map((cell, column) => (column < table.leftColumns ? cell.padEnd(widths[column]) : cell.padStart(widths[column])))
      .join("  ")
      .trimEnd();
  return [
    table.title,
    render(table.header),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...table.rows.map(render),
    ...(table.note ? [table.note] : []),
  ];
}

/** The results as fixed-width text tables, followed by the memory lines. */
export function formatTable(results: Results): string {
  return [...tables(results).flatMap((t) => [...renderTable(t, false), ""]), ...memoryLines(results)].join("\n");
}

/** The results as Markdown: what README's benchmark section shows between its markers. */
function formatMarkdown(results: Results): string {
  const m = results.machine;
  return [
    `Run of ${String(results.date).slice(0, 10)} on ${m.cpus} cores (${m.cpuModel}), Redis ${m.redisServer}, Bun ${m.bun}, ` +
      `mmapd ${m.mmapdCommit} with ${m.mmapdWorkers} workers; ${Math.round(results.durationSeconds)} s in all.`,
    "",
    ...tables(results).flatMap((t) => [...renderTable(t, true), ""]),
    ...memoryLines(results),
  ].join("\n");
}

/** Writes a file through a `.tmp` sibling and a rename, so a reader never sees half of it. */
function writeAtomically(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

export function writeJson(file: string, results: unknown): void {
  writeAtomically(file, JSON.stringify(results, null, 2) + "\n");
}

export function writeMarkdown(file: string, results: Results): void {
  writeAtomically(file, formatMarkdown(results) + "\n");
}

const README_BEGIN = "<!-- bench:begin (generated by npm run bench -- --readme) -->";
const README_END = "<!-- bench:end -->";

/** Replaces what README holds between its benchmark markers with this run's Markdown. */
export function updateReadme(file: string, results: Results): void {
  const text = fs.readFileSync(file, "utf8");
  const begin = text.indexOf(README_BEGIN);
  const end = text.indexOf(README_END);
  if (begin < 0 || end < begin) throw new Error(`${file} has no '${README_BEGIN}' ... '${README_END}' markers to write the tables between`);
  writeAtomically(file, `${text.slice(0, begin + README_BEGIN.length)}\n${formatMarkdown(results)}\n${text.slice(end)}`);
}

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A horizontal bar chart: one group per test (transactions too), one bar per pipeline depth, a line at ratio 1.0. */
function ratiosSvg(results: Results): string {
  const bars = [
    ...results.rows.map((row) => ({ label: rowLabel(row), depth: row.pipeline, ratio: row.ratio })),
    ...results.transactions.map((row) => ({ label: row.test, depth: row.transactionsPerBatch, ratio: row.ratio })),
  ];
  const labels = [...new Set(bars.map((bar) => bar.label))];
  const depths = [...new Set(bars.map((bar) => bar.depth))].sort((a, b) => a - b);
  const colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];
  const ratioOf = (label: string, depth: number) => bars.find((bar) => bar.label === label && bar.depth === depth)?.ratio;

  const labelWidth = 270;
  const plotWidth = 480;
  const barHeight = 16;
  const groupHeight = depths.length * (barHeight + 4) + 14;
  const top = 64;
  const plotHeight = labels.length * groupHeight;
  const width = labelWidth + plotWidth + 70;
  const height = top + plotHeight + 44;
  const largest = Math.max(1.2, ...bars.map((bar) => bar.ratio));
  const step = largest <= 2 ? 0.25 : largest <= 4 ? 0.5 : largest <= 10 ? 1 : Math.ceil(largest / 10);
  const axisMax = Math.ceil((largest * 1.05) / step) * step;
  const x = (ratio: number) => labelWidth + (ratio / axisMax) * plotWidth;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">mmapd / Redis throughput (ratio; above 1.0 mmapd is faster)</text>`,
    `<text x="${width / 2}" y="38" text-anchor="middle" fill="#555">-c ${results.settings.clients}, median of ${results.settings.rounds} round(s), ${escapeXml(String(results.date).slice(0, 10))}; -P for transactions: transactions per batch</text>`,
  ];
  depths.forEach((depth, i) => {
    const legendX = labelWidth + i * 110;
    parts.push(`<rect x="${legendX}" y="46" width="12" height="12" fill="${colors[i % colors.length]}"/>`);
    parts.push(`<text x="${legendX + 16}" y="56">-P ${depth}</text>`);
  });
  for (let tick = 0; tick <= axisMax + 1e-9; tick += step) {
    parts.push(`<line x1="${x(tick)}" y1="${top}" x2="${x(tick)}" y2="${top + plotHeight}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x(tick)}" y="${top + plotHeight + 16}" text-anchor="middle" fill="#555">${Number(tick.toFixed(2))}</text>`);
  }
  labels.forEach((label, t) => {
    const groupTop = top + t * groupHeight + 7;
    const middle = groupTop + (depths.length * (barHeight + 4)) / 2;
    parts.push(`<text x="${labelWidth - 8}" y="${middle + 4}" text-anchor="end">${escapeXml(label)}</text>`);
    depths.forEach((depth, i) => {
      const ratio = ratioOf(label, depth);
      if (ratio === undefined) return;
      const y = groupTop + i * (barHeight + 4);
      parts.push(
        `<rect x="${labelWidth}" y="${y}" width="${Math.max(1, x(ratio) - labelWidth).toFixed(1)}" height="${barHeight}" fill="${colors[i % colors.length]}"/>`,
      );
      parts.push(`<text x="${(x(ratio) + 4).toFixed(1)}" y="${y + barHeight - 4}">${ratio.toFixed(2)}</text>`);
    });
  });
  parts.push(`<line x1="${labelWidth}" y1="${top}" x2="${labelWidth}" y2="${top + plotHeight}" stroke="#333"/>`);
  parts.push(
    `<line x1="${x(1)}" y1="${top - 4}" x2="${x(1)}" y2="${top + plotHeight}" stroke="#c00" stroke-width="2" stroke-dasharray="6 3"/>`,
  );
  parts.push(`<text x="${x(1)}" y="${top + plotHeight + 34}" text-anchor="middle" fill="#c00">1.0 = as fast as Redis</text>`);
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

export function writeSvg(file: string, results: Results): void {
  writeAtomically(file, ratiosSvg(results));
}
