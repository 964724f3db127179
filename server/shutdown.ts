/**
 * Saving everything (SAVE, BGSAVE, and shutdown's final flush: every shard syncs its dirty files,
 * then the registry is synced) and the exit once every client has taken its last replies.
 */
import { Args } from "../core/args.ts";
import { SHARD_COMMAND_INDEX, shardCommandId } from "../core/commands.ts";
import type { ShardPool } from "../workers/shard_pool.ts";
import type { BindingCatalog } from "./catalog.ts";
import type { Connection } from "./connection.ts";
import { log } from "./log.ts";
import type { Stats } from "./stats.ts";

/** How long shutdown waits for clients to read the replies they are owed. */
const SHUTDOWN_DRAIN_MS = 5000;
/** How long shutdown waits for the shards to confirm their final flush. */
export const SHUTDOWN_FLUSH_MS = 30_000;

const FLUSH_ARGS = Args.of("_flush");
/** Sequence number of the server's own `_flush` requests (its `_bind` restores use 0). */
export const SERVER_FLUSH_SEQ = 1;

/** Flushes every file and the registry on request; the `_flush` replies come back on connection 0. */
export class FlushAll {
  private readonly waiters = new FlushWaiters();

  constructor(
    private readonly workers: number,
    private readonly pool: ShardPool,
    private readonly catalog: BindingCatalog,
    private readonly stats: Stats,
    private readonly registryFile: string,
  ) {}

  /**
   * Flushes every file (each shard syncs its dirty files) and the registry, then calls `done`.
   * Used by SAVE, BGSAVE and SHUTDOWN; other commands go on meanwhile.
   */
  run(done: (error: string | null) => void): void {
    let left = this.workers;
    let failure: string | null = null;
    this.waiters.push((reply) => {
      // The error's text without its code: SAVE puts "ERR " back in front.
      if (reply.startsWith("-")) failure = reply.slice(1).trim().replace(/^ERR /, "");
      if (--left === 0) {
        if (!this.catalog.registry.syncIfNeeded()) failure ??= `cannot write ${this.registryFile}`;
        this.stats.lastSave = Math.floor(Date.now() / 1000);
        done(failure);
      }
    }, this.workers);
    const flush = SHARD_COMMAND_INDEX.find(FLUSH_ARGS, 0)!;
    for (let s = 0; s < this.workers; s++) this.pool.send(s, 0, SERVER_FLUSH_SEQ, 2, shardCommandId.get(flush)!, FLUSH_ARGS, null);
    this.pool.publishAll();
  }

  /** A shard's reply to a `_flush` (sequence SERVER_FLUSH_SEQ). */
  take(reply: string): void {
    this.waiters.take(reply);
  }
}

/** Callbacks waiting for `_flush` replies, which come back on connection 0. */
class FlushWaiters {
  private readonly queue: { cb: (reply: string) => void; left: number }[] = [];
  push(cb: (reply: string) => void, count: number): void {
    this.queue.push({ cb, left: count });
  }
  /** Hands one `_flush` reply to the oldest waiter. */
  take(reply: string): boolean {
    const head = this.queue[0];
    if (head === undefined) return false;
    if (--head.left === 0) this.queue.shift();
    head.cb(reply);
    return true;
  }
}

/**
 * Exits once every client has taken the replies it is owed (each connection is closed as it
 * drains), or after SHUTDOWN_DRAIN_MS if a client stops reading. No reply is produced any more:
 * the shards have answered everything sent before the final flush.
 */
export function exitAfterReplies(connections: ReadonlyMap<number, Connection>, code: number): void {
  const deadline = Date.now() + SHUTDOWN_DRAIN_MS;
  const poll = () => {
    let pending = 0;
    for (const conn of [...connections.values()]) {
      conn.flush(Number.MAX_SAFE_INTEGER);
      if (conn.unsent > 0) pending++;
      else conn.socket.end();
    }
    if (pending > 0 && Date.now() < deadline) {
      setTimeout(poll, 10);
      return;
    }
    if (pending > 0) log("warning", `${pending} clients did not read their last replies`);
    log("notice", "mmapd is now ready to exit, bye bye...");
    // Give the sockets a moment to hand over the last bytes.
    setTimeout(() => process.exit(code), 20);
  };
  poll();
}
