/**
 * CLUSTERX: the topology a controller pushes (VERSION, MYID, SETNODEID, SETNODES, SETSLOT, with
 * Apache Kvrocks's arguments and replies), and slot migration (MIGRATE, and the IMPORT and
 * IMPORTFILE a migrating node sends its target).
 */
import type { ArgList } from "../../core/args.ts";
import { argIs, argString } from "../../core/args.ts";
import type { SubcommandSpec } from "../../core/command_spec.ts";
import { ClusterErrors, CommandError, Errors, MigrationErrors } from "../../core/errors.ts";
import { SLOT_COUNT } from "../../core/slots.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import { importCommand, importFileCommand } from "../cluster/import.ts";
import { startMigration } from "../cluster/migration.ts";
import { isNodeId, parseSlotRange } from "../cluster/topology.ts";
import type { ServerCommand } from "./server_command.ts";
import { DEFERRED } from "./server_command.ts";

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

export const clusterxCommands: ServerCommand[] = [
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
];
