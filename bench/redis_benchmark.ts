/**
 * Runs one redis-benchmark measurement and reads its `--csv` output: requests per second and the
 * p50 / p99 latencies. Anything short of a clean run (an error reply, a non-zero exit, no number)
 * throws, so a broken server can never show up as a fast one.
 */
import { release, spawnOwned } from "./processes.ts";

export interface Measurement {
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LoadShape {
  clients: number;
  requests: number;
  pipeline: number;
  /** The `-r` range for `__rand_int__`, or null when the command has none. */
  randomRange: number | null;
}

/** The floor below which a run is taken as hung: 60 s plus 2 ms per request (500 req/s). */
function timeoutMs(requests: number): number {
  return 60_000 + 2 * requests;
}

/** Reads the first data row of redis-benchmark's CSV, by column name. */
function parseCsv(csv: string): Record<string, string> | null {
  const rows = csv
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith('"'))
    .map((line) => line.slice(1, -1).split('","'));
  const header = rows[0];
  const data = rows[1];
  if (header === undefined || data === undefined || header[0] !== "test") return null;
  return Object.fromEntries(header.map((name, i) => [name, data[i] ?? ""]));
}

/** Runs `redis-benchmark` against a loopback port; `testArgs` is `-t name` or a command with its arguments. */
export async function runRedisBenchmark(port: number, shape: LoadShape, testArgs: string[]): Promise<Measurement> {
  const args = [
    "redis-benchmark",
    ...["-h", "127.0.0.1", "-p", String(port)],
    ...["-c", String(shape.clients), "-n", String(shape.requests), "-P", String(shape.pipeline)],
    ...(shape.randomRange === null ? [] : ["-r", String(shape.randomRange)]),
    "--csv",
    ...testArgs,
  ];
  const described = `redis-benchmark -p ${port} -P ${shape.pipeline} ${testArgs.slice(0, 4).join(" ")}${testArgs.length > 4 ? " ..." : ""}`;
  const proc = spawnOwned(args, { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs(shape.requests));
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout as ReadableStream).text(),
    new Response(proc.stderr as ReadableStream).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  release(proc);
  const errorLines = stderr.split("\n").filter((line) => /error|could not connect/i.test(line));
  if (exitCode !== 0 || errorLines.length > 0) {
    const why = proc.signalCode === "SIGKILL" ? `timed out after ${timeoutMs(shape.requests) / 1000} s` : `exit code ${exitCode}`;
    throw new Error(
      `${described} failed (${why}):\n${(errorLines.length > 0 ? errorLines.slice(0, 5).join("\n") : stderr.trim()) || stdout.trim()}`,
    );
  }
  const row = parseCsv(stdout);
  const measurement = {
    rps: Number(row?.rps),
    p50Ms: Number(row?.p50_latency_ms),
    p99Ms: Number(row?.p99_latency_ms),
  };
  if (!(measurement.rps > 0) || !Number.isFinite(measurement.p50Ms) || !Number.isFinite(measurement.p99Ms)) {
    throw new Error(`${described} produced no number; its output was:\n${stdout.trim()}\n${stderr.trim()}`);
  }
  return measurement;
}
