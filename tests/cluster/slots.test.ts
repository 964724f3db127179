/**
 * Cluster mode without a server: the slot function's vectors (Redis Cluster's), the even split of
 * slots over nodes, the topology text's rules (Kvrocks's SETNODES, with its error texts), the
 * topology file, and the redirections computed for commands of the table.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Args } from "../../core/args.ts";
import { ClusterErrors, CommandError } from "../../core/errors.ts";
import { hashSlot } from "../../core/slots.ts";
import { Cluster, type ClusterHost } from "../../server/cluster/cluster.ts";
import { clusterRefusal, transactionRefusal } from "../../server/cluster/redirect.ts";
import { TOPOLOGY_FILE, Topology, evenSlotRanges, formatTopologyFile, parseTopologyFile } from "../../server/cluster/topology.ts";
import { COMMAND_CATALOG } from "../../server/command_table.ts";
import { defaultConfig } from "../../server/config.ts";
import type { Connection } from "../../server/connection.ts";

const slotOf = (key: string) => {
  const b = Buffer.from(key);
  return hashSlot(b, 0, b.length);
};

const A = "a".repeat(40);
const B = "b".repeat(40);
const C = "c".repeat(40);
const THREE = `${A} 127.0.0.1 7000 master - 0-5460\n${B} 127.0.0.1 7001 master - 5461-10922\n${C} 127.0.0.1 7002 master - 10923-16383`;

/** The reply text a topology refusal carries. */
function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CommandError) return e.reply;
    throw e;
  }
  throw new Error("not refused");
}

describe("hash slots", () => {
  test("Redis Cluster's vectors", () => {
    expect(slotOf("123456789")).toBe(12739);
    expect(slotOf("foo")).toBe(12182);
    expect(slotOf("x")).toBe(16287);
    expect(slotOf("{user1000}.following")).toBe(3443);
    expect(slotOf("{user1000}.followers")).toBe(3443);
  });

  test("hash tags: the first non-empty {...} only", () => {
    expect(slotOf("a{foo}b")).toBe(12182);
    expect(slotOf("{}foo")).not.toBe(slotOf("foo"));
    expect(slotOf("{foo}{bar}")).toBe(12182);
    expect(slotOf("foo{")).toBe(slotOf("foo{"));
  });

  test("slots split evenly, as redis-cli --cluster create splits them", () => {
    expect(evenSlotRanges(3)).toEqual([
      [0, 5460],
      [5461, 10922],
      [10923, 16383],
    ]);
    expect(evenSlotRanges(2)).toEqual([
      [0, 8191],
      [8192, 16383],
    ]);
    const five = evenSlotRanges(5);
    expect(five[0][0]).toBe(0);
    expect(five[4][1]).toBe(16383);
    for (let i = 1; i < 5; i++) expect(five[i][0]).toBe(five[i - 1][1] + 1);
  });
});

describe("topology text (Kvrocks's SETNODES)", () => {
  test("three nodes: owners, runs and the text written back", () => {
    const t = Topology.parse(THREE, 4);
    expect(t.version).toBe(4);
    expect(t.nodes.map((n) => n.port)).toEqual([7000, 7001, 7002]);
    expect(t.owners[0]).toBe(0);
    expect(t.owners[12182]).toBe(2);
    expect(t.assignedSlots()).toBe(16384);
    expect(t.slotRuns()).toEqual([
      [0, 5460, 0],
      [5461, 10922, 1],
      [10923, 16383, 2],
    ]);
    expect(t.format()).toBe(THREE + "\n");
  });

  test("single slots, several ranges, unassigned slots", () => {
    const t = Topology.parse(`${A} 10.0.0.1 7000 master - 0-10 12 20-30\n${B} 10.0.0.2 7000 master -`, 1);
    expect(t.owners[11]).toBe(-1);
    expect(t.owners[12]).toBe(0);
    expect(t.assignedSlots()).toBe(11 + 1 + 11);
    expect(t.rangesByNode()).toEqual([["0-10", "12", "20-30"], []]);
  });

  test("refusals, with Kvrocks's texts", () => {
    expect(refusal(() => Topology.parse("", 1))).toBe("ERR Invalid cluster nodes info");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 master`, 1))).toBe("ERR Invalid cluster nodes info");
    expect(refusal(() => Topology.parse(`abc 127.0.0.1 7000 master -`, 1))).toBe("ERR Invalid cluster node id");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 70000 master -`, 1))).toBe("ERR Invalid cluster node port");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 x master -`, 1))).toBe("ERR Invalid cluster node port");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 boss -`, 1))).toBe(ClusterErrors.invalidRole);
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 slave ${B}`, 1))).toBe(ClusterErrors.invalidRole);
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 master ${B}`, 1))).toBe("ERR Invalid cluster node id");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 master - 0-16384`, 1))).toBe("ERR Slot is out of range");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 master - 10-5`, 1))).toBe("ERR Slot is out of range");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 master - x`, 1))).toBe("ERR Slot is out of range");
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 master - 0-100\n${B} 127.0.0.1 7001 master - 100`, 1))).toBe(
      "ERR Slot distribution is overlapped",
    );
    expect(refusal(() => Topology.parse(`${A} 127.0.0.1 7000 master -\n${A} 127.0.0.1 7001 master -`, 1))).toBe(
      "ERR Invalid cluster node id",
    );
    // Clients would be sent to an address that reaches nothing.
    expect(refusal(() => Topology.parse(`${A} 0.0.0.0 7000 master -`, 1))).toBe(ClusterErrors.unspecifiedHost("0.0.0.0"));
  });

  test("SETSLOT moves ranges to a node at a new version; an unknown node is refused", () => {
    const t = Topology.parse(THREE, 1).assign([[0, 99]], C, 2);
    expect(t.version).toBe(2);
    expect(t.owners[50]).toBe(2);
    expect(t.owners[100]).toBe(0);
    expect(refusal(() => t.assign([[0, 1]], "d".repeat(40), 3))).toBe("ERR No this node in the cluster");
  });

  test("the topology file: Kvrocks's nodes.conf form and the bare SETNODES lines", () => {
    const t = Topology.parse(THREE, 7);
    const file = parseTopologyFile(formatTopologyFile(t, B), "f");
    expect(file.version).toBe(7);
    expect(file.myId).toBe(B);
    expect(file.topology!.format()).toBe(t.format());
    const bare = parseTopologyFile(`# three local nodes\n${THREE}\n`, "f");
    expect(bare.version).toBe(0);
    expect(bare.myId).toBe("");
    expect(bare.topology!.format()).toBe(t.format());
    expect(parseTopologyFile(`id ${A}\n`, "f")).toEqual({ topology: null, version: 0, myId: A, moved: new Map() });
    expect(() => parseTopologyFile(`version x\n${THREE}`, "conf")).toThrow("conf:1: Invalid cluster version");
    expect(() => parseTopologyFile(`${A} 127.0.0.1 7000 master - 99999`, "conf")).toThrow("conf: Slot is out of range");
  });
});

describe("redirections", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mmapd-cluster-unit-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const host: ClusterHost = {
    port: () => 7000,
    bindings: () => new Map(),
    forgetAtStart: () => {},
    unbind: async () => {},
    drain: async () => {},
  };
  const cluster = new Cluster({ ...defaultConfig(), clusterEnabled: true, clusterNodeId: A }, dir, host);
  // A connection as the redirections see it: only its identity matters (importing connections pass).
  const conn = {} as Connection;
  const refuse = (...args: string[]) => clusterRefusal(cluster, conn, COMMAND_CATALOG.find(args[0].toLowerCase())!, Args.of(...args));

  test("before a topology: keyed commands answer CLUSTERDOWN, others run", () => {
    cluster.load();
    expect(refuse("VGET", "foo", "0")).toBe("CLUSTERDOWN The cluster is not initialized");
    expect(refuse("PING")).toBeNull();
    expect(refuse("KEYS", "*")).toBeNull();
  });

  test("MOVED to the slot's node, CROSSSLOT across slots, {tag} keys together", () => {
    cluster.setNodes(THREE, 1, false);
    expect(cluster.myIndex).toBe(0);
    expect(fs.readFileSync(path.join(dir, TOPOLOGY_FILE), "utf8")).toBe(formatTopologyFile(cluster.topology!, A));
    expect(refuse("VGET", "foo", "0")).toBe("MOVED 12182 127.0.0.1:7002");
    expect(refuse("VGET", "{user1000}.following", "0")).toBeNull();
    expect(refuse("DEL", "{user1000}.following", "{user1000}.followers")).toBeNull();
    expect(refuse("EXISTS", "{user1000}.following", "foo")).toBe("CROSSSLOT Keys in request don't hash to the same slot");
    expect(refuse("DEL", "foo", "a{foo}")).toBe("MOVED 12182 127.0.0.1:7002");
    expect(refuse("DBSIZE")).toBeNull();
  });

  test("MMAP in cluster mode: relative paths only, never the topology's file", () => {
    expect(refuse("MMAP", "{user1000}", "prices.f64")).toBeNull();
    expect(refuse("MMAP", "{user1000}", "/tmp/prices.f64")).toBe(ClusterErrors.absolutePath);
    expect(refuse("MMAP", "{user1000}", "./cluster-nodes.conf")).toBe(ClusterErrors.topologyFile);
    expect(refuse("MMAP", "{user1000}", ".mmapd-import/3443/a.f64")).toBe(ClusterErrors.stagingFile);
  });

  test("a slot without a node: CLUSTERDOWN Hash slot not served", () => {
    cluster.setNodes(`${A} 127.0.0.1 7000 master - 0-5460`, 2, false);
    expect(refuse("VGET", "foo", "0")).toBe("CLUSTERDOWN Hash slot not served");
  });

  test("a transaction's keys: one slot across its commands", () => {
    const cmd = (...args: string[]) => ({ command: COMMAND_CATALOG.find(args[0].toLowerCase())!, args: Args.of(...args) });
    expect(transactionRefusal(cluster, conn, [cmd("VSET", "{user1000}.a", "0", "1"), cmd("VGET", "{user1000}.b", "0")])).toBeNull();
    expect(transactionRefusal(cluster, conn, [cmd("VSET", "{user1000}.a", "0", "1"), cmd("VGET", "x", "0")])).toBe(ClusterErrors.crossSlot);
    expect(transactionRefusal(cluster, conn, [cmd("PING"), cmd("VGET", "foo", "0")])).toBe(ClusterErrors.slotNotServed);
    expect(transactionRefusal(cluster, conn, [cmd("PING")])).toBeNull();
  });
});
