/**
 * The programs in examples/ run as a new user runs them, each as its own process against a real
 * server (MMAPD_HOST / MMAPD_PORT pointing at it): the .ts one with Bun, the .mjs ones with Node,
 * the .py one with python3 (redis-py and numpy). Each must exit 0, print its closing line, and
 * leave no key behind. Without python3, redis-py or numpy the Python example reports itself
 * skipped, naming what is missing; with MMAPD_REQUIRE_TOOLS=1 (set by .ci/run) it fails instead.
 * MMAPD_PYTHON chooses the interpreter (default /usr/bin/python3, where Debian's packages go).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import { call, RespClient } from "../../bench/resp_client.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const EXAMPLES = path.resolve(import.meta.dir, "../../examples");
/** The interpreter for the Python example: MMAPD_PYTHON, else Debian's (python3-redis, python3-numpy), else the PATH's. */
const PYTHON = process.env.MMAPD_PYTHON ?? (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const REQUIRED = process.env.MMAPD_REQUIRE_TOOLS === "1";

/** Why the Python example cannot run here (python3, redis-py or numpy missing), or null. */
function pythonProblem(): string | null {
  const install = "(apt-get install -y python3 python3-redis python3-numpy)";
  let stderr: string;
  try {
    const r = spawnSync([PYTHON, "-c", "import redis, numpy"], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode === 0) return null;
    stderr = r.stderr.toString();
  } catch {
    return `${PYTHON} is not there ${install}`;
  }
  const missing = /No module named '([^']+)'/.exec(stderr)?.[1];
  const what = missing === undefined ? `${PYTHON} does not run` : `${PYTHON} has no module '${missing}'`;
  return `${what} ${install}`;
}

const pythonMissing = pythonProblem();
if (pythonMissing !== null && !REQUIRED) console.warn(`examples/numpy_roundtrip.py is skipped: ${pythonMissing}`);

interface Example {
  file: string;
  command: (file: string) => string[];
  /** Lines the run must print, besides the closing "<name>: all replies as expected". */
  lines: string[];
  skip?: boolean;
}

const EXAMPLE_RUNS: Example[] = [
  {
    file: "quickstart.ts",
    command: (file) => [process.execPath, file],
    lines: ["VMGET example:quickstart:db 1 2 3 4 5 -> [0.1,0.2,0.3,0.4,0.5]", "MMAP example:quickstart:dba example_quickstart.f64 -> 15"],
  },
  {
    file: "node_ioredis.mjs",
    command: (file) => ["node", file],
    lines: ["VRANGE example:ioredis:temps 0 -1 RAW -> 12 bytes -> Float32Array [21.5, 23.5, 19.25]"],
  },
  {
    file: "node_redis.mjs",
    command: (file) => ["node", file],
    lines: ["VRANGE example:node_redis:prices 0 -1 RAW -> 24 bytes -> Float64Array [101.5, 102.25, 99.75]"],
  },
  {
    file: "numpy_roundtrip.py",
    command: (file) => [PYTHON, file],
    lines: [
      "MMAP example:numpy:series example_numpy_series.f64 double -> 1000",
      "VALL example:numpy:big as int -> [18446744073709551615, 42]",
    ],
    skip: pythonMissing !== null && !REQUIRED,
  },
];

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
});

afterAll(async () => {
  await server.stop();
  server.cleanup();
});

/** Runs one example against the test server; returns its exit code and everything it printed. */
function runExample(example: Example): { exitCode: number | null; output: string } {
  const r = spawnSync(example.command(path.join(EXAMPLES, example.file)), {
    cwd: path.resolve(EXAMPLES, ".."),
    env: { ...process.env, MMAPD_HOST: "127.0.0.1", MMAPD_PORT: String(server.port), NO_COLOR: "1" },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 50_000,
  });
  return { exitCode: r.exitCode, output: r.stdout.toString() + r.stderr.toString() };
}

describe("examples/", () => {
  test("every example in examples/ is run by this test", () => {
    const files = fs.readdirSync(EXAMPLES).filter((f) => /\.(ts|mjs|js|py)$/.test(f));
    expect(files.sort()).toEqual(EXAMPLE_RUNS.map((e) => e.file).sort());
  });

  for (const example of EXAMPLE_RUNS) {
    const name = example.file.replace(/\.[a-z]+$/, "");
    const title = example.file.endsWith(".py") ? `${example.file} (apt packages python3-redis python3-numpy)` : example.file;
    test.skipIf(example.skip === true)(`${title} exits 0 with every reply as expected`, () => {
      if (example.file.endsWith(".py") && pythonMissing !== null) throw new Error(`MMAPD_REQUIRE_TOOLS=1: ${pythonMissing}`);
      const { exitCode, output } = runExample(example);
      if (exitCode !== 0) console.error(output);
      expect(exitCode).toBe(0);
      const lines = output.split("\n");
      expect(lines).toContain(`${name}: all replies as expected`);
      for (const line of example.lines) expect(lines).toContain(line);
    });
  }

  test("the examples leave no key bound and remove the file numpy wrote", async () => {
    const c = await RespClient.connect(server.port);
    try {
      expect(await call(c, "KEYS", "example:*")).toEqual([]);
    } finally {
      c.close();
    }
    expect(fs.existsSync(path.join(server.dir, "example_numpy_series.f64"))).toBe(false);
  });

  test("an example exits non-zero, saying why, when no server answers", () => {
    const refused = spawnSync([process.execPath, path.join(EXAMPLES, "quickstart.ts")], {
      env: { ...process.env, MMAPD_HOST: "127.0.0.1", MMAPD_PORT: "1" },
      stdout: "pipe",
      stderr: "pipe",
      timeout: 20_000,
    });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.toString()).toContain("quickstart FAILED: cannot connect to mmapd at 127.0.0.1:1");
  });
});
