/**
 * Cluster commands: what cluster-aware clients read (CLUSTER SLOTS, SHARDS, NODES, INFO, MYID,
 * KEYSLOT, COUNTKEYSINSLOT, GETKEYSINSLOT; READONLY, READWRITE, ASKING, with Redis's replies), and
 * the topology a controller pushes (CLUSTERX VERSION, MYID, SETNODEID, SETNODES, SETSLOT, with
 * Apache Kvrocks's arguments and replies), and slot migration (CLUSTERX MIGRATE, and the IMPORT
 * and IMPORTFILE a migrating node sends its target).
 */
import type { ArgList } from "../../core/args.ts";
import { argInt, argIs, argString } from "../../core/args.ts";
import type { SubcommandSpec } from "../../core/command_spec.ts";
import { ClusterErrors, CommandError, Errors, MigrationErrors } from "../../core/errors.ts";
import { SLOT_COUNT, argSlot } from "../../core/slots.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { importCommand, importFileCommand } from "../cluster/import.ts";
import { startMigration } from "../cluster/migration.ts";
import { isNodeId, parseSlotRange } from "../cluster/topology.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";
import { DEFERRED } from "./server_command.ts";

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

const CLUSTERX_SUBCOMMANDS: SubcommandSpec[] = [
  { name: "version", arity: 2, flags: ["admin"], summary: "Returns the topology's version (-1 before there is one).", syntax: "" },
  { name: "myid", arity: 2, flags: ["admin"], summary: "Returns this node's id (empty before it has one).", syntax: "" },
  { name: "setnodeid", arity: 3, flags: ["admin"], summary: "Sets this node's id in the topology.", syntax: "node-id" },
  {
    name: "setnodes",
    arity: -4,
    flags: ["admin"],
    summary: "Replaces the topology with the nodes and slots given, at a newer version (any version with FORCE).",
    syntax: "nodes version [FORCE]",
  },
  {
    name: "setslot",
    arity: 6,
    flags: ["admin"],
    summary: "Gives slots to a node; the version must be the current one plus one.",
    syntax: "slots NODE node-id version",
  },
  {
    name: "migrate",
    arity: -4,
    flags: ["admin"],
    summary:
      "Moves a slot's bindings and their files to another node; CLUSTER INFO reports how it goes (ASYNC, the default) or the reply waits (SYNC).",
    syntax: "slot node-id [ASYNC|SYNC [timeout]]",
  },
  {
    name: "import",
    arity: -4,
    flags: ["admin"],
    summary: "Sent by a migrating node to its target: starts, ends or abandons a slot's import.",
    syntax: "slot START|SUCCESS|FAIL [source-id]",
  },
  {
    name: "importfile",
    arity: -5,
    flags: ["admin"],
    summary: "Sent by a migrating node to its target: a file's checksums, size, bytes, or its placing.",
    syntax: "slot path SUMS|SIZE|WRITE|SYNC|PLACE [arg ...]",
  },
];

/** A parsed CLUSTERX command, checked with Kvrocks's argument rules before it runs. */
type ClusterxRequest =
  | { sub: "version" | "myid" }
  | { sub: "setnodeid"; id: string }
  | { sub: "setnodes"; text: string; version: number; force: boolean }
  | { sub: "setslot"; ranges: [number, number][]; id: string; version: number }
  | { sub: "migrate"; slot: number; target: string; sync: boolean; timeout: number }
  | { sub: "import" | "importfile" };

/** A signed 64-bit decimal, as Kvrocks's ParseInt<int64_t> reads it, or null. */
function int64(a: ArgList, i: number): number | null {
  const text = argString(a, i);
  return /^[-+]?[0-9]{1,18}$/.test(text) ? Number(text) : null;
}

/** `CLUSTERX SETSLOT`'s slots: space-separated slots and `start-end` ranges. */
function slotList(text: string): [number, number][] {
  const fields = text.split(" ").filter((f) => f !== "");
  if (fields.length === 0) throw new CommandError(ClusterErrors.noSlots);
  return fields.map((f) =>
    f.includes("-") ? parseSlotRange(f, ClusterErrors.invalidSlotRange(f)) : parseSlotRange(f, ClusterErrors.invalidSlotId),
  );
}

function parseClusterx(a: ArgList): ClusterxRequest {
  const sub = argString(a, 1).toLowerCase();
  if (sub === "migrate") {
    if (a.argc < 4 || a.argc > 6) throw new CommandError(ClusterErrors.wrongArity);
    const slot = int64(a, 2);
    if (slot === null) throw new CommandError(Errors.notAnInteger);
    let sync = false;
    let timeout = 0;
    if (a.argc >= 5) {
      if (argIs(a, 4, "async")) {
        if (a.argc === 6) throw new CommandError(ClusterErrors.asyncTimeout);
      } else if (argIs(a, 4, "sync")) {
        sync = true;
        if (a.argc === 6) {
          const t = int64(a, 5);
          if (t === null) throw new CommandError(Errors.timeoutNotInteger);
          if (t < 0) throw new CommandError(Errors.timeoutNegative);
          timeout = t;
        }
      } else throw new CommandError(ClusterErrors.invalidSyncFlag);
    }
    return { sub, slot, target: argString(a, 3), sync, timeout };
  }
  if ((sub === "import" && a.argc >= 4) || (sub === "importfile" && a.argc >= 5)) return { sub };
  if (a.argc === 2 && (sub === "version" || sub === "myid")) return { sub };
  if (sub === "setnodeid" && a.argc === 3 && argString(a, 2).length === 40) return { sub, id: argString(a, 2) };
  if (sub === "setnodes" && a.argc >= 4) {
    const version = int64(a, 3);
    if (version === null) throw new CommandError(ClusterErrors.invalidVersionArg);
    if (a.argc === 4) return { sub, text: argString(a, 2), version, force: false };
    if (a.argc === 5 && argIs(a, 4, "force")) return { sub, text: argString(a, 2), version, force: true };
    throw new CommandError(ClusterErrors.invalidSetnodesOptions);
  }
  if (sub === "setslot" && a.argc === 6) {
    const ranges = slotList(argString(a, 2));
    if (!argIs(a, 3, "node")) throw new CommandError(ClusterErrors.invalidSetslotOptions);
    if (argString(a, 4).length !== 40) throw new CommandError(ClusterErrors.invalidNodeIdArg);
    const version = int64(a, 5);
    if (version === null) throw new CommandError(Errors.notAnInteger);
    if (version < 0) throw new CommandError(ClusterErrors.invalidVersionArg);
    return { sub, ranges, id: argString(a, 4), version };
  }
  throw new CommandError(ClusterErrors.clusterxUsage);
}

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
          w.array(CLUSTER_HELP.length);
          for (const line of CLUSTER_HELP) w.simple(line);
      }
    },
  },
  {
    name: "clusterx",
    arity: -2,
    route: "main",
    flags: ["admin"],
    keys: null,
    group: "cluster",
    since: "0.1.0",
    summary: "Sets the cluster topology, as a controller does with Apache Kvrocks (SETNODES, SETSLOT, SETNODEID, VERSION, MYID).",
    complexity: "O(N) where N is the number of slots",
    syntax: "subcommand [arg ...]",
    subcommands: CLUSTERX_SUBCOMMANDS,
    run(ctx, conn, a, w, seq) {
      const request = parseClusterx(a);
      if (ctx.cluster === null) throw new CommandError(ClusterErrors.notEnabled);
      const cluster = ctx.cluster;
      switch (request.sub) {
        case "migrate": {
          if (cluster.node(request.target) === undefined) throw new CommandError(MigrationErrors.noSuchTarget);
          if (!(request.slot >= 0 && request.slot < SLOT_COUNT)) throw new CommandError(ClusterErrors.slotOutOfRange);
          const done = startMigration(cluster, request.slot, request.target);
          if (!request.sync) {
            done.catch(() => {});
            break;
          }
          let answered = false;
          const answer = (write: (w: ReplyWriter) => void) => {
            if (answered) return;
            answered = true;
            ctx.replyTo(conn, seq, write);
          };
          done.then(
            () => answer((r) => r.simple("OK")),
            (e: unknown) => answer((r) => r.error(e instanceof CommandError ? e.reply : MigrationErrors.failed((e as Error).message))),
          );
          if (request.timeout > 0) {
            const why = MigrationErrors.timedOut(request.slot, request.timeout);
            setTimeout(() => answer((r) => r.error(why)), request.timeout * 1000);
          }
          return DEFERRED;
        }
        case "import":
          importCommand(cluster, conn, a, w);
          return;
        case "importfile":
          importFileCommand(cluster, conn, a, w);
          return;
        case "version":
          w.bulk(String(cluster.version));
          return;
        case "myid":
          w.bulk(cluster.myId);
          return;
        case "setnodeid":
          if (!isNodeId(request.id)) throw new CommandError(ClusterErrors.invalidNodeId);
          cluster.setNodeId(request.id);
          break;
        case "setnodes":
          cluster.setNodes(request.text, request.version, request.force);
          break;
        case "setslot":
          cluster.setSlot(request.ranges, request.id, request.version);
          break;
      }
      w.simple("OK");
    },
  },
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
