/**
 * What connection and server commands may see of the server: a narrow view, so that a command
 * file depends on this interface and never on the server class (no import cycle).
 */
import type { ArgList } from "../core/args.ts";
import type { CommandCatalog, CommandSpec } from "../core/command_spec.ts";
import type { Cluster } from "./cluster/cluster.ts";
import type { ClientPause } from "./client_pause.ts";
import type { CommandStats } from "./command_stats.ts";
import type { Config, LiveServer } from "./config.ts";
import type { Connection } from "./connection.ts";
import type { Monitors } from "./monitor.ts";
import type { SlowLog } from "./slowlog.ts";
import type { Stats } from "./stats.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";

/** MULTI, EXEC, DISCARD, WATCH and UNWATCH (server/transactions.ts). Errors are returned as their reply text. */
interface TransactionControl {
  multi(conn: Connection): string | null;
  discard(conn: Connection): string | null;
  watch(conn: Connection, a: ArgList): string | null;
  unwatch(conn: Connection): void;
  /** Queues a command given inside MULTI; returns the error to reply (`refusal`, or why it cannot be queued), or null for QUEUED. */
  queue(conn: Connection, command: CommandSpec | undefined, a: ArgList, refusal: string | null): string | null;
  /** True when EXEC must wait for the connection's earlier replies (its transaction binds files). */
  mustWait(conn: Connection): boolean;
  /** Writes EXEC's reply into `w` (true), refuses it (the error text), or answers `seq` later (false). */
  exec(conn: Connection, w: ReplyWriter, seq: number): true | string | false;
}

export interface ServerContext extends LiveServer {
  readonly config: Config;
  readonly stats: Stats;
  readonly transactions: TransactionControl;
  /** Per-command counters (INFO commandstats, errorstats, latencystats). */
  readonly commandStats: CommandStats;
  readonly slowlog: SlowLog;
  /** Connections in MONITOR mode. */
  readonly monitors: Monitors;
  /** CLIENT PAUSE. */
  readonly pause: ClientPause;
  /** CONFIG RESETSTAT: every counter INFO shows starts again from zero. */
  resetStats(): void;
  /** Closes another client's connection now (CLIENT KILL). */
  closeClient(conn: Connection): void;
  readonly connections: ReadonlyMap<number, Connection>;
  /** Every command clients may send (COMMAND). */
  readonly commands: CommandCatalog;
  /** A random id for this run (INFO run_id). */
  readonly runId: string;
  /** The bindings registry's file (INFO persistence). */
  readonly registryFile: string;
  /** Number of registered bindings. */
  bindingCount(): number;
  /** This node's cluster state in cluster mode (`--cluster-enabled yes`), else null. */
  readonly cluster: Cluster | null;
  /** Per shard: commands sent, in flight, and whether its worker is alive. */
  shardStats(): { sent: number; inFlight: number; alive: boolean }[];
  /** Kills a shard's worker (DEBUG CRASH-SHARD). */
  crashShard(shard: number): void;
  /** Flushes every file and the registry, then calls `done` (SAVE, BGSAVE, SHUTDOWN). */
  flushEverything(done: (error: string | null) => void): void;
  /** Stops accepting clients, flushes everything and exits with `code`. */
  shutdown(code: number, reason: string): void;
  /** Writes the reply for `seq` of `conn` later (for a command that returned DEFERRED). */
  replyTo(conn: Connection, seq: number, write: (w: ReplyWriter) => void): void;
}
