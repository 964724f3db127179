/**
 * The server with the clients people use: redis-cli, redis-benchmark (plain, pipelined, inline
 * and multibulk PING), ioredis over RESP2, node-redis v5 over RESP3, and Bun's RedisClient.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { RedisClient, spawnSync } from "bun";
import Redis from "ioredis";
import { createClient } from "redis";
import { hasTool, RawClient, redisCli, resp, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const haveCli = hasTool("redis-cli");
const haveBenchmark = hasTool("redis-benchmark");

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
});

afterAll(async () => {
  await server.stop();
  server.cleanup();
});

/** INFO stats' total_commands_processed, read over a raw connection. */
async function commandsProcessed(): Promise<number> {
  const c = await RawClient.connect(server.port);
  try {
    c.write(resp("INFO", "stats"));
    const info = (await c.readReplies(1)).toString();
    return Number(/total_commands_processed:(\d+)/.exec(info)![1]);
  } finally {
    c.close();
  }
}

describe("redis-cli (apt package redis-tools)", () => {
  test.skipIf(!haveCli)("PING and ECHO", () => {
    expect(redisCli(server.port, "PING")).toBe("PONG");
    expect(redisCli(server.port, "ECHO", "hello world")).toBe("hello world");
  });

  test.skipIf(!haveCli)("-3 HELLO 3 prints the server's map", () => {
    const lines = redisCli(server.port, "-3", "HELLO", "3").split("\n");
    expect(lines.slice(0, 3)).toEqual(["server mmapd", "version 0.1.0", "proto 3"]);
    expect(lines).toContain("mode standalone");
  });

  test.skipIf(!haveCli)("INFO server", () => {
    const text = redisCli(server.port, "INFO", "server");
    expect(text.split(/\r?\n/)[0]).toBe("# Server");
    expect(text).toContain(`tcp_port:${server.port}`);
    expect(text).not.toContain("# Clients");
  });

  test.skipIf(!haveCli)("a value type round trip and an error", () => {
    expect(redisCli(server.port, "MMAP", "cli", "cli.f64")).toBe("0");
    expect(redisCli(server.port, "VADD", "cli", "0.1", "-2.5")).toBe("2");
    expect(redisCli(server.port, "VALL", "cli")).toBe("0.1\n-2.5");
    expect(redisCli(server.port, "VGET", "cli", "9").trim()).toBe("ERR index exceeds size");
  });
});

/** Runs redis-benchmark with --csv; returns requests per second by test name, failing on any error. */
function benchmark(...args: string[]): Map<string, number> {
  const r = spawnSync(["redis-benchmark", "-p", String(server.port), "--csv", ...args], { timeout: 60_000 });
  const out = r.stdout.toString();
  const err = r.stderr.toString();
  expect({ exitCode: r.exitCode, stderr: err }).toEqual({ exitCode: 0, stderr: "" });
  expect(out).not.toMatch(/error/i);
  const rows = out.trim().split("\n");
  expect(rows[0]).toStartWith('"test","rps"');
  const rps = new Map<string, number>();
  for (const row of rows.slice(1)) {
    const [name, value] = row.split(",").map((cell) => cell.replace(/"/g, ""));
    rps.set(name!, Number(value));
  }
  return rps;
}

describe("redis-benchmark (apt package redis-tools)", () => {
  const cases: [string, string[], string[]][] = [
    ["-t ping -n 20000 -c 20", ["-t", "ping", "-n", "20000", "-c", "20"], ["PING_INLINE", "PING_MBULK"]],
    ["-t ping -n 20000 -c 20 -P 16", ["-t", "ping", "-n", "20000", "-c", "20", "-P", "16"], ["PING_INLINE", "PING_MBULK"]],
    ["-t ping_inline,ping_mbulk -P 16", ["-t", "ping_inline,ping_mbulk", "-n", "20000", "-P", "16"], ["PING_INLINE", "PING_MBULK"]],
  ];
  for (const [name, args, tests] of cases) {
    test.skipIf(!haveBenchmark)(`${name}: finishes with no errors`, async () => {
      const before = await commandsProcessed();
      const rps = benchmark(...args);
      expect([...rps.keys()].sort()).toEqual(tests);
      for (const t of tests) expect(rps.get(t)).toBeGreaterThan(0);
      // Every request reached the server (it also sends CONFIG GET at start).
      expect((await commandsProcessed()) - before).toBeGreaterThanOrEqual(20_000 * tests.length);
    });
  }
});

describe("client libraries", () => {
  test("ioredis (RESP2): ping, echo, VSET / VGET", async () => {
    const client = new Redis({ host: "127.0.0.1", port: server.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await client.connect();
      expect(await client.ping()).toBe("PONG");
      expect(await client.echo("from ioredis")).toBe("from ioredis");
      expect(await client.call("MMAP", "io", "io.f64")).toBe(0);
      expect(await client.call("VADD", "io", "0", "0")).toBe(2);
      expect(await client.call("VSET", "io", "1", "0.25")).toBe(1);
      expect(await client.call("VGET", "io", "1")).toBe("0.25");
      expect(await client.call("VMGET", "io", "0", "1")).toEqual(["0", "0.25"]);
      await expect(client.call("VGET", "io", "5")).rejects.toThrow("ERR index exceeds size");
      expect(await client.call("CLIENT", "INFO")).toContain(" resp=2 ");
    } finally {
      await client.quit().catch(() => client.disconnect());
    }
  });

  test("node-redis v5 (RESP3): ping, HELLO 3 negotiated, doubles as numbers", async () => {
    const client = createClient({ socket: { host: "127.0.0.1", port: server.port, reconnectStrategy: false }, RESP: 3 });
    client.on("error", () => {});
    await client.connect();
    const send = (...args: string[]): Promise<unknown> => client.sendCommand(args);
    try {
      expect(await client.ping()).toBe("PONG");
      expect(await send("MMAP", "nr", "nr.f64")).toBe(0);
      expect(await send("VADD", "nr", "1.5", "-0.125")).toBe(2);
      expect(await send("VGET", "nr", "0")).toBe(1.5);
      expect(await send("VALL", "nr")).toEqual([1.5, -0.125]);
      expect(String(await send("CLIENT", "INFO"))).toContain(" resp=3 ");
      const hello = await send("HELLO", "3");
      const fields = hello instanceof Map ? Object.fromEntries(hello) : (hello as Record<string, unknown>);
      expect(fields.server).toBe("mmapd");
      expect(fields.proto).toBe(3);
    } finally {
      await client.close();
    }
  });

  test("Bun's RedisClient (RESP3): PING and VGET", async () => {
    const client = new RedisClient(`redis://127.0.0.1:${server.port}`, { autoReconnect: false });
    try {
      await client.connect();
      expect(await client.send("PING", [])).toBe("PONG");
      expect(await client.send("MMAP", ["bun", "bun.f64"])).toBe(0);
      expect(await client.send("VADD", ["bun", "2.75"])).toBe(1);
      expect(await client.send("VGET", ["bun", "0"])).toBe(2.75);
      expect(await client.send("CLIENT", ["INFO"])).toContain(" resp=3 ");
      await expect(client.send("VGET", ["bun", "1"])).rejects.toThrow("ERR index exceeds size");
    } finally {
      client.close();
    }
  });
});
