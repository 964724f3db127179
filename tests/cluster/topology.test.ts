/**
 * A node's topology over the wire: CLUSTERDOWN before it has one, CLUSTERX's argument rules and
 * replies (Kvrocks's), versions (a stale SETNODES refused, SETSLOT exactly one newer), the
 * topology kept across a crash with the node's bindings, `--cluster-config`, keyed commands
 * redirected (MOVED, CROSSSLOT, `{tag}` keys together), and the CLUSTER texts compared with a
 * real redis-server (standalone and in cluster mode).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { ErrorReply, RespClient } from "../../bench/resp_client.ts";
import { randomNodeId } from "../../server/cluster/topology.ts";
import { CLUSTER_NODE_ARGS, setnodesText } from "../helpers/cluster.ts";
import { type RealRedis, startRealRedis } from "../helpers/redis.ts";
import { freePort, hasTool, startServer, tempDir, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const haveRedis = hasTool("redis-server");

/** Sends a command on a fresh connection; its reply (an error reply as its message text). */
async function send(port: number, ...args: string[]): Promise<unknown> {
  const c = await RespClient.connect(port);
  try {
    const reply = await c.command(...args);
    return reply instanceof ErrorReply ? reply.message : reply;
  } finally {
    c.close();
  }
}

const ME = randomNodeId();
const OTHER = randomNodeId();

describe("one node and its topology", () => {
  let node: TestServer;
  let text: string;
  beforeAll(async () => {
    node = await startServer({ args: CLUSTER_NODE_ARGS });
    // Slots 0-8191 here, 8192-16383 on a node that is never started (only MOVED points to it).
    text = setnodesText([
      { id: ME, port: node.port, slots: [0, 8191] },
      { id: OTHER, port: 1, slots: [8192, 16383] },
    ]);
  });
  afterAll(async () => {
    await node.stop();
    node.cleanup();
  });

  test("without a topology: CLUSTERDOWN for keyed commands and CLUSTER reports; the rest works", async () => {
    expect(await send(node.port, "VGET", "foo", "0")).toBe("CLUSTERDOWN The cluster is not initialized");
    expect(await send(node.port, "MMAP", "foo", "foo.f64")).toBe("CLUSTERDOWN The cluster is not initialized");
    for (const sub of ["INFO", "SLOTS", "NODES", "SHARDS", "MYID"])
      expect(await send(node.port, "CLUSTER", sub)).toBe("CLUSTERDOWN The cluster is not initialized");
    expect(await send(node.port, "CLUSTERX", "VERSION")).toBe("-1");
    expect(await send(node.port, "CLUSTERX", "MYID")).toBe("");
    expect(await send(node.port, "CLUSTER", "KEYSLOT", "foo")).toBe(12182);
    expect(await send(node.port, "PING")).toBe("PONG");
    expect(await send(node.port, "DBSIZE")).toBe(0);
    const info = String(await send(node.port, "INFO"));
    expect(info).toContain("# Cluster\r\ncluster_enabled:1\r\n");
    expect(info).toContain("redis_mode:cluster");
  });

  test("CLUSTERX's argument rules, with Kvrocks's replies", async () => {
    const p = node.port;
    expect(await send(p, "CLUSTERX")).toBe("ERR wrong number of arguments for 'clusterx' command");
    const usage = "ERR CLUSTERX command, CLUSTERX VERSION|MYID|SETNODEID|SETNODES|SETSLOT|MIGRATE";
    expect(await send(p, "CLUSTERX", "FOO")).toBe(usage);
    expect(await send(p, "CLUSTERX", "VERSION", "1")).toBe(usage);
    expect(await send(p, "CLUSTERX", "SETNODEID", "abc")).toBe(usage);
    expect(await send(p, "CLUSTERX", "SETNODES", text)).toBe(usage);
    expect(await send(p, "CLUSTERX", "SETNODES", text, "x")).toBe("ERR Invalid version");
    expect(await send(p, "CLUSTERX", "SETNODES", text, "1", "NOW")).toBe("ERR Invalid setnodes options");
    expect(await send(p, "CLUSTERX", "SETNODES", "junk", "1")).toBe("ERR Invalid cluster nodes info");
    expect(await send(p, "CLUSTERX", "SETSLOT", "1", "NODE", ME)).toBe(usage);
    expect(await send(p, "CLUSTERX", "SETSLOT", "1", "TO", ME, "1")).toBe("ERR Invalid setslot options");
    expect(await send(p, "CLUSTERX", "SETSLOT", "1", "NODE", "abc", "1")).toBe("ERR Invalid node id");
    expect(await send(p, "CLUSTERX", "SETSLOT", "1", "NODE", ME, "x")).toBe("ERR value is not an integer or out of range");
    expect(await send(p, "CLUSTERX", "SETSLOT", "1", "NODE", ME, "-1")).toBe("ERR Invalid version");
    expect(await send(p, "CLUSTERX", "SETSLOT", "99999", "NODE", ME, "1")).toBe("ERR Invalid slot id: out of numeric range");
    // No topology yet: a SETSLOT has nothing to change.
    expect(await send(p, "CLUSTERX", "SETSLOT", "1", "NODE", ME, "0")).toBe("ERR Invalid cluster version");
  });

  test("SETNODEID, then SETNODES: the node serves its slots and redirects the others", async () => {
    expect(await send(node.port, "CLUSTERX", "SETNODEID", ME)).toBe("OK");
    expect(await send(node.port, "CLUSTERX", "MYID")).toBe(ME);
    expect(await send(node.port, "CLUSTERX", "SETNODES", text, "1")).toBe("OK");
    expect(await send(node.port, "CLUSTERX", "VERSION")).toBe("1");
    expect(await send(node.port, "CLUSTER", "MYID")).toBe(ME);
    expect(await send(node.port, "VGET", "foo", "0")).toBe("MOVED 12182 127.0.0.1:1");
    expect(await send(node.port, "MMAP", "{user1000}.following", "following.u32", "uint32", "WRITABLE")).toBe(0);
    expect(await send(node.port, "VADD", "{user1000}.following", "7", "8", "9")).toBe(3);
    expect(await send(node.port, "MMAP", "{user1000}.followers", "followers.u32", "uint32", "WRITABLE")).toBe(0);
    const info = String(await send(node.port, "CLUSTER", "INFO"));
    expect(info).toBe(
      "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\n" +
        "cluster_known_nodes:2\r\ncluster_size:2\r\ncluster_current_epoch:1\r\ncluster_my_epoch:1\r\n",
    );
  });

  test("a stale or conflicting SETNODES is refused; the same one again is accepted; FORCE takes any version", async () => {
    const p = node.port;
    const moved = setnodesText([
      { id: ME, port: node.port, slots: [0, 100] },
      { id: OTHER, port: 1, slots: [101, 16383] },
    ]);
    expect(await send(p, "CLUSTERX", "SETNODES", moved, "0")).toBe("ERR Invalid cluster version");
    expect(await send(p, "CLUSTERX", "SETNODES", moved, "1")).toBe("ERR Invalid cluster version");
    expect(await send(p, "CLUSTERX", "SETNODES", text, "1")).toBe("OK");
    expect(await send(p, "CLUSTERX", "SETNODES", moved, "-1", "FORCE")).toBe("ERR Invalid cluster version");
    expect(await send(p, "CLUSTERX", "VERSION")).toBe("1");
    expect(await send(p, "VGET", "{user1000}.following", "0")).toBe(7);
    expect(await send(p, "CLUSTERX", "SETNODES", text, "0", "FORCE")).toBe("OK");
    expect(await send(p, "CLUSTERX", "VERSION")).toBe("0");
    expect(await send(p, "CLUSTERX", "SETNODES", text, "2")).toBe("OK");
  });

  test("SETSLOT: exactly the current version plus one; the slot then belongs to the node named", async () => {
    const p = node.port;
    // {user1000} is slot 3443.
    expect(await send(p, "CLUSTERX", "SETSLOT", "3443", "NODE", OTHER, "2")).toBe("ERR Invalid cluster version");
    expect(await send(p, "CLUSTERX", "SETSLOT", "3443", "NODE", OTHER, "4")).toBe("ERR Invalid cluster version");
    expect(await send(p, "CLUSTERX", "SETSLOT", "3443", "NODE", randomNodeId(), "3")).toBe("ERR No this node in the cluster");
    expect(await send(p, "CLUSTERX", "SETSLOT", "3443 3444-3450", "NODE", OTHER, "3")).toBe("OK");
    expect(await send(p, "VGET", "{user1000}.following", "0")).toBe("MOVED 3443 127.0.0.1:1");
    expect(await send(p, "CLUSTER", "SLOTS")).toEqual([
      [0, 3442, ["127.0.0.1", node.port, ME]],
      [3443, 3450, ["127.0.0.1", 1, OTHER]],
      [3451, 8191, ["127.0.0.1", node.port, ME]],
      [8192, 16383, ["127.0.0.1", 1, OTHER]],
    ]);
    expect(await send(p, "CLUSTERX", "SETSLOT", "3443-3450", "NODE", ME, "4")).toBe("OK");
    expect(await send(p, "VGET", "{user1000}.following", "2")).toBe(9);
  });

  test("keys: CROSSSLOT across slots, {tag} keys together, keyspace commands per node", async () => {
    const p = node.port;
    expect(await send(p, "EXISTS", "{user1000}.following", "{user1000}.followers")).toBe(2);
    expect(await send(p, "EXISTS", "{user1000}.following", "other")).toBe("CROSSSLOT Keys in request don't hash to the same slot");
    expect(await send(p, "DEL", "{user1000}.following", "nope")).toBe("CROSSSLOT Keys in request don't hash to the same slot");
    expect(await send(p, "DBSIZE")).toBe(2);
    expect(((await send(p, "KEYS", "*")) as string[]).sort()).toEqual(["{user1000}.followers", "{user1000}.following"]);
    expect(await send(p, "CLUSTER", "COUNTKEYSINSLOT", "3443")).toBe(2);
    expect(await send(p, "CLUSTER", "COUNTKEYSINSLOT", "3444")).toBe(0);
    expect(((await send(p, "CLUSTER", "GETKEYSINSLOT", "3443", "10")) as string[]).sort()).toEqual([
      "{user1000}.followers",
      "{user1000}.following",
    ]);
    expect(((await send(p, "CLUSTER", "GETKEYSINSLOT", "3443", "1")) as string[]).length).toBe(1);
    expect(await send(p, "MMAP", "{user1000}.abs", "/tmp/abs.f64")).toBe(
      "ERR absolute paths are refused in cluster mode: a binding must be recreatable under another node's data directory",
    );
    expect(await send(p, "MMAP", "{user1000}.conf", "cluster-nodes.conf", "uint8")).toBe(
      "ERR 'cluster-nodes.conf' and 'cluster-migration.json' are the cluster's own files",
    );
  });

  test("transactions: one slot runs; keys of two slots answer CROSSSLOT at EXEC; a key elsewhere is MOVED while queueing", async () => {
    const c = await RespClient.connect(node.port);
    try {
      const run = async (...commands: string[][]) => (await c.replies(commands)).toString();
      expect(await run(["MULTI"], ["EXISTS", "{user1000}.following"], ["EXISTS", "{user1000}.followers"], ["EXEC"])).toBe(
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:1\r\n",
      );
      expect(await run(["MULTI"], ["EXISTS", "{user1000}.following"], ["EXISTS", "{user1001}.x"], ["EXEC"])).toBe(
        "+OK\r\n+QUEUED\r\n+QUEUED\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n",
      );
      expect(await run(["MULTI"], ["VGET", "foo", "0"], ["EXEC"])).toBe(
        "+OK\r\n-MOVED 12182 127.0.0.1:1\r\n-EXECABORT Transaction discarded because of previous errors.\r\n",
      );
    } finally {
      c.close();
    }
  });

  test("CLUSTER NODES: Redis's line format, this node marked myself", async () => {
    const nodes = String(await send(node.port, "CLUSTER", "NODES"));
    const lines = nodes.split("\n");
    expect(lines.pop()).toBe("");
    expect(lines.length).toBe(2);
    const mine = lines.find((l) => l.startsWith(ME))!.split(" ");
    expect(mine.slice(1, 4)).toEqual([`127.0.0.1:${node.port}@${node.port + 10000}`, "myself,master", "-"]);
    expect(mine.slice(6, 8)).toEqual(["4", "connected"]);
    expect(mine.slice(8)).toEqual(["0-8191"]);
  });

  test("after kill -9 the node comes back with its topology, its id and its bindings", async () => {
    const before = await send(node.port, "CLUSTER", "SLOTS");
    await node.kill9();
    node = await startServer({ dir: node.dir, port: node.port, args: CLUSTER_NODE_ARGS });
    expect(await send(node.port, "CLUSTERX", "VERSION")).toBe("4");
    expect(await send(node.port, "CLUSTER", "MYID")).toBe(ME);
    expect(await send(node.port, "CLUSTER", "SLOTS")).toEqual(before);
    expect(await send(node.port, "VGET", "{user1000}.following", "1")).toBe(8);
    expect(await send(node.port, "VGET", "foo", "0")).toBe("MOVED 12182 127.0.0.1:1");
    expect(fs.readFileSync(path.join(node.dir, "cluster-nodes.conf"), "utf8").split("\n").slice(0, 2)).toEqual(["version 4", `id ${ME}`]);
  });
});

describe("--cluster-config", () => {
  let dir: string;
  let node: TestServer | null = null;
  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(async () => {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("a static file gives the topology at start; a newer pushed one wins over it at the next start", async () => {
    const port = freePort();
    const file = path.join(dir, "topology.conf");
    const nodesDir = path.join(dir, "node");
    fs.writeFileSync(
      file,
      `# two nodes\n${setnodesText([
        { id: ME, port, slots: [0, 8191] },
        { id: OTHER, port: 1, slots: [8192, 16383] },
      ])}\n`,
    );
    const start = () => startServer({ dir: nodesDir, port, args: [...CLUSTER_NODE_ARGS, "--cluster-config", file] });
    node = await start();
    // No --cluster-node-id: the node found itself by its address and port.
    expect(await send(port, "CLUSTER", "MYID")).toBe(ME);
    expect(await send(port, "CLUSTERX", "VERSION")).toBe("0");
    expect(await send(port, "VGET", "foo", "0")).toBe("MOVED 12182 127.0.0.1:1");
    expect(await send(port, "CLUSTERX", "SETNODES", `${ME} 127.0.0.1 ${port} master - 0-16383\n${OTHER} 127.0.0.1 1 master -`, "5")).toBe(
      "OK",
    );
    await node.stop();
    node = await start();
    expect(await send(port, "CLUSTERX", "VERSION")).toBe("5");
    expect(node.output()).toContain("keeping the newer topology (version 5)");
    await node.stop();
    fs.writeFileSync(
      file,
      `version 9\n${setnodesText([
        { id: ME, port, slots: [0, 100] },
        { id: OTHER, port: 1, slots: [101, 16383] },
      ])}\n`,
    );
    node = await start();
    expect(await send(port, "CLUSTERX", "VERSION")).toBe("9");
    expect(await send(port, "CLUSTER", "COUNTKEYSINSLOT", "0")).toBe(0);
  });

  test("a bad file stops the start with its reason", async () => {
    await node?.stop();
    node = null;
    const file = path.join(dir, "bad.conf");
    fs.writeFileSync(file, `${ME} 127.0.0.1 7000 master - 0-99999\n`);
    await expect(startServer({ args: [...CLUSTER_NODE_ARGS, "--cluster-config", file] })).rejects.toThrow("Slot is out of range");
  });
});

describe("texts compared with a real redis-server", () => {
  let mmapd: TestServer;
  let cluster: TestServer;
  let redis: RealRedis;
  let redisCluster: RealRedis;
  beforeAll(async () => {
    mmapd = await startServer({ args: ["--workers", "1"] });
    cluster = await startServer({ args: CLUSTER_NODE_ARGS });
    await send(cluster.port, "CLUSTERX", "SETNODES", setnodesText([{ id: ME, port: cluster.port, slots: [0, 16383] }]), "1");
    if (!haveRedis) return;
    redis = await startRealRedis();
    redisCluster = await startRealRedis(["--cluster-enabled", "yes"]);
    await send(redisCluster.port, "CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    // A new Redis master waits a moment before it declares its cluster ok.
    while (!String(await send(redisCluster.port, "CLUSTER", "INFO")).includes("cluster_state:ok")) await Bun.sleep(100);
  });
  afterAll(async () => {
    await Promise.all([mmapd.stop(), cluster.stop(), redis?.stop(), redisCluster?.stop()]);
    mmapd.cleanup();
    cluster.cleanup();
  });

  test.skipIf(!haveRedis)("without cluster mode: CLUSTER, READONLY, READWRITE and ASKING refuse as Redis does", async () => {
    for (const args of [["CLUSTER", "INFO"], ["CLUSTER", "SLOTS"], ["CLUSTER", "KEYSLOT", "x"], ["READONLY"], ["READWRITE"], ["ASKING"]]) {
      expect(await send(mmapd.port, ...args)).toBe(await send(redis.port, ...args));
    }
    expect(await send(mmapd.port, "CLUSTERX", "VERSION")).toBe("ERR Cluster mode is not enabled");
    expect(String(await send(mmapd.port, "INFO"))).toContain("# Cluster\r\ncluster_enabled:0\r\n");
  });

  test.skipIf(!haveRedis)("in cluster mode: CLUSTER's argument errors, READONLY/READWRITE/ASKING and CROSSSLOT as Redis", async () => {
    const cases = [
      ["CLUSTER", "KEYSLOT"],
      ["CLUSTER", "KEYSLOT", "{user1000}.following"],
      ["CLUSTER", "KEYSLOT", "a", "b"],
      ["CLUSTER", "COUNTKEYSINSLOT", "x"],
      ["CLUSTER", "COUNTKEYSINSLOT", "16384"],
      ["CLUSTER", "COUNTKEYSINSLOT", "-1"],
      ["CLUSTER", "COUNTKEYSINSLOT", "3443"],
      ["CLUSTER", "GETKEYSINSLOT", "1", "x"],
      ["CLUSTER", "GETKEYSINSLOT", "1", "-1"],
      ["CLUSTER", "GETKEYSINSLOT", "16384", "1"],
      ["CLUSTER", "GETKEYSINSLOT", "3443", "10"],
      ["CLUSTER", "FOO"],
      ["CLUSTER", "INFO", "x"],
      ["CLUSTER", "MYID", "x"],
      ["READONLY"],
      ["READWRITE"],
      ["ASKING"],
      ["READONLY", "x"],
      ["EXISTS", "a", "b"],
      ["DEL", "{t}a", "{t}b"],
    ];
    for (const args of cases) expect([args, await send(cluster.port, ...args)]).toEqual([args, await send(redisCluster.port, ...args)]);
  });
});
