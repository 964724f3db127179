/**
 * The server with the clients people use: redis-cli, redis-benchmark (plain, pipelined, inline
 * and multibulk PING), ioredis over RESP2, node-redis v5 over RESP3, and Bun's RedisClient; error
 * texts as the application sees them; every command on every value type through ioredis and
 * node-redis, as applications decode the replies (the bytes themselves are checked in
 * tests/commands/); and uint64 values above 2^63-1, sent as their exact decimal in a bulk string,
 * read exactly by redis-cli (RESP2 and -3), node-redis, ioredis and redis-py 4.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { RedisClient, spawnSync } from "bun";
import Redis from "ioredis";
import fs from "node:fs";
import path from "node:path";
import { createClient, RESP_TYPES } from "redis";
import { resp, RespClient } from "../../bench/resp_client.ts";
import { encodeFile, TYPE_CASES, type Sample, type TypeCase } from "../commands/type_cases.ts";
import { hasTool, redisCli, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const haveCli = hasTool("redis-cli");
const haveBenchmark = hasTool("redis-benchmark");
/** The interpreter for redis-py: MMAPD_PYTHON, else Debian's (python3-redis), else the PATH's (as tests/examples/). */
const PYTHON = process.env.MMAPD_PYTHON ?? (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const havePython = pythonRedis();

/** Whether the interpreter has redis-py; with MMAPD_REQUIRE_TOOLS=1 its absence fails instead. */
function pythonRedis(): boolean {
  const found = spawnSync([PYTHON, "-c", "import redis"]).exitCode === 0;
  if (!found && process.env.MMAPD_REQUIRE_TOOLS === "1")
    throw new Error("python3 with redis-py is required (apt-get install -y python3-redis)");
  return found;
}

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
  const c = await RespClient.connect(server.port);
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

  test("ioredis: error texts that say why reach the application", async () => {
    const c = new Redis({ port: server.port, lazyConnect: true });
    await c.connect();
    try {
      expect(await c.call("MMAP", "s", "s.bin", "string", "2", "WRITABLE")).toBe(0);
      await expect(c.call("VADD", "s", "abc")).rejects.toThrow("ERR value is too long (at most 2 bytes)");
      expect(await c.call("MMAP", "d", "d.f64")).toBe(0);
      await expect(c.call("VADD", "d", "NaN")).rejects.toThrow("ERR value must be double; NaN is not stored");
      expect(await c.call("VADD", "d", "1", "2")).toBe(2);
      await expect(c.call("VGET", "d", "-1")).rejects.toThrow(
        "ERR index must not be negative (only VRANGE and VSTATS count negative indices from the end)",
      );
      expect(await c.call("VRANGE", "d", "-1", "99999999999999999999")).toEqual(["2"]);
    } finally {
      await c.quit();
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

/** One protocol's client, as the type tests drive it. */
interface ProtocolClient {
  label: string;
  proto: 2 | 3;
  /** Sends a command; the reply decoded as the library does by default (doubles as text in RESP3). */
  send(...args: string[]): Promise<unknown>;
  /** Sends a command; every number in the reply comes back as its exact text. */
  exact(...args: string[]): Promise<unknown>;
  /** What `send` yields for a sample's reply. */
  decoded(s: Pick<Sample, "text" | "kind">): unknown;
  close(): Promise<void>;
}

/**
 * An integer reply as a library decodes it into a JavaScript number: exactly when it is safe;
 * beyond 2^53 each library rounds in its own way, so only its being a number is checked here (the
 * `exact` form checks the digits).
 */
function integerAsNumber(text: string): unknown {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : expect.any(Number);
}

/** ioredis, RESP2: integers as numbers (lossy past 2^53), everything else as strings. */
async function connectIoredis(port: number): Promise<ProtocolClient> {
  const options = { host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 };
  const plain = new Redis(options);
  const exact = new Redis({ ...options, stringNumbers: true });
  await Promise.all([plain.connect(), exact.connect()]);
  return {
    label: "RESP2 (ioredis)",
    proto: 2,
    send: (...args) => plain.call(args[0]!, ...args.slice(1)),
    exact: (...args) => exact.call(args[0]!, ...args.slice(1)),
    decoded: (s) => (s.kind === "integer" ? integerAsNumber(s.text) : s.text),
    async close() {
      await Promise.all([plain.quit().catch(() => plain.disconnect()), exact.quit().catch(() => exact.disconnect())]);
    },
  };
}

/**
 * node-redis v5 with `RESP: 3`: integers as numbers, and doubles mapped to their text (its own
 * double parser is approximate, and the text is what mmapd promises).
 */
async function connectNodeRedis(port: number): Promise<ProtocolClient> {
  const client = createClient({ socket: { host: "127.0.0.1", port, reconnectStrategy: false }, RESP: 3 });
  client.on("error", () => {});
  await client.connect();
  const plain = { typeMapping: { [RESP_TYPES.DOUBLE]: String } };
  const exact = { typeMapping: { [RESP_TYPES.DOUBLE]: String, [RESP_TYPES.NUMBER]: String, [RESP_TYPES.BIG_NUMBER]: String } };
  return {
    label: "RESP3 (node-redis)",
    proto: 3,
    send: (...args) => client.sendCommand(args, plain),
    exact: (...args) => client.sendCommand(args, exact),
    decoded: (s) => (s.kind === "integer" ? integerAsNumber(s.text) : s.text),
    async close() {
      await client.close();
    },
  };
}

/** The message of the error a command is answered with (fails the test if it succeeds). */
async function errorOf(reply: Promise<unknown>): Promise<string> {
  try {
    const value = await reply;
    return `no error: ${String(value)}`;
  } catch (e) {
    return (e as Error).message;
  }
}

describe("every value type through the client libraries", () => {
  const clients: ProtocolClient[] = [];
  beforeAll(async () => {
    clients.push(await connectIoredis(server.port), await connectNodeRedis(server.port));
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
  });

  const bytesOf = (name: string) => new Uint8Array(fs.readFileSync(path.join(server.dir, name)));

  /** MMAP, VADD, the reads, VSET, every refusal, VPOP and VCLEAR on one type through one client. */
  async function everyCommand(t: TypeCase, c: ProtocolClient): Promise<void> {
    const key = `${t.name}:resp${c.proto}`;
    const file = `${t.name}-resp${c.proto}.bin`;
    const inputs = t.samples.map((s) => s.input);
    const n = inputs.length;

    expect(await c.send("MMAP", key, file, ...t.mmapArgs, "WRITABLE")).toBe(0);
    expect(await c.send("VADD", key, ...inputs)).toBe(n);
    expect(bytesOf(file)).toEqual(encodeFile(t, inputs));
    expect(await c.send("VCOUNT", key)).toBe(n);
    expect(await c.send("VTYPE", key)).toBe(t.name);
    expect(await c.send("VSIZE", key)).toBe(t.width);
    expect(await c.send("VFILEPATH", key)).toBe(file);

    expect(await c.send("VALL", key)).toEqual(t.samples.map(c.decoded));
    expect(await c.exact("VALL", key)).toEqual(t.samples.map((s) => s.text));
    for (let i = 0; i < n; i++) expect(await c.send("VGET", key, String(i))).toEqual(c.decoded(t.samples[i]!));
    const reversed = [...t.samples.keys()].reverse();
    expect(await c.send("VMGET", key, ...reversed.map(String))).toEqual(reversed.map((i) => c.decoded(t.samples[i]!)));

    // Swap the first and last values.
    expect(await c.send("VSET", key, "0", inputs[n - 1]!, String(n - 1), inputs[0]!)).toBe(2);
    expect(await c.exact("VMGET", key, "0", String(n - 1))).toEqual([t.samples[n - 1]!.text, t.samples[0]!.text]);

    // Refusals reach the application as errors with the server's text.
    for (const [input, error] of t.refused) {
      expect(await errorOf(c.send("VADD", key, inputs[1]!, input))).toBe(error);
      expect(await errorOf(c.send("VSET", key, "1", inputs[0]!, "0", input))).toBe(error);
      expect(await errorOf(c.send("VSET", key, "0", input))).toBe(error);
    }
    expect(await c.send("VCOUNT", key)).toBe(n);

    expect(await c.send("VPOP", key)).toEqual(c.decoded(t.samples[0]!));
    expect(await c.send("VCOUNT", key)).toBe(n - 1);
    expect(await c.send("VCLEAR", key)).toBe(n - 1);
    expect(await c.send("VCOUNT", key)).toBe(0);
    expect(await c.send("VALL", key)).toEqual([]);
    expect(await c.send("VPOP", key)).toBeNull();
    expect(await c.send("VADD", key, inputs[2]!)).toBe(1);
  }

  for (const t of TYPE_CASES) {
    test(`${t.name}: every command, RESP2 (ioredis)`, () => everyCommand(t, clients[0]!));
    test(`${t.name}: every command, RESP3 (node-redis)`, () => everyCommand(t, clients[1]!));

    test(`${t.name}: a file written by the test, read-only, decoded by both libraries`, async () => {
      const file = `interop-${t.name}.bin`;
      const inputs = t.samples.map((s) => s.input);
      fs.writeFileSync(path.join(server.dir, file), encodeFile(t, inputs));
      const key = `interop:${t.name}`;
      for (const c of clients) {
        expect(await c.send("MMAP", key, file, ...t.mmapArgs)).toBe(inputs.length);
        expect(await c.exact("VALL", key)).toEqual(t.samples.map((s) => s.text));
        expect(await c.send("VALL", key)).toEqual(t.samples.map(c.decoded));
        expect(await errorOf(c.send("VSET", key, "0", inputs[0]!))).toBe("ERR The file is not writable");
      }
    });
  }

  test("uint64 2^64-1 reaches node-redis as its exact text", async () => {
    expect(await clients[1]!.send("MMAP", "u64x", "u64x.bin", "uint64", "WRITABLE")).toBe(0);
    expect(await clients[1]!.send("VADD", "u64x", "18446744073709551615")).toBe(1);
    // node-redis hands the bulk string back as its exact text.
    expect(await clients[1]!.send("VGET", "u64x", "0")).toBe("18446744073709551615");
  });
});

describe("uint64 above 2^63-1 through every client", () => {
  const TOP = "18446744073709551615"; // 2^64-1
  const HALF = "9223372036854775808"; // 2^63

  beforeAll(async () => {
    const c = new Redis({ port: server.port, lazyConnect: true });
    await c.connect();
    expect(await c.call("MMAP", "u64", "u64.bin", "uint64", "WRITABLE")).toBe(0);
    expect(await c.call("VADD", "u64", TOP, "7", HALF)).toBe(3);
    await c.quit();
  });

  const cli = (...args: string[]) => {
    const r = spawnSync(["redis-cli", "-p", String(server.port), ...args]);
    return { out: r.stdout.toString(), err: r.stderr.toString(), code: r.exitCode };
  };

  test.skipIf(!haveCli)("redis-cli -3 prints VGET, VMGET, VALL and VSTATS (it printed `Unknown reply type: 13` and exited 1)", () => {
    for (const flags of [["-3"], []]) {
      expect(cli(...flags, "VGET", "u64", "0")).toEqual({ out: `${TOP}\n`, err: "", code: 0 });
      expect(cli(...flags, "--no-raw", "VGET", "u64", "0")).toEqual({ out: `"${TOP}"\n`, err: "", code: 0 });
      expect(cli(...flags, "--no-raw", "VMGET", "u64", "0", "1")).toEqual({ out: `1) "${TOP}"\n2) (integer) 7\n`, err: "", code: 0 });
      expect(cli(...flags, "VALL", "u64")).toEqual({ out: `${TOP}\n7\n${HALF}\n`, err: "", code: 0 });
      const stats = cli(...flags, "VSTATS", "u64");
      expect(stats.code).toBe(0);
      // RESP3's map prints a pair per line, RESP2's flat array an element per line.
      const sep = flags.length > 0 ? " " : "\n";
      expect(stats.out).toContain(
        ["sum", (2n ** 64n - 1n + 7n + 2n ** 63n).toString(), "min", "7", "max", TOP]
          .map((x, i) => x + (i % 2 === 0 ? sep : "\n"))
          .join(""),
      );
    }
  });

  test("node-redis (RESP3) reads the exact text", async () => {
    const client = createClient({ socket: { host: "127.0.0.1", port: server.port, reconnectStrategy: false }, RESP: 3 });
    await client.connect();
    try {
      expect<unknown>(await client.sendCommand(["VGET", "u64", "0"])).toBe(TOP);
      expect<unknown>(await client.sendCommand(["VALL", "u64"])).toEqual([TOP, 7, HALF]);
    } finally {
      await client.close();
    }
  });

  test("ioredis (RESP2) reads the exact text", async () => {
    const c = new Redis({ port: server.port, lazyConnect: true });
    await c.connect();
    try {
      expect(await c.call("VGET", "u64", "0")).toBe(TOP);
      expect(await c.call("VMGET", "u64", "2", "1")).toEqual([HALF, 7]);
    } finally {
      await c.quit();
    }
  });

  test.skipIf(!havePython)("redis-py 4 (RESP2) reads the exact text; int() of it is exact", () => {
    const script = [
      "import sys, redis",
      "r = redis.Redis(port=int(sys.argv[1]))",
      "v = r.execute_command('VGET', 'u64', 0)",
      "print(repr(v), int(v) == 2**64 - 1, r.execute_command('VALL', 'u64'))",
      "r.close()",
    ].join("\n");
    const r = spawnSync([PYTHON, "-c", script, String(server.port)]);
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString()).toBe(`b'${TOP}' True [b'${TOP}', 7, b'${HALF}']\n`);
  });
});
