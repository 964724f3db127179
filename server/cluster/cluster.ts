/**
 * This node's part in a cluster: the topology it was given (restored from the data directory at
 * start, replaced by CLUSTERX SETNODES / SETSLOT), which node it is in it, which slots it
 * therefore serves, and the slots CLUSTERX MIGRATE moved since (with their files) until the
 * controller's next topology says so itself. Redirections are redirect.ts's job; the commands
 * are commands/cluster.ts (clients) and commands/clusterx.ts (controllers); moving a slot is
 * migration.ts (source) and import.ts (target).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ClusterErrors, CommandError } from "../../core/errors.ts";
import type { BindingRecord } from "../../core/registry.ts";
import type { Config } from "../config.ts";
import type { Connection } from "../connection.ts";
import { log } from "../log.ts";
import { keySlot, unplace } from "./slot_files.ts";
import type { ClusterNodeInfo } from "./topology.ts";
import { TOPOLOGY_FILE, Topology, formatTopologyFile, parseTopologyFile, writeFileDurably } from "./topology.ts";

/** What the cluster needs of the server: its port, its bindings, and the shards' help to unbind. */
export interface ClusterHost {
  /** The port listened on. */
  port(): number;
  /** Every registered binding, by key (latin1 strings). */
  bindings(): ReadonlyMap<string, BindingRecord>;
  /** Forgets a binding at start, before the shards bind anything (recovery of a migration). */
  forgetAtStart(key: string): void;
  /** Unbinds keys through their shards (as DEL: files untouched); resolves once the change is durable. */
  unbind(keys: readonly string[]): Promise<void>;
  /** Resolves once every command already sent to the shards has run and its files are synced. */
  drain(): Promise<void>;
}

/** How the last slot migration from this node went (CLUSTER INFO's migrating_state). */
export interface MigrationStatus {
  slot: number;
  target: string;
  state: "start" | "success" | "fail";
  error: string;
}

/** How the last slot import into this node went (CLUSTER INFO's import_state). */
export interface ImportStatus {
  slot: number;
  state: "start" | "success" | "error";
}

/**
 * What survives a crash of a migration in progress, in `cluster-migration.json`: the slots this
 * node is importing (and the files it has placed for them), and the slot whose hand-over to its
 * target this node, as source, has asked for but not yet seen confirmed.
 */
export interface MigrationJournal {
  importing: { slot: number; source: string; placed: string[] }[];
  committing: { slot: number; target: string } | null;
}

const JOURNAL_FILE = "cluster-migration.json";

export class Cluster {
  /** The topology in force: the controller's, with the slots moved since applied (null before one was given). */
  topology: Topology | null = null;
  /** The topology as the controller (or the file) gave it. */
  private base: Topology | null = null;
  /** Slot -> id of the node serving it since a CLUSTERX MIGRATE, until the controller's next topology. */
  private moved = new Map<number, string>();
  /** This node's id; "" until set or found in a topology by address. */
  myId = "";
  /** This node's index in the topology's nodes, or -1 when it is not in it. */
  myIndex = -1;
  /** The slot whose writes answer TRYAGAIN while its migration ends; -1 for none. */
  writeForbidden = -1;
  /**
   * The slot being handed over to its target: every command on it answers TRYAGAIN until the
   * target confirms (then MOVED) or refuses, so that no client reads here what the target may
   * already have changed. -1 for none.
   */
  handingOver = -1;
  /** The slot each importing connection brings in (its MMAPs pass the redirection check). */
  readonly importing = new WeakMap<Connection, number>();
  migration: MigrationStatus | null = null;
  import: ImportStatus | null = null;
  journal: MigrationJournal = { importing: [], committing: null };

  constructor(
    readonly config: Config,
    readonly dataDir: string,
    readonly host: ClusterHost,
  ) {}

  /** The topology's version; -1 before there is one (as Kvrocks's CLUSTERX VERSION). */
  get version(): number {
    return this.topology?.version ?? -1;
  }

  /** This node in the topology, or undefined. */
  get myself(): ClusterNodeInfo | undefined {
    return this.myIndex >= 0 ? this.topology!.nodes[this.myIndex] : undefined;
  }

  /**
   * At start (the data directory is locked, the shards not started): the topology saved in the
   * data directory, or the one of `--cluster-config` when it is newer than the saved one, or of
   * the same version but different (edited by hand). `--cluster-node-id` names this node. Then
   * what a crash interrupted is settled (see `recoverAtStart`). Throws on a bad file: starting
   * without the topology would redirect every client wrongly.
   */
  load(): void {
    const savedPath = path.join(this.dataDir, TOPOLOGY_FILE);
    const saved = fs.existsSync(savedPath) ? parseTopologyFile(fs.readFileSync(savedPath, "utf8"), savedPath) : null;
    const given =
      this.config.clusterConfig !== "" ? parseTopologyFile(readConfigFile(this.config.clusterConfig), this.config.clusterConfig) : null;
    let chosen = saved;
    if (given !== null && given.topology !== null) {
      const savedTopology = saved?.topology ?? null;
      if (savedTopology !== null && saved!.version > given.version) {
        log(
          "notice",
          `Cluster: ${this.config.clusterConfig} has version ${given.version}; keeping the newer topology (version ${saved!.version}) pushed at run time`,
        );
      } else if (savedTopology === null || saved!.version < given.version || savedTopology.format() !== given.topology.format())
        chosen = given;
    }
    const myId = this.config.clusterNodeId || given?.myId || saved?.myId || "";
    this.journal = this.readJournal();
    if (chosen?.topology == null) {
      this.myId = myId;
      log("notice", "Cluster: no topology yet; keyed commands answer CLUSTERDOWN until CLUSTERX SETNODES gives one");
    } else {
      const moved = chosen === saved ? saved.moved : new Map<number, string>();
      this.apply(chosen.topology, myId === "" ? this.findMyself(chosen.topology) : myId, moved);
      if (chosen !== saved || this.myId !== saved?.myId) this.save();
      log(
        "notice",
        `Cluster: topology version ${this.version}, ${this.topology!.nodes.length} nodes; this node is ${this.describeMyself()}`,
      );
    }
    this.recoverAtStart();
  }

  /**
   * CLUSTERX SETNODES: the whole topology at `version`. An older version is refused; the same
   * version again is accepted when it is the same topology (a controller retrying) and refused
   * when it differs, so two topologies never share a version. FORCE takes any version, and finds
   * this node by address again. The slots moved by migrations are the controller's to state now.
   */
  setNodes(text: string, version: number, force: boolean): void {
    if (version < 0) throw new CommandError(ClusterErrors.invalidVersion);
    const topology = Topology.parse(text, version);
    if (!force && this.base !== null) {
      if (version < this.base.version) throw new CommandError(ClusterErrors.invalidVersion);
      if (version === this.base.version) {
        if (topology.format() === this.base.format()) return;
        throw new CommandError(ClusterErrors.invalidVersion);
      }
    }
    let myId = this.myId;
    if (myId === "" || force) myId = this.findMyself(topology) || myId;
    this.commit(topology, myId, new Map());
  }

  /** CLUSTERX SETNODEID. */
  setNodeId(id: string): void {
    if (this.base === null) {
      writeFileDurably(this.dataDir, TOPOLOGY_FILE, `id ${id}\n`);
      this.myId = id;
      return;
    }
    this.commit(this.base, id, this.moved);
  }

  /**
   * CLUSTERX SETSLOT: moves `ranges` to node `id`. The version must be exactly one more than the
   * current one, since the change is relative to the topology the controller knew (Kvrocks).
   */
  setSlot(ranges: readonly [number, number][], id: string, version: number): void {
    if (this.base === null || version <= 0 || version !== this.base.version + 1) throw new CommandError(ClusterErrors.invalidVersion);
    const moved = new Map([...this.moved].filter(([slot]) => !ranges.some(([s, e]) => slot >= s && slot <= e)));
    this.commit(this.base.assign(ranges, id, version), this.myId, moved);
  }

  /** A migration moved `slot` to node `id` (this node, on the target): durable before it returns. */
  slotMoved(slot: number, id: string): void {
    const moved = new Map(this.moved);
    moved.set(slot, id);
    this.commit(this.base!, this.myId, moved);
  }

  /** The node serving `slot`, or undefined. */
  ownerOf(slot: number): ClusterNodeInfo | undefined {
    const index = this.topology?.owners[slot] ?? -1;
    return index >= 0 ? this.topology!.nodes[index] : undefined;
  }

  /** The node with id `id`, or undefined. */
  node(id: string): ClusterNodeInfo | undefined {
    const index = this.topology?.indexOf(id) ?? -1;
    return index >= 0 ? this.topology!.nodes[index] : undefined;
  }

  /** True when this node serves `slot`. */
  serves(slot: number): boolean {
    return this.myIndex >= 0 && this.topology!.owners[slot] === this.myIndex;
  }

  /** The bound keys (latin1 strings) whose slot is `slot`. */
  keysInSlot(slot: number, limit = Number.POSITIVE_INFINITY): string[] {
    const out: string[] = [];
    for (const key of this.host.bindings().keys()) {
      if (out.length >= limit) break;
      if (keySlot(key) === slot) out.push(key);
    }
    return out;
  }

  /** Replaces the migration journal, durably. */
  writeJournal(journal: MigrationJournal): void {
    writeFileDurably(this.dataDir, JOURNAL_FILE, JSON.stringify(journal) + "\n");
    this.journal = journal;
  }

  /** Saves, then applies: a topology that cannot be made durable is not taken. */
  private commit(base: Topology, myId: string, moved: Map<number, string>): void {
    const before = { base: this.base, topology: this.topology, moved: this.moved, myId: this.myId, myIndex: this.myIndex };
    this.apply(base, myId, moved);
    try {
      this.save();
    } catch (e) {
      Object.assign(this, before);
      throw new CommandError(ClusterErrors.saveFailed((e as Error).message));
    }
    log("notice", `Cluster: topology version ${this.version}; this node is ${this.describeMyself()}`);
  }

  private apply(base: Topology, myId: string, moved: Map<number, string>): void {
    let topology = base;
    for (const [slot, id] of moved) if (topology.indexOf(id) >= 0) topology = topology.assign([[slot, slot]], id, base.version);
    this.base = base;
    this.topology = topology;
    this.moved = moved;
    this.myId = myId;
    this.myIndex = myId === "" ? -1 : topology.indexOf(myId);
  }

  private save(): void {
    writeFileDurably(this.dataDir, TOPOLOGY_FILE, formatTopologyFile(this.base!, this.myId, this.moved));
  }

  private readJournal(): MigrationJournal {
    const file = path.join(this.dataDir, JOURNAL_FILE);
    if (!fs.existsSync(file)) return { importing: [], committing: null };
    return JSON.parse(fs.readFileSync(file, "utf8")) as MigrationJournal;
  }

  /**
   * Settles what a crash left of migrations, before the shards bind anything: keys of slots this
   * node handed over are forgotten (their files stay); an import that did not finish is undone
   * (its keys forgotten, the files it placed put back among the received bytes, so that the next
   * attempt resumes); a hand-over this node asked for but did not see confirmed keeps the slot's
   * writes waiting until the target says how it ended (migration.ts).
   */
  private recoverAtStart(): void {
    for (const [slot, id] of this.moved) {
      if (id === this.myId) continue;
      for (const key of this.keysInSlot(slot)) this.host.forgetAtStart(key);
    }
    const journal = this.journal;
    for (const entry of journal.importing) {
      if (this.serves(entry.slot)) continue;
      log("warning", `Cluster: the import of slot ${entry.slot} from ${entry.source} did not finish; undoing it`);
      for (const key of this.keysInSlot(entry.slot)) this.host.forgetAtStart(key);
      for (const placed of entry.placed) unplace(this.dataDir, entry.slot, placed);
    }
    if (journal.committing !== null) this.writeForbidden = this.handingOver = journal.committing.slot;
    if (journal.importing.length > 0) this.writeJournal({ importing: [], committing: journal.committing });
  }

  private describeMyself(): string {
    const me = this.myself;
    if (me === undefined)
      return this.myId === "" ? "not in it (no node id, and none of its nodes has this node's address)" : `${this.myId}, not in it`;
    const slots = this.topology!.rangesByNode()[this.myIndex];
    return `${me.id} at ${me.host}:${me.port}, slots ${slots.length > 0 ? slots.join(" ") : "none"}`;
  }

  /**
   * The id of the node in `topology` with this node's address (Kvrocks finds itself this way when
   * no id was set): the announced port, or the one listened on, and the announced address, or the
   * bound one (any local address when bound to all).
   */
  private findMyself(topology: Topology): string {
    const port = this.config.clusterAnnouncePort || this.host.port();
    const hosts = new Set<string>();
    if (this.config.clusterAnnounceIp !== "") hosts.add(this.config.clusterAnnounceIp);
    else if (this.config.bind === "0.0.0.0" || this.config.bind === "::") {
      for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) hosts.add(a.address);
      hosts.add("localhost");
    } else {
      hosts.add(this.config.bind);
      if (this.config.bind === "127.0.0.1" || this.config.bind === "::1") hosts.add("localhost");
    }
    return topology.nodes.find((n) => n.port === port && hosts.has(n.host))?.id ?? "";
  }
}

function readConfigFile(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read cluster config file '${file}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
}
