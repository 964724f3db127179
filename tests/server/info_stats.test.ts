/**
 * INFO's counters, next to a real redis-server 7's: stats (commands processed, error replies,
 * network bytes, instantaneous rate), commandstats, errorstats and latencystats for main-thread
 * and shard commands, the memory fields Redis tools read, and CONFIG RESETSTAT; read through
 * redis-cli (--stat too), ioredis and redis-py, whose INFO parsers must understand them.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync } from "bun";
import Redis from "ioredis";
import fs from "node:fs";
import path from "node:path";
import { resp, RespClient } from "../../bench/resp_client.ts";
import { type RealRedis, startRealRedis } from "../helpers/redis.ts";
import { hasTool, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const PYTHON = process.env.MMAPD_PYTHON ?? (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

let mmapd: TestServer;
let redis: RealRedis;

beforeAll(async () => {
  hasTool("redis-server");
  mmapd = await startServer({ args: ["--workers", "2"] });
  redis = await startRealRedis();
  fs.writeFileSync(path.join(mmapd.dir, "k.f64"), new Uint8Array(new Float64Array([1.5, 2.5, 3.5]).buffer));
  const c = await RespClient.connect(mmapd.port);
  expect(await c.text("MMAP", "k", "k.f64", "double")).toBe(":3\r\n");
  c.close();
});

afterAll(async () => {
  await mmapd.stop();
  mmapd.cleanup();
  await redis.stop();
});

/** INFO `section` of `port` as a map of field to value. */
async function info(port: number, section: string): Promise<Map<string, string>> {
  const c = await RespClient.connect(port);
  try {
    return parseInfo(String(await c.command("INFO", section)));
  } finally {
    c.close();
  }
}

function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Runs the same commands on both servers, each over one connection, after CONFIG RESETSTAT. */
async function onBoth(commands: string[][]): Promise<void> {
  for (const port of [mmapd.port, redis.port]) {
    const c = await RespClient.connect(port);
    try {
      expect(await c.text("CONFIG", "RESETSTAT")).toBe("+OK\r\n");
      for (const command of commands) await c.command(...command);
    } finally {
      c.close();
    }
  }
}

describe("INFO stats, commandstats and errorstats count as Redis counts", () => {
  test("PINGs, an unknown command and a wrong arity: the same counters on both servers", async () => {
    await onBoth([["PING"], ["PING"], ["PING", "hello"], ["NOSUCH", "x"], ["ECHO"], ["ECHO", "a", "b"]]);
    const [ours, theirs] = [await info(mmapd.port, "everything"), await info(redis.port, "everything")];
    for (const field of ["total_commands_processed", "total_error_replies", "errorstat_ERR"])
      expect(`${field}=${ours.get(field)}`).toBe(`${field}=${theirs.get(field)}`);
    // Rejected commands are not processed; CONFIG RESETSTAT and the three PINGs are.
    expect(ours.get("total_commands_processed")).toBe("4");
    expect(ours.get("errorstat_ERR")).toBe("count=3");
    const calls = (fields: Map<string, string>, name: string) =>
      fields.get(`cmdstat_${name}`)!.replace(/usec=\d+,usec_per_call=[\d.]+/, "usec=U");
    for (const name of ["ping", "echo", "config|resetstat"]) expect(calls(ours, name)).toBe(calls(theirs, name));
    expect(calls(ours, "echo")).toBe("calls=0,usec=U,rejected_calls=2,failed_calls=0");
  });

  test("field names and formats are Redis's", async () => {
    await onBoth([["PING"]]);
    const [ours, theirs] = [await info(mmapd.port, "everything"), await info(redis.port, "everything")];
    const redisFields = [
      "total_connections_received",
      "total_commands_processed",
      "instantaneous_ops_per_sec",
      "total_net_input_bytes",
      "total_net_output_bytes",
      "instantaneous_input_kbps",
      "instantaneous_output_kbps",
      "rejected_connections",
      "expired_keys",
      "evicted_keys",
      "total_error_replies",
      "used_memory",
      "used_memory_human",
      "used_memory_rss",
      "used_memory_rss_human",
      "used_memory_peak",
      "used_memory_peak_human",
      "used_memory_peak_perc",
      "total_system_memory",
      "total_system_memory_human",
      "maxmemory",
      "maxmemory_human",
      "maxmemory_policy",
      "mem_fragmentation_ratio",
      "mem_fragmentation_bytes",
      "connected_clients",
      "maxclients",
      "blocked_clients",
      "config_file",
    ];
    const shape = (v: string) =>
      v
        .replace(/\d+/g, "9")
        .replace(/9\.9+/g, "9.9")
        .replace(/(?<=9)[BKMGTP]$/, "<unit>");
    for (const field of redisFields) {
      expect(theirs.has(field)).toBe(true);
      expect(`${field}:${shape(ours.get(field) ?? "(missing)")}`).toBe(`${field}:${shape(theirs.get(field)!)}`);
    }
    expect(ours.get("cmdstat_ping")).toMatch(/^calls=1,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=0$/);
    expect(ours.get("latency_percentiles_usec_ping")).toMatch(/^p50=\d+\.\d{3},p99=\d+\.\d{3},p99\.9=\d+\.\d{3}$/);
    expect(theirs.get("latency_percentiles_usec_ping")).toMatch(/^p50=\d+\.\d{3},p99=\d+\.\d{3},p99\.9=\d+\.\d{3}$/);
    // The human forms say what the byte counts say.
    const human = (n: number) =>
      n < 1024
        ? `${n}B`
        : n < 1024 ** 2
          ? `${(n / 1024).toFixed(2)}K`
          : n < 1024 ** 3
            ? `${(n / 1024 ** 2).toFixed(2)}M`
            : `${(n / 1024 ** 3).toFixed(2)}G`;
    for (const field of ["used_memory", "used_memory_rss", "used_memory_peak", "total_system_memory", "maxmemory"]) {
      expect(ours.get(`${field}_human`)).toBe(human(Number(ours.get(field))));
    }
    expect(Number(ours.get("used_memory"))).toBeGreaterThan(0);
    expect(Number(ours.get("used_memory_peak"))).toBeGreaterThanOrEqual(Number(ours.get("used_memory")));
  });

  test("commandstats and latencystats need INFO commandstats / latencystats / all, as in Redis", async () => {
    await onBoth([["PING"]]);
    for (const port of [mmapd.port, redis.port]) {
      const c = await RespClient.connect(port);
      try {
        const plain = String(await c.command("INFO"));
        expect(plain).not.toContain("# Commandstats");
        expect(plain).not.toContain("# Latencystats");
        expect(plain).toContain("# Errorstats");
        for (const section of ["commandstats", "all", "everything"])
          expect(String(await c.command("INFO", section))).toContain("\r\ncmdstat_ping:calls=1,");
        expect(String(await c.command("INFO", "latencystats"))).toContain("\r\nlatency_percentiles_usec_ping:p50=");
      } finally {
        c.close();
      }
    }
  });

  test("shard commands: calls counted once, time, failures and error codes from the worker", async () => {
    const c = await RespClient.connect(mmapd.port);
    try {
      await c.text("CONFIG", "RESETSTAT");
      const replies = (
        await c.replies([
          ["VGET", "k", "0"],
          ["VGET", "k", "1"],
          ["VGET", "k", "99"],
          ["VGET", "k"],
          ["VALL", "k"],
        ])
      ).toString();
      expect(replies).toBe(
        "$3\r\n1.5\r\n$3\r\n2.5\r\n-ERR index exceeds size\r\n-ERR wrong number of arguments for 'vget' command\r\n*3\r\n$3\r\n1.5\r\n$3\r\n2.5\r\n$3\r\n3.5\r\n",
      );
      // A command every shard runs (DBSIZE) is one call.
      expect(await c.text("DBSIZE")).toBe(":1\r\n");
      const fields = await info(mmapd.port, "everything");
      expect(fields.get("cmdstat_vget")).toMatch(/^calls=3,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=1,failed_calls=1$/);
      expect(fields.get("cmdstat_vall")).toMatch(/^calls=1,.*,rejected_calls=0,failed_calls=0$/);
      expect(fields.get("cmdstat_dbsize")).toMatch(/^calls=1,/);
      expect(fields.get("errorstat_ERR")).toBe("count=2");
      expect(fields.get("total_error_replies")).toBe("2");
      expect(fields.get("total_commands_processed")).toBe("6");
      expect(fields.get("latency_percentiles_usec_vget")).toMatch(/^p50=\d+\.\d{3},p99=\d+\.\d{3},p99\.9=\d+\.\d{3}$/);
      // After RESETSTAT the shards' counters start from zero too.
      await c.text("CONFIG", "RESETSTAT");
      const after = await info(mmapd.port, "everything");
      expect(after.get("cmdstat_vget")).toBeUndefined();
      expect(after.get("errorstat_ERR")).toBeUndefined();
      expect(after.get("total_error_replies")).toBe("0");
      await c.text("VGET", "k", "42");
      expect((await info(mmapd.port, "everything")).get("cmdstat_vget")).toMatch(/^calls=1,.*,failed_calls=1$/);
    } finally {
      c.close();
    }
  });

  test("an error code other than ERR is counted under its own name", async () => {
    const c = await RespClient.connect(mmapd.port);
    try {
      await c.text("CONFIG", "RESETSTAT");
      expect(await c.text("HELLO", "4")).toBe("-NOPROTO unsupported protocol version\r\n");
      expect((await info(mmapd.port, "errorstats")).get("errorstat_NOPROTO")).toBe("count=1");
    } finally {
      c.close();
    }
  });

  test("total_net_input_bytes and total_net_output_bytes count every byte of a connection", async () => {
    const c = await RespClient.connect(mmapd.port);
    try {
      const stats = async () => {
        const request = resp("INFO", "stats");
        c.write(request);
        const reply = await c.readReplies(1);
        const fields = parseInfo(reply.toString());
        return {
          input: Number(fields.get("total_net_input_bytes")),
          output: Number(fields.get("total_net_output_bytes")),
          request: request.length,
          reply: reply.length,
        };
      };
      const first = await stats();
      const ping = resp("PING", "hello");
      c.write(ping);
      expect((await c.readReplies(1)).toString()).toBe("$5\r\nhello\r\n");
      const second = await stats();
      // In: the PING and the second INFO; out: the first INFO's reply (counted once sent) and the PING's.
      expect(second.input - first.input).toBe(ping.length + second.request);
      expect(second.output - first.output).toBe(first.reply + "$5\r\nhello\r\n".length);
    } finally {
      c.close();
    }
  });

  test("instantaneous_ops_per_sec follows the load", async () => {
    const c = await RespClient.connect(mmapd.port);
    try {
      const deadline = Date.now() + 800;
      while (Date.now() < deadline) await c.pipeline(Array.from({ length: 2000 }, () => ["PING"]));
      const fields = await info(mmapd.port, "stats");
      expect(Number(fields.get("instantaneous_ops_per_sec"))).toBeGreaterThan(1000);
      expect(Number(fields.get("instantaneous_input_kbps"))).toBeGreaterThan(1);
    } finally {
      c.close();
    }
  });
});

describe("tools and client libraries read the counters", () => {
  test("redis-cli --stat shows keys, memory, clients and requests", async () => {
    if (!hasTool("redis-cli")) return;
    // stdbuf: redis-cli's lines would otherwise wait in its buffer when it is killed.
    const cli = spawn(["stdbuf", "-o0", "redis-cli", "-p", String(mmapd.port), "--stat", "-i", "0.2"], { stdout: "pipe", stderr: "pipe" });
    await Bun.sleep(700);
    cli.kill();
    const text = await new Response(cli.stdout).text();
    const lines = text.split("\n").filter((l) => /^\d/.test(l));
    expect(lines.length).toBeGreaterThan(0);
    // keys  mem  clients blocked requests connections
    expect(lines[0]).toMatch(/^1 +\d+\.\d\d[KMG] +\d+ +0 +\d+ \(\+\d+\) +\d+/);
  });

  test("ioredis: INFO commandstats and errorstats parse into Redis's fields", async () => {
    const client = new Redis(mmapd.port, { lazyConnect: true });
    try {
      await client.connect();
      await client.call("CONFIG", "RESETSTAT");
      await client.call("VGET", "k", "2");
      await client.call("VGET", "k", "7").catch(() => {});
      const text = await client.info("commandstats");
      expect(text).toMatch(/\r\ncmdstat_vget:calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=1\r\n/);
      expect(await client.info("errorstats")).toBe("# Errorstats\r\nerrorstat_ERR:count=1\r\n");
    } finally {
      client.disconnect();
    }
  });

  test("redis-py: INFO memory, commandstats, errorstats and latencystats parse as Redis's do", () => {
    /** What redis-py makes of the counters after one good and one failing command (given per server). */
    const parsed = (port: number, good: string[], failing: string[], name: string) => {
      const script = `
import json, sys, redis
r = redis.Redis(port=${port})
r.config_resetstat()
r.execute_command(*${JSON.stringify(good)})
try:
    r.execute_command(*${JSON.stringify(failing)})
except redis.ResponseError:
    pass
memory = r.info("memory")
kind = lambda v: {k: type(x).__name__ for k, x in v.items()} if isinstance(v, dict) else type(v).__name__
out = {
  "memory": {k: kind(memory[k]) for k in ("used_memory", "used_memory_human", "used_memory_rss_human", "used_memory_peak_human", "maxmemory", "maxmemory_policy", "mem_fragmentation_ratio")},
  "command": r.info("commandstats")["cmdstat_${name}"],
  "errors": r.info("errorstats"),
  "latency": kind(r.info("latencystats")["latency_percentiles_usec_${name}"]),
  "total_error_replies": r.info("stats")["total_error_replies"],
}
r.close()
print(json.dumps(out))
`;
      const run = spawnSync([PYTHON, "-c", script]);
      expect(run.stderr.toString()).toBe("");
      const out = JSON.parse(run.stdout.toString());
      out.command.usec = out.command.usec_per_call = "timing";
      return out;
    };
    const ours = parsed(mmapd.port, ["VGET", "k", "0"], ["VGET", "k", "9"], "vget");
    const theirs = parsed(redis.port, ["INCRBY", "n", "1"], ["INCRBY", "n", "notanumber"], "incrby");
    expect(ours.command).toEqual({ calls: 2, usec: "timing", usec_per_call: "timing", rejected_calls: 0, failed_calls: 1 });
    expect(ours).toEqual(theirs);
  });
});
