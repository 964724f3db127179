/**
 * Redis Cluster's redirections, checked before a command runs: the keys of one command (or of one
 * transaction) must share a hash slot (CROSSSLOT), and that slot must be this node's (else MOVED
 * to the node that serves it, or CLUSTERDOWN when none does). Commands without keys (KEYS, SCAN,
 * DBSIZE, FLUSHALL, PING ...) are per node, as in Redis Cluster, and are never redirected. While a
 * slot's migration ends, writes to it answer TRYAGAIN (reads go on, but for the few milliseconds
 * of the hand-over itself).
 */
import path from "node:path";
import type { ArgList } from "../../core/args.ts";
import { argString } from "../../core/args.ts";
import type { CommandSpec } from "../../core/command_spec.ts";
import { keyPositions } from "../../core/command_spec.ts";
import { ClusterErrors } from "../../core/errors.ts";
import { argSlot } from "../../core/slots.ts";
import type { Connection } from "../connection.ts";
import type { Cluster } from "./cluster.ts";
import { STAGING_DIR } from "./slot_files.ts";
import { TOPOLOGY_FILE } from "./topology.ts";

/** No slot: a command without keys. */
const NO_SLOT = -1;
/** Keys in more than one slot. */
const CROSS_SLOT = -2;

/** The one slot of the command's keys, NO_SLOT or CROSS_SLOT. */
function commandSlot(command: CommandSpec, a: ArgList): number {
  const keys = command.keys;
  if (keys === null) return NO_SLOT;
  // The usual case, one key at a fixed place, without making a list of positions.
  if (keys.find === undefined && keys.first === keys.last) return a.argc > keys.first ? argSlot(a, keys.first) : NO_SLOT;
  let slot = NO_SLOT;
  for (const i of keyPositions(command, a)) {
    const s = argSlot(a, i);
    if (slot === NO_SLOT) slot = s;
    else if (s !== slot) return CROSS_SLOT;
  }
  return slot;
}

/**
 * Why this node does not run a command on `slot` for `conn` (MOVED, CLUSTERDOWN, or TRYAGAIN for
 * a write while the slot's migration ends), or null when it does. A connection importing the slot
 * (the source of a migration, binding its keys here) passes before the slot is this node's.
 */
function slotRefusal(cluster: Cluster, conn: Connection, slot: number, writes: boolean): string | null {
  const topology = cluster.topology;
  if (topology === null) return ClusterErrors.notInitialized;
  const owner = topology.owners[slot];
  if (owner === cluster.myIndex && owner >= 0) {
    return slot === cluster.handingOver || (writes && slot === cluster.writeForbidden) ? ClusterErrors.tryAgain : null;
  }
  if (cluster.importing.get(conn) === slot) return null;
  if (owner < 0) return ClusterErrors.slotNotServed;
  const node = topology.nodes[owner];
  return ClusterErrors.moved(slot, node.host, node.port);
}

/**
 * The error that keeps `command` from running on this node (CROSSSLOT, MOVED, CLUSTERDOWN, or an
 * MMAP of an absolute path), or null when it runs here. Called by dispatch for every command in
 * cluster mode.
 */
export function clusterRefusal(cluster: Cluster, conn: Connection, command: CommandSpec, a: ArgList): string | null {
  const slot = commandSlot(command, a);
  if (slot === NO_SLOT) return null;
  if (slot === CROSS_SLOT) return ClusterErrors.crossSlot;
  const refusal = slotRefusal(cluster, conn, slot, command.flags.includes("write"));
  return refusal ?? (command.name === "mmap" && a.argc > 2 ? mmapPathRefusal(argString(a, 2)) : null);
}

/**
 * MMAP's paths in cluster mode: relative, so that a binding can be recreated under another node's
 * data directory when its slot moves, and never the cluster's own files.
 */
function mmapPathRefusal(given: string): string | null {
  if (path.isAbsolute(given)) return ClusterErrors.absolutePath;
  const normal = path.normalize(given);
  if (normal === TOPOLOGY_FILE || normal.startsWith(TOPOLOGY_FILE + ".") || normal.startsWith("cluster-migration.json"))
    return ClusterErrors.topologyFile;
  if (normal === STAGING_DIR || normal.startsWith(STAGING_DIR + "/")) return ClusterErrors.stagingFile;
  return null;
}

/**
 * The error that keeps a transaction from running on this node: every key of every command must
 * be in one slot that this node serves (Redis checks the queued commands together at EXEC).
 * Null when it may run.
 * @public for EXEC (#8).
 */
export function transactionRefusal(
  cluster: Cluster,
  conn: Connection,
  commands: readonly { command: CommandSpec; args: ArgList }[],
): string | null {
  let slot = NO_SLOT;
  let writes = false;
  for (const { command, args } of commands) {
    const s = commandSlot(command, args);
    if (s === CROSS_SLOT || (s !== NO_SLOT && slot !== NO_SLOT && s !== slot)) return ClusterErrors.crossSlot;
    if (s !== NO_SLOT) slot = s;
    if (command.flags.includes("write")) writes = true;
  }
  return slot === NO_SLOT ? null : slotRefusal(cluster, conn, slot, writes);
}
