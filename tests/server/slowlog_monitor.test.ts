/**
 * SLOWLOG, MONITOR, CLIENT KILL and CLIENT PAUSE / UNPAUSE / NO-EVICT / NO-TOUCH, next to a real
 * redis-server 7: the slow log's reply shape and truncation, its errors and help; MONITOR's line
 * format through redis-cli, with commands of other connections and of both shards; CLIENT KILL's
 * forms and errors; paused clients' commands waiting, in order, until the pause ends.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync } from "bun";
import Redis from "ioredis";
import fs from "node:fs";
import { type Reply, resp, RespClient } from "../../bench/resp_client.ts";
import { type RealRedis, startRealRedis } from "../helpers/redis.ts";
import { hasTool, keyOnShard, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const PYTHON = process.env.MMAPD_PYTHON ?? (fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
const WORKERS = 2;
/** A key on each shard. */
const KEYS = [keyOnShard("k", 0, WORKERS), keyOnShard("k", 1, WORKERS)];

let mmapd: TestServer;
let redis: RealRedis;

beforeAll(async () => {
  hasTool("redis-server");
  hasTool("redis-cli");
  mmapd = await startServer({ args: ["--workers", String(WORKERS)] });
  redis = await startRealRedis();
  const c = await RespClient.connect(mmapd.port);
  for (const key of KEYS) {
    expect(await c.text("MMAP", key, `${key}.f64`, "double", "WRITABLE")).toBe(":0\r\n");
    expect(await c.text("VADD", key, "1.5", "2.5")).toBe(":2\r\n");
  }
  c.close();
});

afterAll(async () => {
  await mmapd.stop();
  mmapd.cleanup();
  await redis.stop();
});

/** Runs `body` with a fresh connection to `port`, closed afterwards. */
async function withClient<T>(port: number, body: (c: RespClient) => Promise<T>): Promise<T> {
  const c = await RespClient.connect(port);
  try {
    return await body(c);
  } finally {
    c.close();
  }
}

/** The same commands' replies from both servers, as text: [mmapd's, Redis's]. */
async function bothReply(...args: string[]): Promise<[string, string]> {
  const out: string[] = [];
  for (const port of [mmapd.port, redis.port]) out.push(await withClient(port, (c) => c.text(...args)));
  return [out[0], out[1]];
}

describe("SLOWLOG", () => {
  /** Logs every command on both servers from a fresh slow log, runs `args` from a client named `app`, and returns its entry from each. */
  async function slowEntries(mmapdArgs: string[], redisArgs: string[]): Promise<[Reply[], Reply[], number[]]> {
    const entries: Reply[][] = [];
    const ports: number[] = [];
    for (const [port, args] of [
      [mmapd.port, mmapdArgs],
      [redis.port, redisArgs],
    ] as [number, string[]][]) {
      await withClient(port, async (c) => {
        expect(await c.text("CONFIG", "SET", "slowlog-log-slower-than", "0")).toBe("+OK\r\n");
        expect(await c.text("SLOWLOG", "RESET")).toBe("+OK\r\n");
        expect(await c.text("CLIENT", "SETNAME", "app")).toBe("+OK\r\n");
        await c.command(...args);
        const got = (await c.decoded(["SLOWLOG", "GET", "1"], "number")) as Reply[][];
        entries.push(got[0]);
        ports.push(c.socket.localPort!);
        await c.text("CONFIG", "SET", "slowlog-log-slower-than", "10000");
      });
    }
    return [entries[0], entries[1], ports];
  }

  test("an entry has Redis's shape: id, Unix time, microseconds, arguments, client address, client name", async () => {
    const [ours, theirs, ports] = await slowEntries(["ECHO", "hello"], ["ECHO", "hello"]);
    const now = Date.now() / 1000;
    for (const [entry, port] of [
      [ours, ports[0]],
      [theirs, ports[1]],
    ] as [Reply[], number][]) {
      expect(entry.length).toBe(6);
      const [id, time, micros, args, address, name] = entry;
      expect(typeof id).toBe("number");
      expect(Math.abs((time as number) - now)).toBeLessThan(30);
      expect(Number.isInteger(micros) && (micros as number) >= 0).toBe(true);
      expect(args).toEqual(["ECHO", "hello"]);
      expect(address).toBe(`127.0.0.1:${port}`);
      expect(name).toBe("app");
    }
  });

  test("a shard's command is logged with its client, from the worker that ran it", async () => {
    for (const key of KEYS) {
      const [ours] = await slowEntries(["VGET", key, "1"], ["PING"]);
      expect(ours[3]).toEqual(["VGET", key, "1"]);
      expect(ours[5]).toBe("app");
    }
  });

  test("long commands are truncated as Redis truncates them: 32 arguments, 128 bytes each", async () => {
    const rest = Array.from({ length: 38 }, (_, i) => (i === 4 ? "x".repeat(300) : `a${i}`));
    // VMGET runs in a shard, MGET in Redis: the same arguments after the name.
    const [ours, theirs] = await slowEntries(["VMGET", KEYS[0], ...rest], ["MGET", "k", ...rest]);
    const args = (entry: Reply[]) => (entry[3] as string[]).slice(1);
    expect(args(ours)[0]).toBe(KEYS[0]);
    expect(args(ours).slice(1)).toEqual(args(theirs).slice(1));
    expect(args(theirs).at(-1)).toBe("... (9 more arguments)");
    expect(args(theirs)[5]).toBe(`${"x".repeat(128)}... (172 more bytes)`);
  });

  test("GET's count, LEN, RESET, slowlog-max-len and the threshold behave as Redis's", async () => {
    for (const port of [mmapd.port, redis.port]) {
      await withClient(port, async (c) => {
        await c.text("CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "4");
        await c.text("SLOWLOG", "RESET");
        for (let i = 0; i < 12; i++) await c.text("PING");
        expect(await c.text("SLOWLOG", "LEN")).toBe(":4\r\n");
        expect((await c.decoded(["SLOWLOG", "GET"], "number")) as Reply[]).toHaveLength(4);
        expect((await c.decoded(["SLOWLOG", "GET", "2"], "number")) as Reply[]).toHaveLength(2);
        expect((await c.decoded(["SLOWLOG", "GET", "-1"], "number")) as Reply[]).toHaveLength(4);
        // Newest first, ids rising.
        const ids = ((await c.decoded(["SLOWLOG", "GET", "-1"], "number")) as number[][]).map((e) => e[0]);
        expect(ids).toEqual([...ids].sort((x, y) => y - x));
        // A threshold of a second keeps PING out.
        await c.text("CONFIG", "SET", "slowlog-log-slower-than", "1000000", "slowlog-max-len", "128");
        await c.text("SLOWLOG", "RESET");
        await c.text("PING");
        expect(await c.text("SLOWLOG", "LEN")).toBe(":0\r\n");
        await c.text("CONFIG", "SET", "slowlog-log-slower-than", "10000");
      });
    }
  });

  test("errors and HELP are Redis's, byte for byte", async () => {
    for (const args of [
      ["SLOWLOG", "GET", "-2"],
      ["SLOWLOG", "GET", "abc"],
      ["SLOWLOG", "GET", "1", "2"],
      ["SLOWLOG", "LEN", "x"],
      ["SLOWLOG", "RESET", "x"],
      ["SLOWLOG", "FOO"],
      ["SLOWLOG"],
      ["SLOWLOG", "HELP"],
    ]) {
      const [ours, theirs] = await bothReply(...args);
      expect(`${args.join(" ")} -> ${ours}`).toBe(`${args.join(" ")} -> ${theirs}`);
    }
  });

  test("redis-py reads the entries (slowlog_get)", async () => {
    const script = `
import json, redis
r = redis.Redis(port=${mmapd.port}, client_name="py")
r.config_set("slowlog-log-slower-than", 0)
r.slowlog_reset()
r.execute_command("VGET", "${KEYS[1]}", 0)
entries = r.slowlog_get(2)
r.config_set("slowlog-log-slower-than", 10000)
r.close()
print(json.dumps([{"command": e["command"].decode(), "duration": e["duration"] >= 0, "id": e["id"] >= 0} for e in entries]))
`;
    const run = spawnSync([PYTHON, "-c", script]);
    expect(run.stderr.toString()).toBe("");
    expect(JSON.parse(run.stdout.toString())).toEqual([
      { command: `VGET ${KEYS[1]} 0`, duration: true, id: true },
      { command: "SLOWLOG RESET", duration: true, id: true },
    ]);
  });
});

describe("MONITOR", () => {
  test("redis-cli MONITOR sees every connection's commands, on both shards, in Redis's line format", async () => {
    // stdbuf: redis-cli's lines would otherwise wait in its buffer.
    const cli = spawn(["stdbuf", "-o0", "redis-cli", "-p", String(mmapd.port), "MONITOR"], { stdout: "pipe", stderr: "pipe" });
    let text = "";
    const decoder = new TextDecoder();
    void (async () => {
      for await (const chunk of cli.stdout as ReadableStream<Uint8Array>) text += decoder.decode(chunk);
    })();
    try {
      const deadline = Date.now() + 10_000;
      while (!text.includes("OK") && Date.now() < deadline) await Bun.sleep(20);
      const a = await RespClient.connect(mmapd.port);
      const b = await RespClient.connect(mmapd.port);
      try {
        await a.text("PING");
        await b.text("VGET", KEYS[0], "0");
        await a.text("VGET", KEYS[1], "1");
        // Refused and admin commands are not shown; passwords are hidden.
        await a.text("NOSUCH", "x");
        await a.text("CONFIG", "GET", "port");
        await b.text("AUTH", "secret");
        await b.text("ECHO", 'a b"c');
        while (!text.includes('"ECHO"') && Date.now() < deadline) await Bun.sleep(20);
        const [pa, pb] = [a.socket.localPort, b.socket.localPort];
        const lines = text.trim().split("\n").slice(1);
        const stamp = String.raw`^\d{10}\.\d{6} \[0 127\.0\.0\.1:`;
        const expected = [
          new RegExp(`${stamp}${pa}\\] "PING"$`),
          new RegExp(`${stamp}${pb}\\] "VGET" "${KEYS[0]}" "0"$`),
          new RegExp(`${stamp}${pa}\\] "VGET" "${KEYS[1]}" "1"$`),
          new RegExp(`${stamp}${pb}\\] "AUTH" "\\(redacted\\)"$`),
          new RegExp(`${stamp}${pb}\\] "ECHO" "a b\\\\"c"$`),
        ];
        expect(lines.length).toBe(expected.length);
        lines.forEach((line, i) => {
          expect(line).toMatch(expected[i]);
        });
      } finally {
        a.close();
        b.close();
      }
    } finally {
      cli.kill();
      await cli.exited;
    }
  });

  /** Starts a monitor on `port`, runs `args` on another connection, and returns the monitor's line without its time and address. */
  async function monitoredLine(port: number, args: (string | Uint8Array)[]): Promise<string> {
    return withClient(port, async (monitor) => {
      expect(await monitor.text("MONITOR")).toBe("+OK\r\n");
      await withClient(port, (c) => c.text(...args));
      const line = (await monitor.readUntil((b) => b.includes("\r\n"))).toString("latin1");
      return line.replace(/^\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] /, "");
    });
  }

  test("arguments are quoted and escaped byte for byte as Redis does", async () => {
    const args = ["ECHO", new Uint8Array([0x01, 0xff, 0x0d, 0x0a, 0x09, 0x07, 0x08, 0x22, 0x20, 0x5c, 0x41, 0x00])];
    expect(await monitoredLine(mmapd.port, args)).toBe(await monitoredLine(redis.port, args));
    expect(await monitoredLine(mmapd.port, ["HELLO", "2", "AUTH", "default", "pw"])).toBe(
      '"HELLO" "2" "AUTH" "(redacted)" "(redacted)"\r\n',
    );
  });

  test("a monitoring client: keyspace commands refused as Redis refuses them, PING answered, a second MONITOR ignored", async () => {
    const replies: string[][] = [];
    for (const [port, keyCommand] of [
      [mmapd.port, ["VGET", KEYS[0], "0"]],
      [redis.port, ["GET", "k"]],
    ] as [number, string[]][]) {
      replies.push(
        await withClient(port, async (c) => {
          const out = [await c.text("MONITOR"), await c.text(...keyCommand)];
          // The PING is shown to the monitor itself, after its +PONG.
          c.write(Buffer.concat([resp("MONITOR"), resp("PING")]));
          out.push((await c.readUntil((b) => b.includes('"PING"'))).toString().replace(/\d+\.\d{6} \[0 127\.0\.0\.1:\d+\]/, "TIME"));
          out.push(await c.text("RESET"));
          return out;
        }),
      );
    }
    expect(replies[0]).toEqual(replies[1]);
    expect(replies[0]).toEqual(["+OK\r\n", "-ERR Replica can't interact with the keyspace\r\n", '+PONG\r\n+TIME "PING"\r\n', "+RESET\r\n"]);
  });
});

describe("CLIENT KILL", () => {
  test("errors are Redis's, byte for byte", async () => {
    for (const args of [
      ["CLIENT", "KILL"],
      ["CLIENT", "KILL", "1.2.3.4:5"],
      ["CLIENT", "KILL", "ID", "abc"],
      ["CLIENT", "KILL", "ID", "0"],
      ["CLIENT", "KILL", "ID", "99999"],
      ["CLIENT", "KILL", "ADDR", "1.2.3.4:5"],
      ["CLIENT", "KILL", "USER", "nobody"],
      ["CLIENT", "KILL", "SKIPME", "maybe"],
      ["CLIENT", "KILL", "ID", "1", "SKIPME"],
      ["CLIENT", "KILL", "FOO", "bar"],
      ["CLIENT", "KILL", "TYPE", "foo"],
      ["CLIENT", "KILL", "TYPE", "pubsub"],
    ]) {
      const [ours, theirs] = await bothReply(...args);
      expect(`${args.join(" ")} -> ${ours}`).toBe(`${args.join(" ")} -> ${theirs}`);
    }
  });

  test("by address (the old form), ID, ADDR, LADDR and USER; SKIPME", async () => {
    const victims = await Promise.all(Array.from({ length: 4 }, () => RespClient.connect(mmapd.port)));
    const killer = await RespClient.connect(mmapd.port);
    try {
      const ids = await Promise.all(victims.map(async (v) => Number(await v.command("CLIENT", "ID"))));
      const address = (c: RespClient) => `127.0.0.1:${c.socket.localPort}`;
      expect(await killer.text("CLIENT", "KILL", address(victims[0]))).toBe("+OK\r\n");
      expect(await victims[0].waitClosed()).toBe(true);
      expect(await killer.text("CLIENT", "KILL", "ID", String(ids[1]))).toBe(":1\r\n");
      expect(await victims[1].waitClosed()).toBe(true);
      expect(await killer.text("CLIENT", "KILL", "ADDR", address(victims[2]), "LADDR", `127.0.0.1:${mmapd.port}`)).toBe(":1\r\n");
      expect(await victims[2].waitClosed()).toBe(true);
      // The killer skips itself unless told otherwise.
      expect(await killer.text("CLIENT", "KILL", "ADDR", address(killer))).toBe(":0\r\n");
      expect(await killer.text("CLIENT", "KILL", "USER", "default")).toMatch(/^:[1-9]\d*\r\n$/);
      expect(await victims[3].waitClosed()).toBe(true);
      expect(await killer.text("CLIENT", "KILL", "ID", String(ids[3]))).toBe(":0\r\n");
      // SKIPME no: the reply comes, then the connection closes.
      expect(await killer.text("CLIENT", "KILL", "ADDR", address(killer), "SKIPME", "no")).toBe(":1\r\n");
      expect(await killer.waitClosed()).toBe(true);
    } finally {
      for (const c of [...victims, killer]) c.close();
    }
  });

  test("through redis-cli: CLIENT KILL ID of an ioredis connection, which then reconnects", async () => {
    const client = new Redis(mmapd.port, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      const id = String(await client.call("CLIENT", "ID"));
      const killed = spawnSync(["redis-cli", "-p", String(mmapd.port), "CLIENT", "KILL", "ID", id]);
      expect(killed.stdout.toString()).toBe("1\n");
      // ioredis notices the close and reconnects with a new id.
      const deadline = Date.now() + 5000;
      let next = id;
      while (next === id && Date.now() < deadline) next = String(await client.call("CLIENT", "ID").catch(() => id));
      expect(next).not.toBe(id);
    } finally {
      client.disconnect();
    }
  });
});

describe("CLIENT PAUSE, UNPAUSE, NO-EVICT, NO-TOUCH", () => {
  test("errors are Redis's, byte for byte; NO-EVICT is accepted as Redis accepts it", async () => {
    for (const args of [
      ["CLIENT", "PAUSE"],
      ["CLIENT", "PAUSE", "abc"],
      ["CLIENT", "PAUSE", "-1"],
      ["CLIENT", "PAUSE", "99999999999999999999"],
      ["CLIENT", "PAUSE", "10", "FOO"],
      ["CLIENT", "PAUSE", "1", "WRITE", "x"],
      ["CLIENT", "UNPAUSE", "x"],
      ["CLIENT", "NO-EVICT", "on"],
      ["CLIENT", "NO-EVICT", "OFF"],
      ["CLIENT", "NO-EVICT", "maybe"],
      ["CLIENT", "NO-EVICT"],
    ]) {
      const [ours, theirs] = await bothReply(...args);
      expect(`${args.join(" ")} -> ${ours}`).toBe(`${args.join(" ")} -> ${theirs}`);
    }
    await withClient(mmapd.port, async (c) => {
      // Redis 7.2's: accepted, and nothing is tracked here anyway.
      expect(await c.text("CLIENT", "NO-TOUCH", "on")).toBe("+OK\r\n");
      expect(await c.text("CLIENT", "NO-TOUCH", "maybe")).toBe("-ERR syntax error\r\n");
      expect(await c.text("CLIENT", "UNPAUSE")).toBe("+OK\r\n");
    });
  });

  test("ALL: every command waits, pipelined ones in order, until the pause ends", async () => {
    const admin = new Redis(mmapd.port, { lazyConnect: true });
    const other = await RespClient.connect(mmapd.port);
    try {
      await admin.connect();
      expect(await admin.call("CLIENT", "PAUSE", "400", "ALL")).toBe("OK");
      const started = performance.now();
      other.write(Buffer.concat([resp("PING"), resp("VGET", KEYS[0], "1"), resp("ECHO", "last")]));
      const replies = (await other.readReplies(3)).toString();
      const waited = performance.now() - started;
      expect(replies).toBe("+PONG\r\n$3\r\n2.5\r\n$4\r\nlast\r\n");
      expect(waited).toBeGreaterThan(300);
    } finally {
      admin.disconnect();
      other.close();
    }
  });

  test("WRITE: reads go on, writes wait; CLIENT UNPAUSE lets them run at once", async () => {
    const admin = await RespClient.connect(mmapd.port);
    const writer = await RespClient.connect(mmapd.port);
    try {
      expect(await admin.text("CLIENT", "PAUSE", "20000", "WRITE")).toBe("+OK\r\n");
      const started = performance.now();
      writer.write(resp("VSET", KEYS[1], "0", "9.5"));
      // A read from another client is answered meanwhile.
      expect(await admin.text("VGET", KEYS[1], "0")).toBe("$3\r\n1.5\r\n");
      await Bun.sleep(200);
      expect((await writer.readReplies(1, 10)).toString()).toBe("");
      expect(await admin.text("INFO", "clients")).toContain("blocked_clients:1\r\n");
      expect(await admin.text("CLIENT", "UNPAUSE")).toBe("+OK\r\n");
      expect((await writer.readReplies(1)).toString()).toBe(":1\r\n");
      expect(performance.now() - started).toBeLessThan(5000);
      expect(await admin.text("VGET", KEYS[1], "0")).toBe("$3\r\n9.5\r\n");
    } finally {
      admin.close();
      writer.close();
    }
  });

  test("the pausing client's own later commands wait too, as in Redis", async () => {
    const replies: number[] = [];
    for (const port of [mmapd.port, redis.port]) {
      await withClient(port, async (c) => {
        expect(await c.text("CLIENT", "PAUSE", "300")).toBe("+OK\r\n");
        const started = performance.now();
        expect(await c.text("PING")).toBe("+PONG\r\n");
        replies.push(performance.now() - started);
      });
    }
    for (const waited of replies) expect(waited).toBeGreaterThan(200);
  });
});
