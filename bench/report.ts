/**
 * What a benchmark run produces: the table printed to the terminal, `bench/results/latest.json`
 * (machine, settings, memory, every row with every round) and `bench/results/ratios.svg`, a bar
 * chart of mmapd / Redis throughput per test drawn by hand, with no dependencies.
 */
import fs from "node:fs";
import path from "node:path";
import type { Measurement } from "./redis_benchmark.ts";

export interface VariantResult {
  /** The command (or `-t` test) redis-benchmark ran. */
  command: string;
  rounds: Measurement[];
  median: Measurement;
}

export interface ResultRow {
  test: string;
  pipeline: number;
  requests: number;
  mmapd: VariantResult;
  redis: VariantResult;
  /** mmapd started with `--workers 1`, for the tests that show what the workers add. */
  mmapdOneWorker: VariantResult | null;
  /** mmapd req/s divided by Redis req/s (medians). */
  ratio: number;
}

/** mmapd's VmRSS at points of the run, in KiB (null where /proc is missing). */
export interface MemoryReport {
  idleKiB: number | null;
  sparseFileBytes: number;
  afterSparseBindKiB: number | null;
  randomValuesRead: number;
  afterSparseReadKiB: number | null;
  /** The file-backed part (RssFile) of afterSparseReadKiB: the pages the reads faulted in. */
  afterSparseReadFileKiB: number | null;
  afterBenchmarksKiB: number | null;
}

export interface Results {
  date: string;
  machine: Record<string, string | number>;
  settings: Record<string, string | number | boolean>;
  memory: MemoryReport;
  rows: ResultRow[];
  durationSeconds: number;
}

/** The median of each field over the rounds (the mean of the middle two for an even count). */
export function medianOf(rounds: Measurement[]): Measurement {
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  };
  return {
    rps: median(rounds.map((r) => r.rps)),
    p50Ms: median(rounds.map((r) => r.p50Ms)),
    p99Ms: median(rounds.map((r) => r.p99Ms)),
  };
}

const integerText = (n: number) => Math.round(n).toLocaleString("en-US");
const latencyText = (m: Measurement) => `${m.p50Ms.toFixed(3)}/${m.p99Ms.toFixed(3)}`;
const mebibytes = (kib: number | null) => (kib === null ? "n/a" : `${(kib / 1024).toFixed(1)} MiB`);

/** The results as a fixed-width text table, followed by the memory lines. */
export function formatTable(results: Results): string {
  const header = ["test", "-P", "mmapd req/s", "Redis req/s", "ratio", "mmapd p50/p99 ms", "Redis p50/p99 ms", "workers=1 req/s", "workers=1 p50/p99 ms"];
  const lines = results.rows.map((row) => [
    row.test,
    String(row.pipeline),
    integerText(row.mmapd.median.rps),
    integerText(row.redis.median.rps),
    row.ratio.toFixed(2),
    latencyText(row.mmapd.median),
    latencyText(row.redis.median),
    row.mmapdOneWorker ? integerText(row.mmapdOneWorker.median.rps) : "",
    row.mmapdOneWorker ? latencyText(row.mmapdOneWorker.median) : "",
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((cells) => cells[column].length)));
  const render = (cells: string[]) => cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join("  ");
  const memory = results.memory;
  const growth = memory.idleKiB !== null && memory.afterSparseReadKiB !== null ? memory.afterSparseReadKiB - memory.idleKiB : null;
  return [
    render(header),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...lines.map(render),
    "",
    `mmapd RSS (VmRSS, ${results.machine.mmapdWorkers} workers): idle after start ${mebibytes(memory.idleKiB)}; ` +
      `after binding an ${(memory.sparseFileBytes / 2 ** 30).toFixed(0)} GiB sparse file ${mebibytes(memory.afterSparseBindKiB)}; ` +
      `after reading ${memory.randomValuesRead.toLocaleString("en-US")} random values from it ${mebibytes(memory.afterSparseReadKiB)} ` +
      `(${growth === null ? "n/a" : `+${mebibytes(growth)}`} over idle, file-backed ${mebibytes(memory.afterSparseReadFileKiB)}); ` +
      `after the benchmarks ${mebibytes(memory.afterBenchmarksKiB)}`,
  ].join("\n");
}

/** Writes a file through a `.tmp` sibling and a rename, so a reader never sees half of it. */
function writeAtomically(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

export function writeJson(file: string, results: Results): void {
  writeAtomically(file, JSON.stringify(results, null, 2) + "\n");
}

const escapeXml = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** A horizontal bar chart: one group per test, one bar per pipeline depth, a line at ratio 1.0. */
export function ratiosSvg(results: Results): string {
  const tests = [...new Set(results.rows.map((row) => row.test))];
  const pipelines = [...new Set(results.rows.map((row) => row.pipeline))].sort((a, b) => a - b);
  const colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];
  const ratioOf = (test: string, pipeline: number) => results.rows.find((row) => row.test === test && row.pipeline === pipeline)?.ratio;

  const labelWidth = 230;
  const plotWidth = 480;
  const barHeight = 16;
  const groupHeight = pipelines.length * (barHeight + 4) + 14;
  const top = 64;
  const plotHeight = tests.length * groupHeight;
  const width = labelWidth + plotWidth + 70;
  const height = top + plotHeight + 44;
  const largest = Math.max(1.2, ...results.rows.map((row) => row.ratio));
  const step = largest <= 2 ? 0.25 : largest <= 4 ? 0.5 : largest <= 10 ? 1 : Math.ceil(largest / 10);
  const axisMax = Math.ceil((largest * 1.05) / step) * step;
  const x = (ratio: number) => labelWidth + (ratio / axisMax) * plotWidth;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">mmapd / Redis throughput (req/s ratio; above 1.0 mmapd is faster)</text>`,
    `<text x="${width / 2}" y="38" text-anchor="middle" fill="#555">redis-benchmark -c ${results.settings.clients}, median of ${results.settings.rounds} round(s), ${escapeXml(String(results.date).slice(0, 10))}</text>`,
  ];
  pipelines.forEach((pipeline, i) => {
    const legendX = labelWidth + i * 110;
    parts.push(`<rect x="${legendX}" y="46" width="12" height="12" fill="${colors[i % colors.length]}"/>`);
    parts.push(`<text x="${legendX + 16}" y="56">-P ${pipeline}</text>`);
  });
  for (let tick = 0; tick <= axisMax + 1e-9; tick += step) {
    parts.push(`<line x1="${x(tick)}" y1="${top}" x2="${x(tick)}" y2="${top + plotHeight}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x(tick)}" y="${top + plotHeight + 16}" text-anchor="middle" fill="#555">${Number(tick.toFixed(2))}</text>`);
  }
  tests.forEach((test, t) => {
    const groupTop = top + t * groupHeight + 7;
    const middle = groupTop + (pipelines.length * (barHeight + 4)) / 2;
    parts.push(`<text x="${labelWidth - 8}" y="${middle + 4}" text-anchor="end">${escapeXml(test)}</text>`);
    pipelines.forEach((pipeline, i) => {
      const ratio = ratioOf(test, pipeline);
      if (ratio === undefined) return;
      const y = groupTop + i * (barHeight + 4);
      parts.push(`<rect x="${labelWidth}" y="${y}" width="${Math.max(1, x(ratio) - labelWidth).toFixed(1)}" height="${barHeight}" fill="${colors[i % colors.length]}"/>`);
      parts.push(`<text x="${(x(ratio) + 4).toFixed(1)}" y="${y + barHeight - 4}">${ratio.toFixed(2)}</text>`);
    });
  });
  parts.push(`<line x1="${labelWidth}" y1="${top}" x2="${labelWidth}" y2="${top + plotHeight}" stroke="#333"/>`);
  parts.push(`<line x1="${x(1)}" y1="${top - 4}" x2="${x(1)}" y2="${top + plotHeight}" stroke="#c00" stroke-width="2" stroke-dasharray="6 3"/>`);
  parts.push(`<text x="${x(1)}" y="${top + plotHeight + 34}" text-anchor="middle" fill="#c00">1.0 = as fast as Redis</text>`);
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

export function writeSvg(file: string, results: Results): void {
  writeAtomically(file, ratiosSvg(results));
}
