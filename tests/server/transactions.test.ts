/**
 * MULTI / EXEC / DISCARD / WATCH / UNWATCH over TCP: Redis 7's replies byte for byte (compared
 * with a real redis-server running the same sequence with native commands), atomicity across
 * shards under load, WATCH retry loops, and the transaction APIs of real clients.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { RespClient } from "../../bench/resp_client.ts";
import { type RealRedis, startRealRedis } from "../helpers/redis.ts";
import { hasTool, shardOfKey, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let redis: RealRedis;
/** Two keys on different shards (the server runs 2 workers). */
const A = "txa";
const B = "txb";

beforeAll(async () => {
  hasTool("redis-server");
  server = await startServer({ args: ["--workers", "2"] });
  redis = await startRealRedis();
  const c = await RespClient.connect(server.port);
  for (const key of [A, B]) {
    await c.expect("MMAP", key, `${key}.f64`);
    await c.expect("VADD", key, "0", "0", "0", "0");
  }
  c.close();
});

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
  await redis?.stop();
});

test("the two keys live on different shards", () => {
  expect(shardOfKey(A, 2)).not.toBe(shardOfKey(B, 2));
});

/** Sends the commands in one write on a new connection; the raw reply bytes. */
async function exchange(port: number, commands: string[][]): Promise<string> {
  const c = await RespClient.connect(port);
  try {
    return (await c.replies(commands)).toString("latin1");
  } finally {
    c.close();
  }
}

/**
 * The same transaction script on both servers: mmapd with its commands, Redis with native
 * commands whose replies have the same shape (VSET -> SET's +OK differs, so the scripts use
 * commands whose replies are equal: control replies and errors are what is compared).
 */
const SCRIPTS: { name: string; setup?: { mmapd: string[]; redis: string[] }; mmapd: string[][]; redis: string[][] }[] = [
  {
    name: "transactions one after another on one connection each start empty (after EXEC, DISCARD and EXECABORT)",
    mmapd: [
      ["MULTI"],
      ["VCOUNT", A],
      ["EXEC"],
      ["MULTI"],
      ["VCOUNT", A],
      ["VCOUNT", A],
      ["DISCARD"],
      ["MULTI"],
      ["NOSUCH"],
      ["EXEC"],
      ["MULTI"],
      ["VCOUNT", A],
      ["EXEC"],
      ["MULTI"],
      ["EXEC"],
    ],
    redis: [
      ["MULTI"],
      ["STRLEN", "s"],
      ["EXEC"],
      ["MULTI"],
      ["STRLEN", "s"],
      ["STRLEN", "s"],
      ["DISCARD"],
      ["MULTI"],
      ["NOSUCH"],
      ["EXEC"],
      ["MULTI"],
      ["STRLEN", "s"],
      ["EXEC"],
      ["MULTI"],
      ["EXEC"],
    ],
  },
  {
    name: "nested MULTI is refused and the transaction goes on",
    mmapd: [["MULTI"], ["MULTI"], ["VCOUNT", A], ["EXEC"]],
    redis: [["MULTI"], ["MULTI"], ["STRLEN", "s"], ["EXEC"]],
  },
  {
    name: "an unknown command while queueing aborts EXEC",
    mmapd: [["MULTI"], ["NOSUCH", "x"], ["VCOUNT", A], ["EXEC"]],
    redis: [["MULTI"], ["NOSUCH", "x"], ["STRLEN", "s"], ["EXEC"]],
  },
  {
    name: "a wrong arity while queueing aborts EXEC",
    mmapd: [["MULTI"], ["ECHO"], ["EXEC"]],
    redis: [["MULTI"], ["ECHO"], ["EXEC"]],
  },
  {
    name: "a command not allowed in MULTI aborts EXEC",
    mmapd: [["MULTI"], ["SAVE"], ["EXEC"]],
    redis: [["MULTI"], ["SAVE"], ["EXEC"]],
  },
  { name: "EXEC without MULTI", mmapd: [["EXEC"]], redis: [["EXEC"]] },
  { name: "DISCARD without MULTI", mmapd: [["DISCARD"]], redis: [["DISCARD"]] },
  {
    name: "WATCH inside MULTI is refused without aborting",
    mmapd: [["MULTI"], ["WATCH", A], ["PING"], ["EXEC"]],
    redis: [["MULTI"], ["WATCH", "s"], ["PING"], ["EXEC"]],
  },
  { name: "an empty transaction", mmapd: [["MULTI"], ["EXEC"]], redis: [["MULTI"], ["EXEC"]] },
  {
    name: "DISCARD drops the queue",
    mmapd: [["MULTI"], ["VCOUNT", A], ["DISCARD"], ["EXEC"]],
    redis: [["MULTI"], ["STRLEN", "s"], ["DISCARD"], ["EXEC"]],
  },
  {
    name: "RESET inside MULTI ends it",
    mmapd: [["MULTI"], ["VCOUNT", A], ["RESET"], ["EXEC"]],
    redis: [["MULTI"], ["STRLEN", "s"], ["RESET"], ["EXEC"]],
  },
  {
    name: "run-time errors stay inside EXEC's array",
    mmapd: [["MULTI"], ["VGET", "nosuchkey", "0"], ["PING"], ["EXEC"]],
    redis: [["MULTI"], ["INCR", "wrongtype"], ["PING"], ["EXEC"]],
  },
  {
    name: "UNWATCH is queued and answers OK",
    mmapd: [["MULTI"], ["UNWATCH"], ["EXEC"]],
    redis: [["MULTI"], ["UNWATCH"], ["EXEC"]],
  },
  {
    name: "WATCH then a write by the same client aborts (RESP2 null array)",
    mmapd: [["WATCH", A], ["VSET", A, "1", "7"], ["MULTI"], ["PING"], ["EXEC"]],
    redis: [["WATCH", "s"], ["APPEND", "s", "x"], ["MULTI"], ["PING"], ["EXEC"]],
  },
  {
    name: "WATCH then DEL of the key aborts",
    setup: { mmapd: ["MMAP", "gone", "gone.f64"], redis: ["SET", "gone", "0"] },
    mmapd: [["WATCH", "gone"], ["DEL", "gone"], ["MULTI"], ["PING"], ["EXEC"], ["MULTI"], ["PING"], ["EXEC"]],
    redis: [["WATCH", "gone"], ["DEL", "gone"], ["MULTI"], ["PING"], ["EXEC"], ["MULTI"], ["PING"], ["EXEC"]],
  },
  {
    name: "DEL of a key that does not exist changes nothing and does not abort",
    mmapd: [["WATCH", "never"], ["DEL", "never"], ["MULTI"], ["PING"], ["EXEC"]],
    redis: [["WATCH", "never"], ["DEL", "never"], ["MULTI"], ["PING"], ["EXEC"]],
  },
  {
    name: "UNWATCH forgets the watched key",
    mmapd: [["WATCH", A], ["VSET", A, "1", "7"], ["UNWATCH"], ["MULTI"], ["PING"], ["EXEC"]],
    redis: [["WATCH", "s"], ["APPEND", "s", "x"], ["UNWATCH"], ["MULTI"], ["PING"], ["EXEC"]],
  },
];

/** Redis's reply to a run-time error differs in text from mmapd's: compare only its kind. */
const normalize = (s: string) =>
  s
    .replace(/-ERR value is not an integer or out of range|-ERR You must do MMAP first/g, "-<runtime error>")
    .replace(/:\d+\r\n/g, ":<n>\r\n");

describe.each([2, 3] as const)("RESP%d", (proto) => {
  for (const script of SCRIPTS) {
    test(`${script.name}: the same bytes as Redis`, async () => {
      const hello = [["HELLO", String(proto)]];
      if (script.redis.some((c) => c[0] === "INCR")) await exchange(redis.port, [["SET", "wrongtype", "x"]]);
      if (script.setup !== undefined) {
        await exchange(server.port, [script.setup.mmapd]);
        await exchange(redis.port, [script.setup.redis]);
      }
      const ours = await exchange(server.port, [...hello, ...script.mmapd]);
      const theirs = await exchange(redis.port, [...hello, ...script.redis]);
      const skipHello = (s: string) => s.slice(s.indexOf("\r\n*0\r\n") + 5); // HELLO's reply ends with its empty modules list
      expect(normalize(skipHello(ours))).toBe(normalize(skipHello(theirs)));
    });
  }

  test("a transaction over two shards: each command's reply in order", async () => {
    const replies = await exchange(server.port, [
      ["HELLO", String(proto)],
      ["MULTI"],
      ["VSET", A, "2", "1.5"],
      ["VSET", B, "2", "2.5"],
      ["VMGET", A, "2"],
      ["PING"],
      ["EXISTS", A, B, "nope"],
      ["VGET", B, "2"],
      ["EXEC"],
    ]);
    const double = (text: string) => (proto === 3 ? `,${text}\r\n` : `$${text.length}\r\n${text}\r\n`);
    expect(replies.slice(replies.indexOf("+OK\r\n"))).toBe(
      `+OK\r\n${"+QUEUED\r\n".repeat(6)}*6\r\n:1\r\n:1\r\n*1\r\n${double("1.5")}+PONG\r\n:2\r\n${double("2.5")}`,
    );
  });
});

test("pipelined transactions alternating between one shard and two keep their own commands", async () => {
  const one = [["MULTI"], ["VSET", A, "1", "7"], ["VGET", A, "1"], ["EXEC"]];
  // ECHO runs on the main thread from the queued arguments once the shards have answered.
  const two = [["MULTI"], ["VSET", A, "1", "8"], ["VSET", B, "1", "9"], ["ECHO", "two shards"], ["VGET", B, "1"], ["EXEC"]];
  const replies = await exchange(server.port, [...one, ...two, ...one, ...two, ...one]);
  const oneReply = `+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n$1\r\n7\r\n`;
  const twoReply = `+OK\r\n${"+QUEUED\r\n".repeat(4)}*4\r\n:1\r\n:1\r\n$10\r\ntwo shards\r\n$1\r\n9\r\n`;
  expect(replies).toBe(oneReply + twoReply + oneReply + twoReply + oneReply);
});

test("a write by another client after WATCH aborts EXEC; RESP3 null", async () => {
  const watcher = await RespClient.connect(server.port);
  const other = await RespClient.connect(server.port);
  try {
    await watcher.text("HELLO", "3");
    expect(await watcher.text("WATCH", A, B)).toBe("+OK\r\n");
    expect(await other.text("VSET", B, "3", "9")).toBe(":1\r\n");
    expect((await watcher.replies([["MULTI"], ["VSET", A, "3", "9"], ["EXEC"]])).toString()).toBe("+OK\r\n+QUEUED\r\n_\r\n");
    // The aborted transaction ran nothing; WATCH is gone after EXEC, so the next one runs.
    expect(await other.text("VGET", A, "3")).toBe("$1\r\n0\r\n");
    expect((await watcher.replies([["MULTI"], ["VSET", A, "3", "9"], ["EXEC"]])).toString()).toBe("+OK\r\n+QUEUED\r\n*1\r\n:1\r\n");
    // A failed write (an error reply) changes nothing, so it does not abort.
    await watcher.text("WATCH", A);
    expect((await other.text("VSET", A, "99", "1")).startsWith("-ERR")).toBe(true);
    expect((await watcher.replies([["MULTI"], ["VCOUNT", A], ["EXEC"]])).toString()).toBe("+OK\r\n+QUEUED\r\n*1\r\n:4\r\n");
  } finally {
    watcher.close();
    other.close();
  }
});

test("a connection closed in the middle of MULTI runs nothing and forgets its WATCH", async () => {
  const c = await RespClient.connect(server.port);
  await c.replies([["WATCH", A], ["MULTI"], ["VSET", A, "0", "123"]]);
  c.close();
  await Bun.sleep(50);
  const check = await RespClient.connect(server.port);
  expect(await check.text("VGET", A, "0")).not.toBe("$3\r\n123\r\n");
  check.close();
});

test("MMAP inside MULTI binds, and later commands of the transaction see it", async () => {
  const replies = await exchange(server.port, [
    ["MULTI"],
    ["MMAP", "txnew", "txnew.i32", "int32", "WRITABLE"],
    ["VADD", "txnew", "1", "2"],
    ["VCOUNT", "txnew"],
    ["EXEC"],
  ]);
  expect(replies).toBe("+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:0\r\n:2\r\n:2\r\n");
  const refused = await exchange(server.port, [["MULTI"], ["MMAP", "txout", "/etc/passwd"], ["VCOUNT", A], ["EXEC"]]);
  expect(refused).toBe("+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR path is outside the data directory\r\n:4\r\n");
});

/** Runs `n` copies of `work` at once and waits for all. */
async function inParallel(n: number, work: (k: number) => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, k) => work(k)));
}

test("atomic across shards: 100,000 transactions, readers never see one shard without the other", async () => {
  const SLOTS = 4;
  const WRITERS = 16;
  const READERS = 16;
  const ROUNDS = 100; // pipelined transactions per batch
  const BATCHES = Math.ceil(100_000 / (WRITERS * ROUNDS));
  let torn = 0;
  let readTransactions = 0;
  let writing = true;
  const writers = inParallel(WRITERS, async (k) => {
    const c = await RespClient.connect(server.port);
    for (let batch = 0; batch < BATCHES; batch++) {
      const commands: string[][] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const value = String(k * 1_000_000 + batch * ROUNDS + r);
        const index = String(r % SLOTS);
        commands.push(["MULTI"], ["VSET", A, index, value], ["VSET", B, index, value], ["EXEC"]);
      }
      const bytes = (await c.replies(commands)).toString();
      expect(bytes.includes("-")).toBe(false);
    }
    c.close();
  });
  const readers = inParallel(READERS, async (k) => {
    const c = await RespClient.connect(server.port);
    while (writing) {
      const commands: string[][] = [];
      for (let r = 0; r < 50; r++)
        commands.push(["MULTI"], ["VGET", A, String((k + r) % SLOTS)], ["VGET", B, String((k + r) % SLOTS)], ["EXEC"]);
      const bytes = (await c.replies(commands)).toString();
      for (const m of bytes.matchAll(/\*2\r\n\$\d+\r\n([^\r]*)\r\n\$\d+\r\n([^\r]*)\r\n/g)) {
        readTransactions++;
        if (m[1] !== m[2]) torn++;
      }
    }
    c.close();
  });
  await writers;
  writing = false;
  await readers;
  console.log(`atomicity: ${WRITERS * BATCHES * ROUNDS} writer transactions, ${readTransactions} reader transactions, ${torn} torn reads`);
  expect(readTransactions).toBeGreaterThan(1000);
  expect(torn).toBe(0);
}, 120_000);

test("atomic appends across shards: VADD to both keys, counts read in a transaction stay equal", async () => {
  const setup = await RespClient.connect(server.port);
  for (const key of ["txca", "txcb"]) await setup.expect("MMAP", key, `${key}.i64`, "int64", "WRITABLE");
  setup.close();
  expect(shardOfKey("txca", 2)).not.toBe(shardOfKey("txcb", 2));
  let unequal = 0;
  let reads = 0;
  let writing = true;
  const writers = inParallel(8, async () => {
    const c = await RespClient.connect(server.port);
    for (let batch = 0; batch < 20; batch++) {
      const commands: string[][] = [];
      for (let r = 0; r < 50; r++) commands.push(["MULTI"], ["VADD", "txca", "1"], ["VADD", "txcb", "1"], ["EXEC"]);
      await c.replies(commands);
    }
    c.close();
  });
  const readers = inParallel(8, async () => {
    const c = await RespClient.connect(server.port);
    while (writing) {
      const bytes = (await c.replies([["MULTI"], ["VCOUNT", "txca"], ["VCOUNT", "txcb"], ["EXEC"]])).toString();
      const m = /\*2\r\n:(\d+)\r\n:(\d+)\r\n/.exec(bytes);
      if (m !== null) {
        reads++;
        if (m[1] !== m[2]) unequal++;
      }
    }
    c.close();
  });
  await writers;
  writing = false;
  await readers;
  const check = await RespClient.connect(server.port);
  expect(await check.text("VCOUNT", "txca")).toBe(":8000\r\n");
  expect(await check.text("VCOUNT", "txcb")).toBe(":8000\r\n");
  check.close();
  console.log(`atomic appends: 8,000 transactions, ${reads} reads of both counts, ${unequal} unequal`);
  expect(reads).toBeGreaterThan(0);
  expect(unequal).toBe(0);
}, 120_000);

test("WATCH retry loop: 20 clients x 1,000 increments end at exactly 20,000", async () => {
  const setup = await RespClient.connect(server.port);
  await setup.expect("MMAP", "txcounter", "txcounter.i64", "int64", "WRITABLE");
  await setup.expect("VADD", "txcounter", "0");
  setup.close();
  let retries = 0;
  await inParallel(20, async () => {
    const c = await RespClient.connect(server.port);
    for (let done = 0; done < 1000; ) {
      await c.text("WATCH", "txcounter");
      const value = Number((await c.text("VGET", "txcounter", "0")).slice(1, -2));
      const reply = (await c.replies([["MULTI"], ["VSET", "txcounter", "0", String(value + 1)], ["EXEC"]])).toString();
      if (reply.endsWith("*-1\r\n")) retries++;
      else done++;
    }
    c.close();
  });
  const check = await RespClient.connect(server.port);
  expect(await check.text("VGET", "txcounter", "0")).toBe(":20000\r\n");
  check.close();
  console.log(`WATCH loop: 20,000 increments, ${retries} retries`);
}, 180_000);

describe("real clients' transaction APIs, over keys on both shards", () => {
  test("ioredis multi()/exec()", async () => {
    const { default: Redis } = await import("ioredis");
    const r = new Redis({ port: server.port, lazyConnect: true });
    await r.connect();
    try {
      const result = await r.multi().call("VSET", A, "0", "11").call("VSET", B, "0", "12").call("VGET", A, "0").call("VGET", B, "0").exec();
      expect(result).toEqual([
        [null, 1],
        [null, 1],
        [null, "11"],
        [null, "12"],
      ]);
    } finally {
      r.disconnect();
    }
  });

  test("node-redis multi() in RESP3", async () => {
    const { createClient } = await import("redis");
    const r = createClient({ socket: { port: server.port }, RESP: 3 });
    await r.connect();
    try {
      const result = await r
        .multi()
        .addCommand(["VSET", A, "0", "21"])
        .addCommand(["VSET", B, "0", "22"])
        .addCommand(["VMGET", A, "0"])
        .addCommand(["VGET", B, "0"])
        .exec();
      expect(result as unknown).toEqual([1, 1, [21], 22]);
    } finally {
      await r.quit();
    }
  });

  test("Bun's RedisClient sends MULTI/EXEC", async () => {
    const { RedisClient } = await import("bun");
    const r = new RedisClient(`redis://127.0.0.1:${server.port}`);
    try {
      expect(await r.send("MULTI", [])).toBe("OK");
      expect(await r.send("VSET", [A, "0", "31"])).toBe("QUEUED");
      expect(await r.send("VGET", [B, "0"])).toBe("QUEUED");
      expect(await r.send("EXEC", [])).toEqual([1, 22]);
    } finally {
      r.close();
    }
  });

  test("redis-py's default pipeline (MULTI/EXEC) and WATCH", () => {
    const script = `
import redis, sys
r = redis.Redis(port=${server.port})
p = r.pipeline()
p.execute_command("VSET", "${A}", 0, 41)
p.execute_command("VSET", "${B}", 0, 42)
p.execute_command("VGET", "${A}", 0)
p.execute_command("VGET", "${B}", 0)
print(p.execute())
def incr(pipe):
    v = int(pipe.execute_command("VGET", "${A}", 1))
    pipe.multi()
    pipe.execute_command("VSET", "${A}", 1, v + 1)
r.transaction(incr, "${A}")
print(r.execute_command("VGET", "${A}", 1))
r.close()
`;
    const py = spawnSync(["/usr/bin/python3", "-c", script]);
    if (py.exitCode !== 0 && /No module named 'redis'/.test(py.stderr.toString()) && process.env.MMAPD_REQUIRE_TOOLS !== "1") {
      console.log("skipped: /usr/bin/python3 has no redis module (apt-get install python3-redis)");
      return;
    }
    expect(py.stderr.toString()).toBe("");
    const lines = py.stdout.toString().trim().split("\n");
    expect(lines[0]).toBe("[1, 1, b'41', b'42']");
    expect(Number(lines[1].replace(/[^0-9]/g, ""))).toBeGreaterThan(0);
  });

  test("redis-cli: MULTI, commands and EXEC typed one per line", () => {
    hasTool("redis-cli");
    const r = spawnSync(["redis-cli", "-p", String(server.port)], { stdin: Buffer.from(`MULTI\nVSET ${A} 0 51\nVGET ${B} 0\nEXEC\n`) });
    expect(r.stdout.toString()).toBe("OK\nQUEUED\nQUEUED\n1\n42\n");
  });
});

describe("a shard worker that dies during transactions", () => {
  test("EXEC answers an error for the commands that did not run, and nothing hangs", async () => {
    const crashing = await startServer({ args: ["--workers", "2", "--enable-debug-command", "yes", "--fsync", "always"] });
    try {
      const c = await RespClient.connect(crashing.port);
      for (const key of [A, B]) await c.expect("MMAP", key, `${key}.f64`);
      await c.expect("VADD", A, "0");
      await c.expect("VADD", B, "0");
      // Batches of transactions in flight while the worker of A's shard is made to crash.
      let text = "";
      const d = await RespClient.connect(crashing.port);
      for (let batch = 0; batch < 20; batch++) {
        const transactions: string[][] = [];
        for (let k = 0; k < 50; k++) transactions.push(["MULTI"], ["VSET", A, "0", String(k)], ["VSET", B, "0", String(k)], ["EXEC"]);
        const sent = c.replies(batch === 19 ? [...transactions, ["PING"]] : transactions, 60_000);
        if (batch === 2) d.write("*3\r\n$5\r\nDEBUG\r\n$11\r\nCRASH-SHARD\r\n$1\r\n" + shardOfKey(A, 2) + "\r\n");
        text += (await sent).toString();
      }
      d.close();
      const execs = [...text.matchAll(/\*2\r\n(:1|-[^\r]*)\r\n(:1|-[^\r]*)\r\n/g)];
      expect(execs.length).toBe(1000);
      console.log(`transactions cut short by the crash: ${execs.filter((m) => m[1] !== ":1" || m[2] !== ":1").length} of 1000`);
      for (const [, first, second] of execs) {
        expect(first === ":1" || /shard|cut short/.test(first)).toBe(true);
        expect(second === ":1" || /shard|cut short/.test(second)).toBe(true);
      }
      expect(text.endsWith("+PONG\r\n")).toBe(true);
      // The restarted shard serves transactions again.
      expect((await c.replies([["MULTI"], ["VSET", A, "0", "5"], ["VSET", B, "0", "5"], ["EXEC"]])).toString()).toBe(
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:1\r\n",
      );
      c.close();
    } finally {
      await crashing.stop();
      crashing.cleanup();
    }
  }, 60_000);
});

test("commands run by EXEC count in INFO commandstats and errorstats, as they would alone", async () => {
  const c = await RespClient.connect(server.port);
  try {
    await c.text("CONFIG", "RESETSTAT");
    await c.replies([["MULTI"], ["VGET", A, "0"], ["VGET", B, "99999"], ["PING"], ["EXEC"]]);
    const stats = (await c.text("INFO", "commandstats")) + (await c.text("INFO", "errorstats"));
    expect(stats).toMatch(/cmdstat_vget:calls=2,usec=\d+,usec_per_call=[\d.]+,rejected_calls=0,failed_calls=1/);
    expect(stats).toMatch(/cmdstat_ping:calls=1,/);
    expect(stats).toMatch(/cmdstat_exec:calls=1,/);
    expect(stats).toContain("errorstat_ERR:count=1");
  } finally {
    c.close();
  }
});
