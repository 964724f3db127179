/**
 * COMMAND, COMMAND INFO / DOCS / GETKEYS / LIST / COUNT over TCP: what redis-cli (argument
 * hints), redis-py (key positions) and cluster clients read, checked against the command table
 * and against a real redis-server where both servers have the same command. Then what
 * redis-cli --bigkeys and --memkeys read (redis-cli 7.0 SCANs, asks TYPE, then LLEN for a list or
 * MEMORY USAGE; for a type it does not know it prints "0 ?"): their output for mmapd's keys, and
 * MEMORY's errors next to redis-server's.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { decodeReply, ErrorReply, type Reply, RespClient } from "../../bench/resp_client.ts";
import { keyPositions } from "../../core/command_spec.ts";
import { BINDING_OVERHEAD_BYTES } from "../../core/commands/memory.ts";
import { Args } from "../../core/args.ts";
import { COMMANDS } from "../../server/command_table.ts";
import { type RealRedis, startRealRedis } from "../helpers/redis.ts";
import { hasTool, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let redis: RealRedis;
let c: RespClient;
let r: RespClient;

beforeAll(async () => {
  hasTool("redis-server");
  // Two shards: MEMORY USAGE finds each key on its own.
  server = await startServer({ args: ["--workers", "2"] });
  redis = await startRealRedis();
  c = await RespClient.connect(server.port);
  r = await RespClient.connect(redis.port);
});

afterAll(async () => {
  c?.close();
  r?.close();
  await server?.stop();
  server?.cleanup();
  await redis?.stop();
});

/** A RESP2 flat map (array of name, value, ...) as an object. */
function asMap(reply: Reply): Record<string, Reply> {
  const list = reply as Reply[];
  const out: Record<string, Reply> = {};
  for (let i = 0; i < list.length; i += 2) out[String(list[i])] = list[i + 1];
  return out;
}

/** COMMAND DOCS arguments without the fields only Redis's own docs have (since, display_text...). */
function argumentShape(args: Reply): unknown[] {
  return (args as Reply[]).map((a) => {
    const m = asMap(a);
    const shape: Record<string, unknown> = { name: m.name, type: m.type };
    if (m.token !== undefined) shape.token = m.token;
    if (m.flags !== undefined) shape.flags = m.flags;
    if (m.arguments !== undefined) shape.arguments = argumentShape(m.arguments);
    return shape;
  });
}

test("COMMAND COUNT, COMMAND LIST and COMMAND all list exactly the command table", async () => {
  const names = COMMANDS.map((x) => x.name).sort();
  expect(await c.command("COMMAND", "COUNT")).toBe(names.length);
  expect(((await c.command("COMMAND", "LIST")) as string[]).sort()).toEqual(names);
  const all = (await c.command("COMMAND")) as Reply[][];
  expect(all.map((e) => String(e[0])).sort()).toEqual(names);
  expect(await c.command("COMMAND", "LIST", "FILTERBY", "PATTERN", "v*get")).toEqual(["vget", "vmget"]);
});

test("COMMAND DOCS of every command: summary, since, group, and its syntax as arguments", async () => {
  const docs = asMap(await c.command("COMMAND", "DOCS"));
  expect(Object.keys(docs).sort()).toEqual(COMMANDS.map((x) => x.name).sort());
  for (const command of COMMANDS) {
    const d = asMap(docs[command.name]);
    expect(d.summary).toBe(command.summary);
    expect(d.since).toBe(command.since);
    expect(d.group).toBe(command.group);
    if (command.syntax !== "") expect(Array.isArray(d.arguments)).toBe(true);
  }
  expect(argumentShape(asMap(docs.vmget).arguments)).toEqual([
    { name: "key", type: "key" },
    { name: "raw", type: "pure-token", token: "RAW", flags: ["optional"] },
    { name: "index", type: "integer", flags: ["multiple"] },
  ]);
  expect(argumentShape(asMap(docs.vset).arguments)).toEqual([
    { name: "key", type: "key" },
    {
      name: "data",
      type: "block",
      flags: ["multiple"],
      arguments: [
        { name: "index", type: "integer" },
        { name: "value", type: "string" },
      ],
    },
  ]);
  expect(argumentShape(asMap(docs.mmap).arguments)[2]).toMatchObject({ name: "type", type: "block", flags: ["optional"] });
});

test("COMMAND DOCS of commands Redis also has: the same arguments as redis-server's", async () => {
  for (const name of ["scan", "del", "exists", "keys", "echo", "ping", "watch"]) {
    const ours = asMap(asMap(await c.command("COMMAND", "DOCS", name))[name]);
    const theirs = asMap(asMap(await r.command("COMMAND", "DOCS", name))[name]);
    expect({ name, args: argumentShape(ours.arguments) }).toEqual({ name, args: argumentShape(theirs.arguments) });
  }
});

test("COMMAND INFO of commands Redis also has: the same arity, key positions and key-spec flags as redis-server's", async () => {
  for (const name of ["del", "exists", "type", "keys", "scan", "ping", "watch", "multi", "exec"]) {
    const [ours] = (await c.command("COMMAND", "INFO", name)) as Reply[][];
    const [theirs] = (await r.command("COMMAND", "INFO", name)) as Reply[][];
    expect({ name, fields: [ours[1], ours[3], ours[4], ours[5]] }).toEqual({ name, fields: [theirs[1], theirs[3], theirs[4], theirs[5]] });
    const specFlags = (info: Reply[]) => ((info[8] as Reply[]).length === 0 ? [] : asMap((info[8] as Reply[])[0]).flags);
    expect({ name, flags: specFlags(ours) }).toEqual({ name, flags: specFlags(theirs) });
  }
});

test("COMMAND GETKEYS answers for every command with keys, at the table's positions", async () => {
  for (const command of COMMANDS) {
    if (command.keys === null) continue;
    const count = command.arity > 0 ? command.arity : Math.max(-command.arity, command.keys.first + 1);
    const args = [command.name, "k1", "k2", "k3", "k4"].slice(0, count);
    const positions = keyPositions(command, Args.of(...args));
    const expected = positions.length > 0 ? positions.map((i) => args[i]) : new ErrorReply("ERR The command has no key arguments");
    expect({ name: command.name, keys: await c.command("COMMAND", "GETKEYS", ...args) }).toEqual({ name: command.name, keys: expected });
  }
  const flags = await c.command("COMMAND", "GETKEYSANDFLAGS", "vset", "k", "0", "1");
  expect(flags).toEqual([["k", ["RW", "update"]]]);
});

test("COMMAND GETKEYS errors: the texts redis-server sends", async () => {
  for (const args of [["nosuch", "a"], ["del"], ["ping"], ["echo", "x"]]) {
    const ours = (await c.text("COMMAND", "GETKEYS", ...args)).replace(/'[a-z]+'/, "'_'");
    const theirs = (await r.text("COMMAND", "GETKEYS", ...args)).replace(/'[a-z]+'/, "'_'");
    expect({ args, reply: ours }).toEqual({ args, reply: theirs });
  }
  expect(await c.text("COMMAND", "NOSUCH")).toBe("-ERR unknown subcommand 'NOSUCH'. Try COMMAND HELP.\r\n");
  expect(await r.text("COMMAND", "NOSUCH")).toBe("-ERR unknown subcommand 'NOSUCH'. Try COMMAND HELP.\r\n");
});

test("COMMAND INFO in RESP3: flags and ACL categories are sets, key specs maps", async () => {
  const c3 = await RespClient.connect(server.port);
  await c3.text("HELLO", "3");
  const bytes = await c3.text("COMMAND", "INFO", "vget");
  c3.close();
  expect(
    bytes.startsWith(
      "*1\r\n*10\r\n$4\r\nvget\r\n:3\r\n~2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n~2\r\n+@read\r\n+@fast\r\n*0\r\n*1\r\n%3\r\n",
    ),
  ).toBe(true);
  expect(decodeReply(Buffer.from(bytes, "latin1"))).not.toBeNull();
});

test("redis-py reads key positions of mmapd's commands from COMMAND", () => {
  const script = `
import redis
r = redis.Redis(port=${server.port})
c = r.command()
for name in ("vget", "vset", "mmap", "del", "vmget"):
    e = c[name]
    print(name, e["arity"], e["first_key_pos"], e["last_key_pos"], e["step_count"], ",".join(e["flags"]))
r.close()
`;
  const py = spawnSync(["/usr/bin/python3", "-c", script]);
  if (py.exitCode !== 0 && /No module named 'redis'/.test(py.stderr.toString()) && process.env.MMAPD_REQUIRE_TOOLS !== "1") {
    console.log("skipped: /usr/bin/python3 has no redis module (apt-get install python3-redis)");
    return;
  }
  expect(py.stderr.toString()).toBe("");
  expect(py.stdout.toString()).toBe(
    "vget 3 1 1 1 readonly,fast\nvset -4 1 1 1 write\nmmap -3 1 1 1 write\ndel -2 1 -1 1 write\nvmget -3 1 1 1 readonly\n",
  );
});

describe("MEMORY USAGE", () => {
  test("MEMORY's errors, byte for byte against redis-server", async () => {
    expect(await c.text("MMAP", "k", "k.f64")).toBe(":0\r\n");
    expect(await r.text("RPUSH", "k", "a")).toBe(":1\r\n");
    for (const args of [
      ["MEMORY"],
      ["MEMORY", "USAGE"],
      ["MEMORY", "USAGE", "k", "SAMPLES"],
      ["MEMORY", "USAGE", "k", "SAMPLES", "x"],
      ["MEMORY", "USAGE", "k", "SAMPLES", "-1"],
      ["MEMORY", "USAGE", "k", "FOO", "1"],
      ["MEMORY", "USAGE", "nokey"],
      ["MEMORY", "HELP", "x"],
      ["MEMORY", "FOO"],
      ["memory", "nosuch", "a"],
    ]) {
      expect([args.join(" "), await c.text(...args)]).toEqual([args.join(" "), await r.text(...args)]);
    }
    expect(await c.text("MEMORY", "USAGE", "k")).toBe(`:${1 + BINDING_OVERHEAD_BYTES}\r\n`);
    expect(await c.text("MEMORY", "USAGE", "k", "SAMPLES", "x")).toBe("-ERR value is not an integer or out of range\r\n");
  });

  test("COMMAND GETKEYS finds its key; the key decides the shard", async () => {
    expect(await c.command("COMMAND", "GETKEYS", "MEMORY", "USAGE", "somekey")).toEqual(["somekey"]);
    // Keys on both shards: each is found on its own shard.
    for (let i = 1; i <= 8; i++) {
      expect(await c.command("MMAP", `m${i}`, `m${i}.u8`, "uint8", "WRITABLE")).toBe(0);
      expect(await c.command("VADD", `m${i}`, ...Array.from({ length: i }, () => "1"))).toBe(i);
      expect(await c.command("MEMORY", "USAGE", `m${i}`)).toBe(i + 2 + BINDING_OVERHEAD_BYTES);
    }
  });
});

describe("redis-cli --bigkeys and --memkeys", () => {
  const haveCli = hasTool("redis-cli");

  beforeAll(async () => {
    // Three keys, and no others: 100 doubles, 10 int32 values, 5 strings of 16 bytes.
    expect(await c.command("FLUSHALL")).toBe("OK");
    expect(await c.command("MMAP", "big", "big.f64")).toBe(0);
    expect(await c.command("VADD", "big", ...Array.from({ length: 100 }, (_, i) => String(i)))).toBe(100);
    expect(await c.command("MMAP", "mid", "mid.i32", "int32", "WRITABLE")).toBe(0);
    expect(await c.command("VADD", "mid", ...Array.from({ length: 10 }, (_, i) => String(i)))).toBe(10);
    expect(await c.command("MMAP", "names", "names.bin", "string", "16", "WRITABLE")).toBe(0);
    expect(await c.command("VADD", "names", "a", "b", "c", "d", "e")).toBe(5);
  });

  const cli = (flag: string) => {
    const run = spawnSync(["redis-cli", "-p", String(server.port), flag]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr.toString()).toBe("");
    return run.stdout.toString();
  };

  test.skipIf(!haveCli)("--bigkeys: the number of values of each key (it printed '0 ?')", () => {
    const out = cli("--bigkeys");
    expect(out).toContain("Sampled 3 keys in the keyspace!");
    expect(out).toContain(`Biggest   list found '"big"' has 100 items`);
    expect(out).toContain("3 lists with 115 items (100.00% of keys, avg size 38.33)");
    expect(out).not.toContain("?");
  });

  test.skipIf(!haveCli)("--memkeys: the bytes of each key's file and binding", () => {
    const out = cli("--memkeys");
    const bytes = (values: number, key: string) => values + key.length + BINDING_OVERHEAD_BYTES;
    const total = bytes(800, "big") + bytes(40, "mid") + bytes(80, "names");
    expect(out).toContain(`Biggest   list found '"big"' has ${bytes(800, "big")} bytes`);
    expect(out).toContain(`3 lists with ${total} bytes (100.00% of keys, avg size ${(total / 3).toFixed(2)})`);
    expect(out).not.toContain("Warning");
  });
});
