/**
 * The big-reply rows: one request, one reply of megabytes, timed by the raw client from the
 * request's write to the reply's first byte and to its last, with the server's CPU for the reply.
 * mmapd's VRANGE RAW of 80 MB is set against Redis's GET of an 8 MB string (compare MB/s: the
 * sizes differ, the rates need not) and against the client's own ceiling (a process that writes
 * an 80 MB bulk string from memory); VALL of 1M and 10M doubles against LRANGE of a 1M list.
 * mmapd's RSS is read before the rows, right after them, and 10 s later.
 */
import { startByteSource } from "./byte_source.ts";
import { type CpuPerRequest, measuringCpu, medianCpu, perRequest } from "./cpu.ts";
import { BIG_STRING_BYTES, BIG_VALUE_COUNT, VALUE_COUNT } from "./fixtures.ts";
import { residentKiB, type RunningMmapd, type RunningServer } from "./processes.ts";
import { RawConnection } from "./raw_client.ts";
import type { BigReplyRow, BigReplyRun, MemoryAfterBigReplies } from "./report.ts";
import { resp } from "./resp_client.ts";
import { median } from "./statistics.ts";

/** How long after the big replies mmapd's RSS is read again. */
const SETTLE_MS = 10_000;

interface BigReplyTest {
  test: string;
  server: "mmapd" | "Redis" | "byte source";
  command: string[];
  /** Values the reply carries (raw doubles for the byte strings). */
  values: number;
  /** The number the reply's header must hold: the element count of an array, the length of a bulk string. */
  expectedHeader: number;
  goal?: string;
}

const TESTS: BigReplyTest[] = [
  {
    test: "80 MB of raw doubles",
    server: "mmapd",
    command: ["VRANGE", "k10m", "0", "-1", "RAW"],
    values: BIG_VALUE_COUNT,
    expectedHeader: BIG_VALUE_COUNT * 8,
    goal: "≥ 1,000 MB/s",
  },
  { test: "8 MB string (compare MB/s)", server: "Redis", command: ["GET", "big8m"], values: VALUE_COUNT, expectedHeader: BIG_STRING_BYTES },
  {
    test: "client ceiling, 80 MB string",
    server: "byte source",
    command: ["GET", "x"],
    values: BIG_VALUE_COUNT,
    expectedHeader: BIG_VALUE_COUNT * 8,
  },
  { test: "1M doubles as an array", server: "mmapd", command: ["VALL", "k"], values: VALUE_COUNT, expectedHeader: VALUE_COUNT },
  {
    test: "1M doubles as an array",
    server: "Redis",
    command: ["LRANGE", "biglist", "0", "-1"],
    values: VALUE_COUNT,
    expectedHeader: VALUE_COUNT,
  },
  {
    test: "10M doubles as an array",
    server: "mmapd",
    command: ["VALL", "k10m"],
    values: BIG_VALUE_COUNT,
    expectedHeader: BIG_VALUE_COUNT,
    goal: "first byte < 50 ms, ≥ 20 M values/s",
  },
];

/** Sends one command on a fresh connection and times its reply; an error reply, or a reply of the wrong size, throws. */
async function timeReply(port: number, test: BigReplyTest): Promise<{ firstByteMs: number; totalMs: number; bytes: number }> {
  const connection = await RawConnection.connect(port);
  try {
    const request = resp(...test.command);
    connection.resetClock();
    const sent = performance.now();
    connection.send(request);
    await connection.until(1, 300_000);
    const done = performance.now();
    const scanner = connection.scanner;
    const described = `${test.server} ${test.command.join(" ")}`;
    if (scanner.errorCount > 0) throw new Error(`${described}: ${scanner.errors[0]}`);
    if (scanner.lastTopNumber !== test.expectedHeader)
      throw new Error(`${described}: a reply of ${scanner.lastTopNumber}, expected ${test.expectedHeader}`);
    return { firstByteMs: connection.firstByteAt - sent, totalMs: done - sent, bytes: scanner.bytes };
  } finally {
    connection.close();
  }
}

/** Runs every row `rounds` times (interleaved), then reads mmapd's RSS right away and again after SETTLE_MS. */
export async function runBigReplies(
  servers: { mmapd: RunningMmapd; redis: RunningServer },
  rounds: number,
  log: (line: string) => void,
): Promise<{ rows: BigReplyRow[]; memory: MemoryAfterBigReplies }> {
  const source = await startByteSource(BIG_VALUE_COUNT * 8);
  const beforeKiB = residentKiB(servers.mmapd.pid);
  const runs = new Map<BigReplyTest, BigReplyRun[]>();
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const test of TESTS) {
        const target = test.server === "mmapd" ? servers.mmapd : test.server === "Redis" ? servers.redis : null;
        const port = target?.port ?? source.port;
        let cpu: CpuPerRequest | null = null;
        let timed: Awaited<ReturnType<typeof timeReply>>;
        if (target === null) timed = await timeReply(port, test);
        else {
          const measured = await measuringCpu(target.pid, test.server === "mmapd", () => timeReply(port, test));
          timed = measured.result;
          cpu = perRequest(measured.cpu, 1);
        }
        const run: BigReplyRun = {
          ...timed,
          mbPerSecond: timed.bytes / 1e6 / (timed.totalMs / 1000),
          valuesPerSecond: test.values / (timed.totalMs / 1000),
          cpu,
        };
        runs.set(test, [...(runs.get(test) ?? []), run]);
        log(
          `round ${round}/${rounds}  ${test.server.padEnd(11)} ${test.command.join(" ").padEnd(26)}  first byte ${run.firstByteMs.toFixed(1).padStart(7)} ms` +
            `  total ${run.totalMs.toFixed(1).padStart(8)} ms  ${Math.round(run.mbPerSecond).toLocaleString("en-US").padStart(6)} MB/s` +
            `  ${(run.valuesPerSecond / 1e6).toFixed(1).padStart(6)} M values/s`,
        );
      }
    }
  } finally {
    await source.stop();
  }
  const afterKiB = residentKiB(servers.mmapd.pid);
  await Bun.sleep(SETTLE_MS);
  const settledKiB = residentKiB(servers.mmapd.pid);
  const settledAnonKiB = residentKiB(servers.mmapd.pid, "RssAnon");
  const settledFileKiB = residentKiB(servers.mmapd.pid, "RssFile");
  const rows = TESTS.map((test): BigReplyRow => {
    const all = runs.get(test)!;
    const pick = (field: "firstByteMs" | "totalMs" | "bytes" | "mbPerSecond" | "valuesPerSecond") => median(all.map((r) => r[field]));
    return {
      test: test.test,
      server: test.server,
      command: test.command.join(" "),
      values: test.values,
      goal: test.goal ?? "",
      rounds: all,
      median: {
        firstByteMs: pick("firstByteMs"),
        totalMs: pick("totalMs"),
        bytes: pick("bytes"),
        mbPerSecond: pick("mbPerSecond"),
        valuesPerSecond: pick("valuesPerSecond"),
        cpu: all.every((r) => r.cpu !== null) ? medianCpu(all.map((r) => r.cpu!)) : null,
      },
    };
  });
  return { rows, memory: { beforeKiB, afterKiB, settleSeconds: SETTLE_MS / 1000, settledKiB, settledAnonKiB, settledFileKiB } };
}
