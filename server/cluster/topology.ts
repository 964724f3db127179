/**
 * The cluster topology: which node serves which hash slots. As in Apache Kvrocks, nodes do not
 * gossip: a controller (kvrocks-controller, an operator's script, or a static file) pushes the
 * whole topology with a version, and a node keeps what it was given, durably.
 *
 * The text is Kvrocks's `CLUSTERX SETNODES` text, one line per node:
 *
 *   <id> <ip> <port> master - <slot or start-end> [<slot or start-end> ...]
 *
 * A node's file in its data directory (`cluster-nodes.conf`) holds the same lines after a
 * `version N` and an `id <this node's id>` line, each node line prefixed with `node ` as Kvrocks
 * writes its nodes.conf, then a `moved <slot> <node id>` line per slot that CLUSTERX MIGRATE moved
 * since the controller's last topology; `--cluster-config` reads either form. The file is replaced whole
 * (temporary file, fsync, rename, fsync of the directory), so a crash leaves the old topology or
 * the new one, never a mix.
 */
import fs from "node:fs";
import path from "node:path";
import { ClusterErrors, CommandError } from "../../core/errors.ts";
import { SLOT_COUNT } from "../../core/slots.ts";

/** Node ids are 40 characters (Kvrocks checks the length only; generated ids are hex). */
const NODE_ID_LENGTH = 40;

/** The topology's file in the data directory. */
export const TOPOLOGY_FILE = "cluster-nodes.conf";

export interface ClusterNodeInfo {
  id: string;
  host: string;
  port: number;
}

/** True when `id` can be a node id. */
export function isNodeId(id: string): boolean {
  return id.length === NODE_ID_LENGTH && /^[\x21-\x7e]+$/.test(id);
}

/** A random node id: 40 hex digits, as Redis and kvrocks-controller make them. */
export function randomNodeId(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(NODE_ID_LENGTH / 2))).toString("hex");
}

/** Who serves each slot, at one version. Never changed in place: a change makes a new Topology. */
export class Topology {
  private readonly byId: Map<string, number>;

  constructor(
    readonly version: number,
    readonly nodes: readonly ClusterNodeInfo[],
    /** Per slot, the index in `nodes` of the node serving it, or -1. */
    readonly owners: Int16Array,
  ) {
    this.byId = new Map(nodes.map((n, i) => [n.id, i]));
  }

  /**
   * Parses SETNODES text with Kvrocks's rules and texts. mmapd has no replicas, so every node
   * must be a master.
   */
  static parse(text: string, version: number): Topology {
    const nodes: ClusterNodeInfo[] = [];
    const owners = new Int16Array(SLOT_COUNT).fill(-1);
    const lines = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "");
    if (lines.length === 0) throw new CommandError(ClusterErrors.invalidNodesInfo);
    const seen = new Set<string>();
    for (const line of lines) {
      const fields = line.split(/\s+/);
      if (fields.length < 5) throw new CommandError(ClusterErrors.invalidNodesInfo);
      const [id, host, portText, role, masterId] = fields;
      if (!isNodeId(id) || seen.has(id)) throw new CommandError(ClusterErrors.invalidNodeId);
      seen.add(id);
      const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : -1;
      if (!(port >= 0 && port <= 65535)) throw new CommandError(ClusterErrors.invalidPort);
      // Clients connect to this address: an unspecified one would send them nowhere.
      if (host === "0.0.0.0" || host === "::") throw new CommandError(ClusterErrors.unspecifiedHost(host));
      if (role.toLowerCase() !== "master") throw new CommandError(ClusterErrors.invalidRole);
      if (masterId !== "-") throw new CommandError(ClusterErrors.invalidNodeId);
      const index = nodes.length;
      nodes.push({ id, host, port });
      for (const field of fields.slice(5)) {
        const [start, end] = parseSlotRange(field, ClusterErrors.slotOutOfRange);
        for (let s = start; s <= end; s++) {
          if (owners[s] !== -1) throw new CommandError(ClusterErrors.slotOverlapped);
          owners[s] = index;
        }
      }
    }
    return new Topology(version, nodes, owners);
  }

  /** The index of node `id` in `nodes`, or -1. */
  indexOf(id: string): number {
    return this.byId.get(id) ?? -1;
  }

  /** CLUSTERX SETSLOT: `ranges` given to node `id`, at `version`. */
  assign(ranges: readonly [number, number][], id: string, version: number): Topology {
    const index = this.indexOf(id);
    if (index < 0) throw new CommandError(ClusterErrors.noSuchNode);
    const owners = this.owners.slice();
    for (const [start, end] of ranges) owners.fill(index, start, end + 1);
    return new Topology(version, this.nodes, owners);
  }

  /** Runs of consecutive slots with the same node: [start, end, node index], in slot order. */
  slotRuns(): [number, number, number][] {
    const runs: [number, number, number][] = [];
    for (let s = 0; s < SLOT_COUNT; ) {
      const owner = this.owners[s];
      let e = s;
      while (e + 1 < SLOT_COUNT && this.owners[e + 1] === owner) e++;
      if (owner >= 0) runs.push([s, e, owner]);
      s = e + 1;
    }
    return runs;
  }

  /** The slot ranges of each node, as SETNODES writes them (`0-5460`, `7`), by node index. */
  rangesByNode(): string[][] {
    const out: string[][] = this.nodes.map(() => []);
    for (const [s, e, owner] of this.slotRuns()) out[owner].push(s === e ? String(s) : `${s}-${e}`);
    return out;
  }

  /** Number of slots that have a node. */
  assignedSlots(): number {
    let n = 0;
    for (let s = 0; s < SLOT_COUNT; s++) if (this.owners[s] >= 0) n++;
    return n;
  }

  /** The SETNODES text of this topology. */
  format(): string {
    const ranges = this.rangesByNode();
    return this.nodes.map((n, i) => [n.id, n.host, n.port, "master", "-", ...ranges[i]].join(" ") + "\n").join("");
  }
}

/**
 * One `slot` or `start-end` field, as Kvrocks reads them. `error` is the refusal's reply (SETNODES
 * and SETSLOT word it differently).
 */
export function parseSlotRange(field: string, error: string): [number, number] {
  const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(field);
  if (m === null) throw new CommandError(error);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start >= SLOT_COUNT || end >= SLOT_COUNT || start > end) throw new CommandError(error);
  return [start, end];
}

/** What a topology file holds: the topology (null when it has no node line), its version, the id line, and the slots moved since. */
export interface TopologyFile {
  topology: Topology | null;
  version: number;
  myId: string;
  /** Slot -> id of the node serving it now (CLUSTERX MIGRATE), over what the topology says. */
  moved: Map<number, string>;
}

/**
 * Reads a topology file: optional `version N` and `id <node id>` lines, then node lines, with or
 * without Kvrocks's `node ` prefix; `#` starts a comment. A file without a version line is
 * version 0. Throws an Error naming the file (and line) on a bad file.
 */
export function parseTopologyFile(text: string, name: string): TopologyFile {
  let version = 0;
  let myId = "";
  const moved = new Map<number, string>();
  const nodeLines: string[] = [];
  text.split("\n").forEach((raw, n) => {
    const line = raw.replace(/#.*/, "").trim();
    if (line === "") return;
    const [word, ...rest] = line.split(/\s+/);
    const value = rest.join(" ");
    if (word === "version") {
      if (!/^[0-9]+$/.test(value)) throw new Error(`${name}:${n + 1}: ${withoutCode(ClusterErrors.invalidVersion)}`);
      version = Number(value);
    } else if (word === "id") {
      if (!isNodeId(value)) throw new Error(`${name}:${n + 1}: ${withoutCode(ClusterErrors.invalidNodeId)}`);
      myId = value;
    } else if (word === "moved") {
      const [slot, id] = rest;
      if (!/^[0-9]+$/.test(slot) || Number(slot) >= SLOT_COUNT || !isNodeId(id ?? "")) throw new Error(`${name}:${n + 1}: bad moved line`);
      moved.set(Number(slot), id);
    } else nodeLines.push(word === "node" ? value : line);
  });
  if (nodeLines.length === 0) return { topology: null, version, myId, moved };
  try {
    return { topology: Topology.parse(nodeLines.join("\n"), version), version, myId, moved };
  } catch (e) {
    throw new Error(`${name}: ${e instanceof CommandError ? withoutCode(e.reply) : (e as Error).message}`);
  }
}

/** An error reply's text without its `ERR ` code, for a log line. */
const withoutCode = (reply: string) => reply.replace(/^ERR /, "");

/** The text of this node's topology file. */
export function formatTopologyFile(topology: Topology, myId: string, moved: ReadonlyMap<number, string> = new Map()): string {
  let text = `version ${topology.version}\n`;
  if (myId !== "") text += `id ${myId}\n`;
  for (const line of topology.format().split("\n")) if (line !== "") text += `node ${line}\n`;
  for (const [slot, id] of moved) text += `moved ${slot} ${id}\n`;
  return text;
}

/**
 * Replaces `dir/name` with `text` so that a crash leaves the old file or the new one: written to a
 * temporary file, synced, renamed over the old one, and the directory synced.
 */
export function writeFileDurably(dir: string, name: string, text: string): void {
  const target = path.join(dir, name);
  const temp = target + ".tmp";
  const fd = fs.openSync(temp, "w", 0o644);
  try {
    fs.writeSync(fd, Buffer.from(text, "utf8"));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, target);
  const dirFd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}

/**
 * 16384 slots split evenly over `count` nodes, as `redis-cli --cluster create` splits them
 * (three nodes: 0-5460, 5461-10922, 10923-16383).
 */
export function evenSlotRanges(count: number): [number, number][] {
  const perNode = SLOT_COUNT / count;
  const out: [number, number][] = [];
  let first = 0;
  for (let i = 0; i < count; i++) {
    let last = i === count - 1 ? SLOT_COUNT - 1 : Math.round(i * perNode + perNode - 1);
    if (last < first) last = first;
    out.push([first, last]);
    first = last + 1;
  }
  return out;
}
