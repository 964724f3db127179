/**
 * A config file a Redis user can write: `bun server.ts FILE` (as redis-server takes it) and
 * `--config FILE`, redis.conf's directives for what mmapd has, save and appendonly explained
 * rather than refused, logfile and pidfile, CONFIG SET / GET / REWRITE / HELP next to a real
 * redis-server 7, and one parameter table behind flags, files, CONFIG and --help.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import { createClient } from "redis";
import { RespClient } from "../../bench/resp_client.ts";
import { type RealRedis, startRealRedis } from "../helpers/redis.ts";
import { hasTool, launchServer, type LaunchedServer, redisCli, tempDir } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const ROOT = path.resolve(import.meta.dir, "../..");
const ENTRY = path.join(ROOT, "server.ts");

let redis: RealRedis;
let dirs: string[] = [];

beforeAll(async () => {
  hasTool("redis-server");
  redis = await startRealRedis();
});

afterAll(async () => {
  await redis.stop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  dirs = [];
});

/** A fresh directory, removed after the tests. */
function scratch(): string {
  const dir = tempDir("mmapd-conf-");
  dirs.push(dir);
  return dir;
}

/** Writes `lines` as a config file in `dir`; returns its path. */
function writeConf(dir: string, lines: string[], name = "mmapd.conf"): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

/** Runs `body` with a connection to `port`, closed afterwards. */
async function withClient<T>(port: number, body: (c: RespClient) => Promise<T>): Promise<T> {
  const c = await RespClient.connect(port);
  try {
    return await body(c);
  } finally {
    c.close();
  }
}

/** CONFIG GET of one parameter: its value. */
async function configGet(port: number, name: string): Promise<string> {
  const reply = (await withClient(port, (c) => c.command("CONFIG", "GET", name))) as string[];
  expect(reply[0]).toBe(name);
  return reply[1];
}

/** Runs the server to its exit (for a configuration it refuses). */
function runToExit(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync([process.execPath, ENTRY, ...args], { cwd: ROOT, timeout: 20_000 });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** A redis.conf with most of what mmapd understands, comments and blank lines included. */
function sampleConf(dir: string, extra: string[] = []): string[] {
  return [
    "# mmapd, written as a redis.conf",
    "port 0",
    "bind 127.0.0.1 -::1",
    `dir "${path.join(dir, "data")}"`,
    "workers 1",
    "",
    "# limits",
    "maxclients 77",
    "timeout 0",
    "client-query-buffer-limit 64mb",
    "client-output-buffer-limit normal 0 0 0",
    "client-output-buffer-limit pubsub 32mb 8mb 60",
    "proto-max-bulk-len 1mb",
    "",
    "# persistence, as a Redis user writes it",
    "appendfsync always",
    "save 900 1",
    'save ""',
    "appendonly no",
    "",
    "daemonize no",
    "protected-mode yes",
    "loglevel notice",
    `pidfile ${path.join(dir, "mmapd.pid")}`,
    "enable-debug-command yes",
    "databases 1",
    "slowlog-log-slower-than 2000",
    "slowlog-max-len 64",
    ...extra,
  ];
}

describe("starting from a config file", () => {
  test("bun server.ts FILE: redis.conf's directives, the pidfile, and save/appendonly explained in the log", async () => {
    const dir = scratch();
    const conf = writeConf(dir, sampleConf(dir));
    const s = await launchServer([conf]);
    try {
      const expected: Record<string, string> = {
        maxclients: "77",
        fsync: "always",
        appendfsync: "always",
        "client-query-buffer-limit": String(64 * 1024 * 1024),
        "client-output-buffer-limit": "0",
        "proto-max-bulk-len": String(1024 * 1024),
        "protected-mode": "yes",
        workers: "1",
        daemonize: "no",
        databases: "1",
        "enable-debug-command": "yes",
        "slowlog-log-slower-than": "2000",
        "slowlog-max-len": "64",
        bind: "127.0.0.1",
        dir: fs.realpathSync(path.join(dir, "data")),
        save: "",
        appendonly: "no",
      };
      for (const [name, value] of Object.entries(expected)) expect(`${name} ${await configGet(s.port, name)}`).toBe(`${name} ${value}`);
      expect(fs.readFileSync(path.join(dir, "mmapd.pid"), "utf8")).toBe(`${s.proc.pid}\n`);
      const infoServer = String(await withClient(s.port, (c) => c.command("INFO", "server")));
      expect(infoServer).toContain(`\r\nconfig_file:${conf}\r\n`);
      const log = s.output();
      expect(log).toContain(`* Configuration loaded from ${conf}\n`);
      expect(log).toMatch(/# save "900 1" ignored: mmapd takes no snapshots: values live in their mapped files, .*\n/);
      expect(log).toMatch(/\* save "": as always here; mmapd takes no snapshots/);
      expect(log).toMatch(
        /\* appendonly no: as always here; mmapd keeps no append-only file: each write goes straight into its mapped file/,
      );
    } finally {
      expect(await s.stop()).toBe(0);
    }
    // The pidfile goes with the process.
    expect(fs.existsSync(path.join(dir, "mmapd.pid"))).toBe(false);
  });

  test("--config FILE reads the same file; flags after it override it", async () => {
    const dir = scratch();
    const conf = writeConf(dir, sampleConf(dir));
    const s = await launchServer(["--config", conf, "--maxclients", "12"]);
    try {
      expect(await configGet(s.port, "maxclients")).toBe("12");
      expect(await configGet(s.port, "fsync")).toBe("always");
    } finally {
      expect(await s.stop()).toBe(0);
    }
  });

  test("logfile: the log goes to the file, appended to", async () => {
    const dir = scratch();
    const logfile = path.join(dir, "mmapd.log");
    fs.writeFileSync(logfile, "earlier line\n");
    const conf = writeConf(dir, ["port 0", `dir ${path.join(dir, "data")}`, "workers 1", `logfile ${logfile}`]);
    const proc = spawn([process.execPath, ENTRY, conf], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    try {
      const deadline = Date.now() + 20_000;
      let port = 0;
      while (port === 0 && Date.now() < deadline) {
        const m = /Ready to accept connections tcp on 127\.0\.0\.1:(\d+)/.exec(fs.readFileSync(logfile, "utf8"));
        if (m !== null) port = Number(m[1]);
        else await Bun.sleep(20);
      }
      expect(port).toBeGreaterThan(0);
      expect(await withClient(port, (c) => c.text("SHUTDOWN"))).toBe("");
      expect(await proc.exited).toBe(0);
      const log = fs.readFileSync(logfile, "utf8");
      expect(log.startsWith("earlier line\n")).toBe(true);
      expect(log).toContain("# User requested SHUTDOWN...\n");
      expect(await new Response(proc.stdout).text()).toBe("");
    } finally {
      proc.kill(9);
    }
  });

  const refused: [string, string[], RegExp][] = [
    [
      "daemonize yes",
      ["daemonize yes"],
      /^mmapd: .*:1: daemonize: mmapd does not fork into the background; run it under systemd, a container or nohup\n$/,
    ],
    ["an unknown directive", ["port 0", "maxmemory-clients 5"], /^mmapd: .*:2: unknown option 'maxmemory-clients'\n$/],
    ["an unclosed quote", ['requirepass "abc'], /^mmapd: .*:1: unbalanced quotes\n$/],
    ["more databases", ["databases 16"], /^mmapd: .*:1: databases: mmapd has one database \(0\), not '16'\n$/],
    [
      "a memory value with a bad unit",
      ["proto-max-bulk-len 5tb"],
      /^mmapd: .*:1: proto-max-bulk-len: '5tb' is not a byte count \(a number, optionally with kb, mb or gb\)\n$/,
    ],
  ];
  for (const [name, lines, message] of refused) {
    test(`${name}: exit 2 naming the file and line`, () => {
      const r = runToExit([writeConf(scratch(), lines)]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }
});

describe("CONFIG next to Redis", () => {
  let s: LaunchedServer;
  let confDir: string;

  beforeAll(async () => {
    confDir = scratch();
    s = await launchServer(["--port", "0", "--dir", path.join(confDir, "data"), "--workers", "1"]);
  });

  afterAll(async () => {
    await s.stop();
  });

  /** Replies of both servers to `args`: [mmapd's, Redis's]. */
  async function both(...args: string[]): Promise<[string, string]> {
    return [await withClient(s.port, (c) => c.text(...args)), await withClient(redis.port, (c) => c.text(...args))];
  }

  test("CONFIG HELP, errors of CONFIG SET and CONFIG REWRITE without a file: Redis's text, byte for byte", async () => {
    for (const args of [
      ["CONFIG", "HELP"],
      ["CONFIG", "SET", "maxclients", "abc"],
      ["CONFIG", "SET", "protected-mode", "maybe"],
      ["CONFIG", "SET", "nosuch", "1"],
      ["CONFIG", "SET", "loglevel", "foo"],
      ["CONFIG", "SET", "timeout", "-1"],
      ["CONFIG", "SET", "appendonly", "maybe"],
      ["CONFIG", "SET", "client-query-buffer-limit", "1x"],
      ["CONFIG", "SET", "maxclients", "100", "maxclients", "200"],
      ["CONFIG", "SET", "daemonize", "no"],
      ["CONFIG", "SET", "port"],
      ["CONFIG", "GET"],
      ["CONFIG", "FOO"],
      ["CONFIG", "REWRITE"],
      ["CONFIG", "GET", "save"],
      ["CONFIG", "GET", "appendonly"],
    ]) {
      const [ours, theirs] = await both(...args);
      expect(`${args.join(" ")} -> ${ours}`).toBe(`${args.join(" ")} -> ${theirs}`);
    }
  });

  test("CONFIG SET save / appendonly: what mmapd does anyway is OK; asking for snapshots or an AOF says why not", async () => {
    await withClient(s.port, async (c) => {
      expect(await c.text("CONFIG", "SET", "save", "")).toBe("+OK\r\n");
      expect(await c.text("CONFIG", "SET", "appendonly", "no")).toBe("+OK\r\n");
      expect(await c.text("CONFIG", "SET", "save", "900 1")).toBe(
        "-ERR CONFIG SET failed (possibly related to argument 'save') - mmapd takes no snapshots: values live in their mapped files, which reach the disk by the fsync policy (appendfsync always|everysec|no); SAVE flushes every file at once\r\n",
      );
      expect(await c.text("CONFIG", "SET", "appendonly", "yes")).toBe(
        "-ERR CONFIG SET failed (possibly related to argument 'appendonly') - mmapd keeps no append-only file: each write goes straight into its mapped file, which reaches the disk by the fsync policy (appendfsync always|everysec|no)\r\n",
      );
      // Nothing of a refused CONFIG SET is applied.
      expect(await c.text("CONFIG", "SET", "maxclients", "500", "appendonly", "yes")).toStartWith("-ERR CONFIG SET failed");
      expect(await configGet(s.port, "maxclients")).toBe("10000");
    });
  });

  test("node-redis: configGet of save and appendonly, as from Redis", async () => {
    const answers: Record<string, string>[] = [];
    for (const port of [s.port, redis.port]) {
      const client = await createClient({ url: `redis://127.0.0.1:${port}` }).connect();
      try {
        answers.push(await client.configGet("save"), await client.configGet("appendonly"));
      } finally {
        client.destroy();
      }
    }
    expect(answers.slice(0, 2)).toEqual([{ save: "" }, { appendonly: "no" }]);
    expect(answers.slice(0, 2)).toEqual(answers.slice(2));
  });

  test("redis-benchmark reads CONFIG GET save / appendonly without a warning", () => {
    if (!hasTool("redis-benchmark")) return;
    const r = spawnSync(["redis-benchmark", "-p", String(s.port), "-n", "200", "-t", "ping", "-q"], { timeout: 20_000 });
    expect(r.stderr.toString()).not.toContain("Could not fetch server CONFIG");
    expect(r.stdout.toString()).toContain("requests per second");
  });
});

describe("CONFIG REWRITE", () => {
  test("rewrites changed values in place, keeps comments, appends what the file lacked; the server starts again from it", async () => {
    const dir = scratch();
    const lines = sampleConf(dir);
    const conf = writeConf(dir, lines);
    const s = await launchServer([conf]);
    try {
      // Through redis-cli, as an operator would.
      expect(redisCli(s.port, "CONFIG", "SET", "maxclients", "55", "appendfsync", "everysec", "slowlog-max-len", "64")).toBe("OK");
      const more = ["requirepass", "pass word", "loglevel", "verbose", "client-output-buffer-limit", "1mb"];
      expect(redisCli(s.port, "CONFIG", "SET", ...more)).toBe("OK");
      expect(redisCli(s.port, "-a", "pass word", "--no-auth-warning", "CONFIG", "REWRITE")).toBe("OK");
      const rewritten = fs.readFileSync(conf, "utf8");
      const wanted = lines.map((line) => {
        if (line === "maxclients 77") return "maxclients 55";
        if (line === "appendfsync always") return "appendfsync everysec";
        if (line === "loglevel notice") return "loglevel verbose";
        if (line === "client-output-buffer-limit normal 0 0 0") return "client-output-buffer-limit 1048576";
        return line;
      });
      // The file had no requirepass (and slowlog-max-len kept its value): added after Redis's marker.
      expect(rewritten).toBe(`${[...wanted, "# Generated by CONFIG REWRITE", 'requirepass "pass word"'].join("\n")}\n`);
    } finally {
      expect(await s.stop()).toBe(0);
    }
    const again = await launchServer([conf]);
    try {
      await withClient(again.port, async (c) => {
        expect(await c.text("AUTH", "pass word")).toBe("+OK\r\n");
        expect(await c.command("CONFIG", "GET", "maxclients", "fsync", "client-output-buffer-limit")).toEqual([
          "maxclients",
          "55",
          "fsync",
          "everysec",
          "client-output-buffer-limit",
          "1048576",
        ]);
      });
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });
});

describe("one parameter table", () => {
  test("every --help option is a CONFIG GET parameter, and every CONFIG GET value reads back from a config file", async () => {
    const help = runToExit(["--help"]).stdout;
    const options = [...help.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]).filter((o) => !["config", "help", "version"].includes(o));
    const dir = scratch();
    const s = await launchServer([
      "--port",
      "0",
      "--dir",
      path.join(dir, "a"),
      "--workers",
      "1",
      "--maxclients",
      "321",
      "--slowlog-max-len",
      "9",
    ]);
    let all: string[];
    try {
      all = (await withClient(s.port, (c) => c.command("CONFIG", "GET", "*"))) as string[];
    } finally {
      expect(await s.stop()).toBe(0);
    }
    const values = new Map<string, string>();
    for (let i = 0; i < all.length; i += 2) values.set(all[i], all[i + 1]);
    for (const option of options) expect(values.has(option)).toBe(true);
    // Every value as a line of a config file; a second server started from it shows the same.
    values.set("port", "0");
    values.set("dir", path.join(dir, "b"));
    const quote = (v: string) => (v === "" || /[\s"'\\]/.test(v) ? JSON.stringify(v) : v);
    const conf = writeConf(
      dir,
      [...values].map(([name, value]) => `${name} ${quote(value)}`),
    );
    const again = await launchServer([conf]);
    try {
      const reread = (await withClient(again.port, (c) => c.command("CONFIG", "GET", "*"))) as string[];
      for (let i = 0; i < reread.length; i += 2) {
        if (reread[i] === "port" || reread[i] === "dir") continue;
        expect(`${reread[i]} ${reread[i + 1]}`).toBe(`${reread[i]} ${values.get(reread[i])}`);
      }
    } finally {
      expect(await again.stop()).toBe(0);
    }
  });
});
