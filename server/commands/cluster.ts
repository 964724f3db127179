/**
 * Cluster commands that cluster-aware clients send: CLUSTER (SLOTS, SHARDS, NODES, INFO, MYID,
 * KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT), READONLY, READWRITE and ASKING, with Redis's replies.
 * What a controller sends (CLUSTERX) is clusterx.ts.
 */
import type { ArgList } from "../../core/args.ts";
import { argInt, argString } from "../../core/args.ts";
import type { SubcommandSpec } from "../../core/command_spec.ts";
import { ClusterErrors, CommandError, Errors } from "../../core/errors.ts";
import { SLOT_COUNT, argSlot } from "../../core/slots.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { Cluster } from "../cluster/cluster.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

/** The cluster, or Redis's error for a server without cluster mode. */
function enabled(ctx: ServerContext): Cluster {
  if (ctx.cluster === null) throw new CommandError(ClusterErrors.disabled);
  return ctx.cluster;
}

/** The cluster's topology, or CLUSTERDOWN before it has one. */
function initialized(cluster: Cluster) {
  if (cluster.topology === null) throw new CommandError(ClusterErrors.notInitialized);
  return cluster.topology;
}

/** A slot argument: an integer (Redis's error otherwise) from 0 to 16383 (`invalid` otherwise). */
function slotArg(a: ArgList, i: number, invalid: string): number {
  const slot = argInt(a, i);
  if (slot !== slot) throw new CommandError(Errors.notAnInteger);
  if (slot < 0 || slot >= SLOT_COUNT) throw new CommandError(invalid);
  return slot;
}

/**
 * CLUSTER INFO's text: Kvrocks's fields (cluster_current_epoch and cluster_my_epoch are the
 * topology's version). The state is ok once there is a topology, as in Kvrocks: a slot without a
 * node answers CLUSTERDOWN on its own.
 */
function clusterInfo(cluster: Cluster): string {
  const topology = initialized(cluster);
  const assigned = topology.assignedSlots();
  const size = topology.rangesByNode().filter((r) => r.length > 0).length;
  const fields: [string, string | number][] = [
    ["cluster_state", "ok"],
    ["cluster_slots_assigned", assigned],
    ["cluster_slots_ok", assigned],
    ["cluster_slots_pfail", 0],
    ["cluster_slots_fail", 0],
    ["cluster_known_nodes", topology.nodes.length],
    ["cluster_size", size],
    ["cluster_current_epoch", topology.version],
    ["cluster_my_epoch", topology.version],
  ];
  let text = fields.map(([k, v]) => `${k}:${v}\r\n`).join("");
  // Kvrocks's lines (with their space after the colon), for controllers that poll a migration.
  const m = cluster.migration;
  if (m !== null) text += `migrating_slot: ${m.slot}\r\ndestination_node: ${m.target}\r\nmigrating_state: ${m.state}\r\n`;
  if (cluster.import !== null) text += `importing_slot: ${cluster.import.slot}\r\nimport_state: ${cluster.import.state}\r\n`;
  return text;
}

/**
 * CLUSTER NODES: one line per node, each ending in "\n" (the last too), single spaces, as Redis
 * and Kvrocks write it and redis-benchmark parses it:
 * `<id> <ip>:<port>@<cport> [myself,]master - <ping-sent> <pong-recv> <epoch> connected <slots>`.
 */
function clusterNodes(cluster: Cluster): string {
  const topology = initialized(cluster);
  const ranges = topology.rangesByNode();
  const now = Date.now();
  return topology.nodes
    .map((n, i) => {
      const flags = i === cluster.myIndex ? "myself,master" : "master";
      const fields = [n.id, `${n.host}:${n.port}@${n.port + 10000}`, flags, "-", now - 1, now, topology.version, "connected", ...ranges[i]];
      return fields.join(" ") + "\n";
    })
    .join("");
}

/** CLUSTER SLOTS: [start, end, [ip, port, id]] per run of slots with the same node. */
function clusterSlots(cluster: Cluster, w: ReplyWriter): void {
  const topology = initialized(cluster);
  const runs = topology.slotRuns();
  w.array(runs.length);
  for (const [start, end, owner] of runs) {
    const n = topology.nodes[owner];
    w.array(3);
    w.integer(start);
    w.integer(end);
    w.array(3);
    w.bulk(n.host);
    w.integer(n.port);
    w.bulk(n.id);
  }
}

/** CLUSTER SHARDS: Redis 7's map per shard (one master each, no replicas). */
function clusterShards(cluster: Cluster, w: ReplyWriter): void {
  const topology = initialized(cluster);
  const runs = topology.slotRuns();
  w.array(topology.nodes.length);
  topology.nodes.forEach((n, i) => {
    const mine = runs.filter((r) => r[2] === i);
    w.map(2);
    w.bulk("slots");
    w.array(mine.length * 2);
    for (const [start, end] of mine) {
      w.integer(start);
      w.integer(end);
    }
    w.bulk("nodes");
    w.array(1);
    w.map(7);
    w.bulk("id");
    w.bulk(n.id);
    w.bulk("port");
    w.integer(n.port);
    w.bulk("ip");
    w.bulk(n.host);
    w.bulk("endpoint");
    w.bulk(n.host);
    w.bulk("role");
    w.bulk("master");
    w.bulk("replication-offset");
    w.integer(0);
    w.bulk("health");
    w.bulk("online");
  });
}

const CLUSTER_HELP = [
  "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "COUNTKEYSINSLOT <slot>",
  "    Return the number of keys in <slot>.",
  "GETKEYSINSLOT <slot> <count>",
  "    Return key names stored by current node in a slot.",
  "INFO",
  "    Return information about the cluster.",
  "KEYSLOT <key>",
  "    Return the hash slot for <key>.",
  "MYID",
  "    Return the node id.",
  "NODES",
  "    Return cluster configuration seen by node. Output format:",
  "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
  "SLOTS",
  "    Return information about slots range mappings. Each range is made of:",
  "    start, end, master and replicas IP addresses, ports and ids",
  "SHARDS",
  "    Return information about slot range mappings and the nodes associated with them.",
  "HELP",
  "    Prints this help.",
  "The topology is set with CLUSTERX SETNODES|SETSLOT (Kvrocks's commands).",
];

const CLUSTER_SUBCOMMANDS: SubcommandSpec[] = [
  {
    name: "info",
    arity: 2,
    flags: ["stale"],
    summary: "Returns the cluster's state: slots assigned, nodes known, the topology's version.",
    syntax: "",
  },
  { name: "slots", arity: 2, flags: ["loading", "stale"], summary: "Returns the node of each range of slots.", syntax: "" },
  { name: "shards", arity: 2, flags: ["loading", "stale"], summary: "Returns each shard's slots and nodes.", syntax: "" },
  { name: "nodes", arity: 2, flags: ["stale"], summary: "Returns the topology in Redis's CLUSTER NODES text.", syntax: "" },
  { name: "myid", arity: 2, flags: ["stale"], summary: "Returns this node's id.", syntax: "" },
  { name: "keyslot", arity: 3, flags: ["stale"], summary: "Returns the hash slot of a key.", syntax: "key" },
  {
    name: "countkeysinslot",
    arity: 3,
    flags: ["stale"],
    summary: "Returns the number of keys bound on this node in a slot.",
    syntax: "slot",
  },
  {
    name: "getkeysinslot",
    arity: 4,
    flags: ["stale"],
    summary: "Returns up to count keys bound on this node in a slot.",
    syntax: "slot count",
  },
  { name: "help", arity: 2, flags: ["loading", "stale"], summary: "Lists the subcommands.", syntax: "" },
];

export const clusterCommands: ServerCommand[] = [
  {
    name: "cluster",
    arity: -2,
    route: "main",
    flags: [],
    keys: null,
    group: "cluster",
    since: "0.1.0",
    summary: "Reports the cluster topology: which node serves which hash slots.",
    complexity: "Depends on subcommand",
    syntax: "subcommand [arg ...]",
    subcommands: CLUSTER_SUBCOMMANDS,
    run(ctx, _conn, a, w) {
      const cluster = enabled(ctx);
      const sub = argString(a, 1).toLowerCase();
      const spec = CLUSTER_SUBCOMMANDS.find((s) => s.name === sub);
      if (spec === undefined) throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "cluster"));
      if (spec.arity > 0 ? a.argc !== spec.arity : a.argc < -spec.arity) throw new CommandError(Errors.wrongArity(`cluster|${sub}`));
      switch (sub) {
        case "info":
          w.verbatim(clusterInfo(cluster));
          return;
        case "slots":
          clusterSlots(cluster, w);
          return;
        case "shards":
          clusterShards(cluster, w);
          return;
        case "nodes":
          w.verbatim(clusterNodes(cluster));
          return;
        case "myid":
          if (cluster.myId === "") throw new CommandError(ClusterErrors.notInitialized);
          w.bulk(cluster.myId);
          return;
        case "keyslot":
          w.integer(argSlot(a, 2));
          return;
        case "countkeysinslot":
          w.integer(cluster.keysInSlot(slotArg(a, 2, ClusterErrors.invalidSlot)).length);
          return;
        case "getkeysinslot": {
          const slot = argInt(a, 2);
          const count = argInt(a, 3);
          if (slot !== slot || count !== count) throw new CommandError(Errors.notAnInteger);
          if (slot < 0 || slot >= SLOT_COUNT || count < 0) throw new CommandError(ClusterErrors.invalidSlotOrCount);
          const keys = cluster.keysInSlot(slot, count);
          w.array(keys.length);
          for (const key of keys) {
            const bytes = Buffer.from(key, "latin1");
            w.bulkBytes(bytes, 0, bytes.length);
          }
          return;
        }
        default:
          w.lines(CLUSTER_HELP);
      }
    },
  },
];

/** What cluster clients send around redirections; accepted, and changing nothing here. */
export const clusterRoutingCommands: ServerCommand[] = [
  {
    name: "readonly",
    arity: 1,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "cluster",
    since: "0.1.0",
    summary: "Accepted for cluster clients; every node is a master, so reads go to the slot's node as before.",
    complexity: "O(1)",
    syntax: "",
    run(ctx, _conn, _a, w) {
      enabled(ctx);
      w.simple("OK");
    },
  },
  {
    name: "readwrite",
    arity: 1,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "cluster",
    since: "0.1.0",
    summary: "Accepted for cluster clients (the end of READONLY).",
    complexity: "O(1)",
    syntax: "",
    run(ctx, _conn, _a, w) {
      enabled(ctx);
      w.simple("OK");
    },
  },
  {
    name: "asking",
    arity: 1,
    route: "main",
    flags: ["fast"],
    keys: null,
    group: "cluster",
    since: "0.1.0",
    summary: "Accepted for cluster clients; mmapd never answers ASK, so it changes nothing.",
    complexity: "O(1)",
    syntax: "",
    run(ctx, _conn, _a, w) {
      enabled(ctx);
      w.simple("OK");
    },
  },
];
