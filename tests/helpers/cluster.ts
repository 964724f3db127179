/**
 * Test helpers for cluster mode: N mmapd nodes on free loopback ports, each with its own data
 * directory, the 16384 slots split evenly (three nodes: 0-5460, 5461-10922, 10923-16383), and the
 * topology pushed to every node with CLUSTERX SETNODES, as a controller does.
 */
import fs from "node:fs";
import { ErrorReply, RespClient } from "../../bench/resp_client.ts";
import { evenSlotRanges, randomNodeId } from "../../server/cluster/topology.ts";
import { startServer, type TestServer } from "./server.ts";

interface ClusterNode {
  id: string;
  server: TestServer;
  /** Slots [first, last] the node serves. */
  slots: [number, number];
}

export interface TestCluster {
  nodes: ClusterNode[];
  /** The SETNODES text pushed. */
  text: string;
  /** The node serving `slot`. */
  ownerOf(slot: number): ClusterNode;
  /** Stops every node (SIGTERM) and removes their data directories. */
  stop(): Promise<void>;
}

/** Flags every cluster node gets: cluster mode, one shard worker (the machine has 2 cores). */
export const CLUSTER_NODE_ARGS = ["--cluster-enabled", "yes", "--workers", "1"];

/** The SETNODES text for nodes (id, port) serving the slots `ranges`, on 127.0.0.1. */
export function setnodesText(nodes: { id: string; port: number; slots: [number, number] }[]): string {
  return nodes.map((n) => `${n.id} 127.0.0.1 ${n.port} master - ${n.slots[0]}-${n.slots[1]}`).join("\n");
}

/** Sends one command to `port` and returns its reply; an error reply is thrown. */
export async function nodeCommand(port: number, ...args: string[]): Promise<unknown> {
  const c = await RespClient.connect(port);
  try {
    const reply = await c.command(...args);
    if (reply instanceof ErrorReply) throw new Error(`${args[0]} ${args[1] ?? ""}: ${reply.message}`);
    return reply;
  } finally {
    c.close();
  }
}

/** Starts `count` nodes (with `args` added) and gives them the topology at version 1. */
export async function startCluster(count: number, args: string[] = []): Promise<TestCluster> {
  const servers = await Promise.all(Array.from({ length: count }, () => startServer({ args: [...CLUSTER_NODE_ARGS, ...args] })));
  const ranges = evenSlotRanges(count);
  const nodes = servers.map((server, i) => ({ id: randomNodeId(), server, slots: ranges[i] }));
  const text = setnodesText(nodes.map((n) => ({ id: n.id, port: n.server.port, slots: n.slots })));
  await Promise.all(nodes.map((n) => nodeCommand(n.server.port, "CLUSTERX", "SETNODES", text, "1")));
  return {
    nodes,
    text,
    ownerOf: (slot) => nodes.find((n) => slot >= n.slots[0] && slot <= n.slots[1])!,
    async stop() {
      await Promise.all(nodes.map((n) => n.server.stop()));
      // A node restarted on its directory (startServer({ dir })) does not remove it itself.
      for (const n of nodes) fs.rmSync(n.server.dir, { recursive: true, force: true });
    },
  };
}
