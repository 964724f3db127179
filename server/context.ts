/**
 * What connection and server commands may see of the server: a narrow view, so that a command
 * file depends on this interface and never on the server class (no import cycle).
 */
import type { CommandCatalog } from "../core/command_spec.ts";
import type { Config } from "./config.ts";
import type { Connection } from "./connection.ts";
import type { Stats } from "./stats.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import type { FsyncPolicy } from "../workers/wire.ts";

export interface ServerContext {
  readonly config: Config;
  readonly stats: Stats;
  readonly connections: ReadonlyMap<number, Connection>;
  /** Every command clients may send (COMMAND). */
  readonly commands: CommandCatalog;
  /** A random id for this run (INFO run_id). */
  readonly runId: string;
  /** Absolute real path of the data directory. */
  readonly dataDir: string;
  /** The port listened on. */
  readonly port: number;
  /** The bindings registry's file (INFO persistence). */
  readonly registryFile: string;
  /** Number of registered bindings. */
  bindingCount(): number;
  /** Per shard: commands sent, in flight, and whether its worker is alive. */
  shardStats(): { sent: number; inFlight: number; alive: boolean }[];
  setFsync(policy: FsyncPolicy): void;
  /** Sets the idle timeout (CONFIG SET timeout). */
  setTimeoutSeconds(seconds: number): void;
  /** Kills a shard's worker (DEBUG CRASH-SHARD). */
  crashShard(shard: number): void;
  /** Flushes every file and the registry, then calls `done` (SAVE, BGSAVE, SHUTDOWN). */
  flushEverything(done: (error: string | null) => void): void;
  /** Stops accepting clients, flushes everything and exits with `code`. */
  shutdown(code: number, reason: string): void;
  /** Writes the reply for `seq` of `conn` later (for a command that returned DEFERRED). */
  replyTo(conn: Connection, seq: number, write: (w: ReplyWriter) => void): void;
}
