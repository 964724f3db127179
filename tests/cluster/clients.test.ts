/**
 * Three nodes on 127.0.0.1 (slots 0-5460, 5461-10922, 10923-16383, one data directory each) with
 * the cluster clients people use, unmodified: ioredis Cluster, node-redis createCluster, redis-py's
 * RedisCluster (Debian's python3-redis), `redis-cli -c` and `redis-benchmark --cluster`. Each
 * client binds, appends to and reads keys; every key must land on the node that serves its slot.
 * Then a node is killed and restarted, and the clients carry on.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { createCluster } from "redis";
import { hashSlot } from "../../core/slots.ts";
import { CLUSTER_NODE_ARGS, type TestCluster, nodeCommand, startCluster } from "../helpers/cluster.ts";
import { hasTool, startServer } from "../helpers/server.ts";

setDefaultTimeout(120_000);

const haveCli = hasTool("redis-cli");
const haveBenchmark = hasTool("redis-benchmark");
const PYTHON = "/usr/bin/python3";
const havePython = fs.existsSync(PYTHON) && spawnSync([PYTHON, "-c", "import redis.cluster"]).exitCode === 0;
if (!havePython && process.env.MMAPD_REQUIRE_TOOLS === "1") throw new Error("python3-redis is required (apt-get install -y python3-redis)");

/** Keys each client binds, appends to and reads. */
const KEYS = 1000;
/** Commands a client has in flight at once. */
const CONCURRENCY = 100;

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster(3);
});

afterAll(async () => {
  await cluster.stop();
});

const slotOf = (key: string) => {
  const b = Buffer.from(key);
  return hashSlot(b, 0, b.length);
};

/** Runs `work(i)` for i in [0, count) with at most CONCURRENCY at once. */
async function forEachKey(count: number, work: (i: number) => Promise<void>): Promise<void> {
  for (let from = 0; from < count; from += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count - from) }, (_, k) => work(from + k)));
  }
}

/**
 * Checks that the keys `prefix<i>` are bound exactly once in the cluster, each on the node that
 * serves its slot, with the values the client appended (i, then i + 0.5).
 */
async function expectKeysOnTheirNodes(prefix: string): Promise<void> {
  const seen = new Map<string, number>();
  for (const node of cluster.nodes) {
    const keys = (await nodeCommand(node.server.port, "KEYS", `${prefix}*`)) as string[];
    for (const key of keys) {
      expect(seen.has(key)).toBe(false);
      seen.set(key, node.server.port);
      expect(cluster.ownerOf(slotOf(key)).server.port).toBe(node.server.port);
    }
  }
  expect(seen.size).toBe(KEYS);
  for (const i of [0, 1, KEYS - 1]) {
    const key = `${prefix}${i}`;
    expect(await nodeCommand(seen.get(key)!, "VALL", key)).toEqual([String(i), String(i + 0.5)]);
  }
}

describe("the cluster as clients see it", () => {
  test("CLUSTER SLOTS, SHARDS and NODES agree on every node; ids are the same in each", async () => {
    const slots = await nodeCommand(cluster.nodes[0].server.port, "CLUSTER", "SLOTS");
    expect(slots).toEqual(cluster.nodes.map((n) => [n.slots[0], n.slots[1], ["127.0.0.1", n.server.port, n.id]]));
    for (const node of cluster.nodes) {
      expect(await nodeCommand(node.server.port, "CLUSTER", "SLOTS")).toEqual(slots);
      const shards = (await nodeCommand(node.server.port, "CLUSTER", "SHARDS")) as unknown[][];
      expect(shards.length).toBe(3);
      expect(shards.map((s) => s[1])).toEqual(cluster.nodes.map((n) => n.slots));
      expect(await nodeCommand(node.server.port, "CLUSTER", "MYID")).toBe(node.id);
      const info = String(await nodeCommand(node.server.port, "CLUSTER", "INFO"));
      expect(info).toContain("cluster_state:ok\r\n");
      expect(info).toContain("cluster_known_nodes:3\r\ncluster_size:3\r\ncluster_current_epoch:1\r\n");
    }
  });

  test("CLUSTER NODES parses by redis-benchmark's rules", async () => {
    const text = String(await nodeCommand(cluster.nodes[1].server.port, "CLUSTER", "NODES"));
    // Every line ends in "\n", the last one too; fields are separated by single spaces.
    expect(text.endsWith("\n")).toBe(true);
    const lines = text.slice(0, -1).split("\n");
    expect(lines.length).toBe(3);
    for (const line of lines) {
      expect(line).not.toMatch(/ {2}|^ | $/);
      const [id, addr, flags, master, pingSent, pongReceived, epoch, link, ...slots] = line.split(" ");
      const node = cluster.nodes.find((n) => n.id === id)!;
      expect(node).toBeDefined();
      expect(addr).toBe(`127.0.0.1:${node.server.port}@${node.server.port + 10000}`);
      expect(flags).toBe(node === cluster.nodes[1] ? "myself,master" : "master");
      expect(master).toBe("-");
      for (const n of [pingSent, pongReceived, epoch]) expect(n).toMatch(/^[0-9]+$/);
      expect(link).toBe("connected");
      expect(slots).toEqual([`${node.slots[0]}-${node.slots[1]}`]);
    }
  });

  test("keys redirect: MOVED to the slot's node, CROSSSLOT across slots, {tag} keys together", async () => {
    const [a, , c] = cluster.nodes;
    await expect(nodeCommand(a.server.port, "VGET", "foo", "0")).rejects.toThrow(`MOVED 12182 127.0.0.1:${c.server.port}`);
    await expect(nodeCommand(c.server.port, "EXISTS", "foo", "x")).rejects.toThrow("CROSSSLOT Keys in request don't hash to the same slot");
    const b = cluster.ownerOf(3443);
    expect(await nodeCommand(b.server.port, "MMAP", "{user1000}.following", "following.u64", "uint64", "WRITABLE")).toBe(0);
    expect(await nodeCommand(b.server.port, "MMAP", "{user1000}.followers", "followers.u64", "uint64", "WRITABLE")).toBe(0);
    expect(await nodeCommand(b.server.port, "EXISTS", "{user1000}.following", "{user1000}.followers")).toBe(2);
    expect(await nodeCommand(b.server.port, "DEL", "{user1000}.following", "{user1000}.followers")).toBe(2);
  });
});

describe("cluster clients, unmodified", () => {
  test(`ioredis Cluster: MMAP, VADD and VGET of ${KEYS} keys (unknown commands go anywhere and follow MOVED)`, async () => {
    const client = new Redis.Cluster([{ host: "127.0.0.1", port: cluster.nodes[0].server.port }]);
    try {
      await forEachKey(KEYS, async (i) => {
        const key = `io:${i}`;
        expect(await client.call("MMAP", key, `io-${i}.f64`)).toBe(0);
        expect(await client.call("VADD", key, String(i), String(i + 0.5))).toBe(2);
        expect(await client.call("VGET", key, "1")).toBe(String(i + 0.5));
      });
    } finally {
      client.disconnect();
    }
    await expectKeysOnTheirNodes("io:");
  });

  test(`node-redis createCluster: MMAP, VADD and VGET of ${KEYS} keys through sendCommand`, async () => {
    const client = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${cluster.nodes[1].server.port}` }] });
    await client.connect();
    try {
      const send = (key: string, readonly: boolean, ...args: string[]): Promise<unknown> => client.sendCommand(key, readonly, args);
      await forEachKey(KEYS, async (i) => {
        const key = `nr:${i}`;
        expect(await send(key, false, "MMAP", key, `nr-${i}.f64`)).toBe(0);
        expect(await send(key, false, "VADD", key, String(i), String(i + 0.5))).toBe(2);
        expect(await send(key, true, "VGET", key, "1")).toBe(String(i + 0.5));
      });
    } finally {
      await client.close();
    }
    await expectKeysOnTheirNodes("nr:");
  });

  test.skipIf(!havePython)(`redis-py RedisCluster (python3-redis 4.3): MMAP, VADD and VGET of ${KEYS} keys`, async () => {
    const script = `
import sys
from redis.cluster import RedisCluster
r = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
for i in range(int(sys.argv[2])):
    key = f"py:{i}"
    assert r.execute_command("MMAP", key, f"py-{i}.f64") == 0
    assert r.execute_command("VADD", key, i, i + 0.5) == 2
    got = r.execute_command("VGET", key, 1)
    assert float(got) == i + 0.5, got
print("ok")
`;
    const r = spawnSync([PYTHON, "-c", script, String(cluster.nodes[2].server.port), String(KEYS)], { timeout: 60_000 });
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString()).toBe("ok\n");
    await expectKeysOnTheirNodes("py:");
  });

  test.skipIf(!haveCli)("redis-cli -c follows MOVED and says so", async () => {
    const [a, , c] = cluster.nodes;
    const r = spawnSync(["redis-cli", "-c", "-p", String(a.server.port)], {
      stdin: Buffer.from("MMAP foo foo.f64\nVADD foo 1.5 2.5\nVGET foo 1\n"),
    });
    expect(r.stdout.toString()).toBe(`-> Redirected to slot [12182] located at 127.0.0.1:${c.server.port}\n0\n2\n2.5\n`);
    expect(await nodeCommand(c.server.port, "VCOUNT", "foo")).toBe(2);
  });

  test.skipIf(!haveBenchmark)("redis-benchmark --cluster: a VGET over {tag} keys on 3 masters, no errors", async () => {
    for (const node of cluster.nodes) {
      const values = new Float64Array(100).map((_, i) => i);
      fs.writeFileSync(path.join(node.server.dir, "shared.f64"), new Uint8Array(values.buffer));
    }
    const port = String(cluster.nodes[0].server.port);
    const bench = (n: number, ...command: string[]) =>
      spawnSync(["redis-benchmark", "--cluster", "-p", port, "-n", String(n), "-c", "6", "-r", "100", "--csv", ...command], {
        timeout: 60_000,
      });
    // redis-benchmark puts one hash tag per node in place of {tag} (7.0: its first slot): bind the
    // keys it uses by running MMAP through it first (read-only bindings sharing one file).
    const bind = bench(3000, "MMAP", "k{tag}", "shared.f64", "double");
    expect(bind.exitCode).toBe(0);
    const tagged: string[] = [];
    for (const node of cluster.nodes) {
      const keys = (await nodeCommand(node.server.port, "KEYS", "k{*")) as string[];
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) expect(cluster.ownerOf(slotOf(key))).toBe(node);
      tagged.push(...keys);
    }
    const errorsBefore = await totalErrorReplies();
    const r = bench(30_000, "VGET", "k{tag}", "__rand_int__");
    const out = r.stdout.toString() + r.stderr.toString();
    expect(r.exitCode).toBe(0);
    expect(out).toContain("Cluster has 3 master nodes:");
    for (const [i, node] of cluster.nodes.entries()) expect(out).toContain(`Master ${i}: ${node.id} 127.0.0.1:${node.server.port}`);
    expect(out).toMatch(/"VGET k\{tag\} __rand_int__","[0-9.]+"/);
    expect(out).not.toContain("Error");
    // redis-benchmark passes over errors on {tag} keys that are not MOVED, ASK or CLUSTERDOWN:
    // the servers' own count tells.
    expect(await totalErrorReplies()).toBe(errorsBefore);
    expect(tagged.length).toBeGreaterThanOrEqual(3);
  });
});

/** INFO's total_error_replies summed over the nodes. */
async function totalErrorReplies(): Promise<number> {
  let sum = 0;
  for (const node of cluster.nodes)
    sum += Number(/total_error_replies:(\d+)/.exec(String(await nodeCommand(node.server.port, "INFO", "stats")))![1]);
  return sum;
}

describe("a node restarted", () => {
  test("comes back with its topology and bindings; ioredis and redis-py carry on", async () => {
    const client = new Redis.Cluster([{ host: "127.0.0.1", port: cluster.nodes[0].server.port }]);
    try {
      const victim = cluster.ownerOf(slotOf("io:7"));
      expect(await client.call("VGET", "io:7", "0")).toBe("7");
      await victim.server.kill9();
      victim.server = await startServer({ dir: victim.server.dir, port: victim.server.port, args: CLUSTER_NODE_ARGS });
      expect(await nodeCommand(victim.server.port, "CLUSTER", "MYID")).toBe(victim.id);
      expect(await nodeCommand(victim.server.port, "CLUSTERX", "VERSION")).toBe("1");
      // ioredis reconnects by itself; the binding is back.
      expect(await client.call("VGET", "io:7", "1")).toBe("7.5");
      expect(await client.call("VADD", "io:7", "8")).toBe(1);
    } finally {
      client.disconnect();
    }
    if (havePython) {
      const script = `
import sys
from redis.cluster import RedisCluster
r = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
print(r.execute_command("VCOUNT", "io:7"), r.execute_command("VGET", "py:7", 0).decode())
`;
      const r = spawnSync([PYTHON, "-c", script, String(cluster.nodes[1].server.port)], { timeout: 30_000 });
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toBe("3 7\n");
    }
  });
});
