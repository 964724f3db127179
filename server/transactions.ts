/**
 * Transactions on the main thread: MULTI queues a connection's commands, EXEC sends each shard
 * that holds one of their keys (or a key the connection WATCHes) its part as one `_EXEC`
 * request, and puts the parts' replies back together in the order the commands were queued.
 * The shards run their parts as one step (see core/commands/transaction.ts for the barriers).
 *
 * Commands the main thread runs itself (PING, INFO, CLIENT ...) run when the shards' parts have
 * answered, so a transaction that WATCH refuses runs nothing at all.
 */
import type { ArgList } from "../core/args.ts";
import type { CommandSpec } from "../core/command_spec.ts";
import { commandShard } from "../core/command_spec.ts";
import { Args, argInt, argView } from "../core/args.ts";
import { shardCommandId, SHARD_COMMAND_INDEX } from "../core/commands.ts";
import { BARRIER_WORDS, CANCELLED, EXEC_DIRECT, EXEC_PARTS } from "../core/commands/transaction.ts";
import { Errors, TransactionErrors } from "../core/errors.ts";
import type { ShardCommand } from "../core/shard.ts";
import { keysByShard } from "../core/slots.ts";
import { ReplyWriter } from "../protocol/reply_writer.ts";
import { TRANSACTION_SLOTS, type ShardPool } from "../workers/shard_pool.ts";
import type { BindingCatalog } from "./catalog.ts";
import type { Cluster } from "./cluster/cluster.ts";
import { transactionRefusal } from "./cluster/redirect.ts";
import type { Command } from "./command_table.ts";
import type { Config } from "./config.ts";
import type { Connection } from "./connection.ts";
import { NO_REPLIES, type RunOnMain, type Source, splitParts, writeReplies } from "./transaction_replies.ts";
import { type QueuedCommand, QueuedTransaction } from "./transaction_queue.ts";

/** Sequence number of the server's WATCH and UNWATCH requests, whose replies nobody waits for. */
export const WATCH_SEQ = 2;

const encoder = new TextEncoder();

export class Transactions {
  /** Barrier slots in use, with their shards (cancelled if one of those workers dies). */
  private readonly slotsInUse = new Map<number, Set<number>>();
  private nextSlot = 0;
  private readonly execId = shardCommandId.get(SHARD_COMMAND_INDEX.find(Args.of("_exec"), 0)!)!;
  private readonly watchId = shardCommandId.get(SHARD_COMMAND_INDEX.find(Args.of("_watch"), 0)!)!;
  private readonly unwatchId = shardCommandId.get(SHARD_COMMAND_INDEX.find(Args.of("_unwatch"), 0)!)!;
  /** Where EXEC's reply is put together (the connection copies it). */
  private readonly scratch = new ReplyWriter(4096);

  constructor(
    private readonly config: Config,
    /** This node's cluster state in cluster mode, else null. */
    private readonly cluster: Cluster | null,
    private readonly pool: ShardPool,
    private readonly catalog: BindingCatalog,
    private readonly runOnMain: RunOnMain,
    /** Counts a shard command the transaction runs and shows it to MONITOR, as dispatch does for one alone. */
    private readonly countShardCommand: (conn: Connection, command: ShardCommand, a: ArgList) => void,
  ) {}

  multi(conn: Connection): string | null {
    if (conn.tx !== null) return TransactionErrors.nested;
    conn.tx = conn.spareTx ?? new QueuedTransaction();
    conn.spareTx = null;
    return null;
  }

  /**
   * Queues a command given inside MULTI, or refuses it (`refusal`: what dispatch would have
   * answered); a refusal makes EXEC answer EXECABORT. Returns the error to reply, or null for QUEUED.
   */
  queue(conn: Connection, command: CommandSpec | undefined, a: ArgList, refusal: string | null): string | null {
    const tx = conn.tx!;
    if (refusal === null && command!.flags.includes("no_multi")) refusal = TransactionErrors.notAllowed;
    if (refusal !== null) {
      tx.failed = true;
      return refusal;
    }
    const shardCommand = (command as Command).route === "main" ? undefined : (command as ShardCommand);
    tx.queue(command!, shardCommand === undefined ? -1 : shardCommandId.get(shardCommand)!, a);
    return null;
  }

  discard(conn: Connection): string | null {
    if (conn.tx === null) return TransactionErrors.discardWithoutMulti;
    recycle(conn, conn.tx);
    conn.tx = null;
    this.unwatch(conn);
    return null;
  }

  /** WATCH: each key's shard starts watching it for this connection, in dispatch order. */
  watch(conn: Connection, a: ArgList): string | null {
    if (conn.tx !== null) return TransactionErrors.watchInMulti;
    const byShard = keysByShard(a, 1, this.config.workers);
    const client = encoder.encode(String(conn.id));
    for (const [s, indices] of byShard) {
      const args = Args.of("_watch", client, ...indices.map((i) => argView(a, i)));
      this.pool.send(s, 0, WATCH_SEQ, 2, this.watchId, args, null);
      (conn.watchedShards ??= new Set()).add(s);
    }
    return null;
  }

  /** Forgets every key the connection watches (UNWATCH, DISCARD, RESET, disconnect). */
  unwatch(conn: Connection): void {
    if (conn.watchedShards === null) return;
    const args = Args.of("_unwatch", String(conn.id));
    for (const s of conn.watchedShards) this.pool.send(s, 0, WATCH_SEQ, 2, this.unwatchId, args, null);
    conn.watchedShards = null;
  }

  /** True when EXEC must wait for the connection's earlier replies (it binds files, as MMAP does). */
  mustWait(conn: Connection): boolean {
    return conn.owed > 0 && conn.tx !== null && !conn.tx.failed && conn.tx.commands.some((q) => q.command.name === "mmap");
  }

  /**
   * EXEC: answers now (EXECABORT, or a transaction with no shard to ask) into `w` and returns
   * true, or sends the shards their parts and returns false: the reply to `seq` comes when
   * they have answered.
   */
  exec(conn: Connection, w: ReplyWriter, seq: number): true | string | false {
    const tx = conn.tx;
    if (tx === null) return TransactionErrors.execWithoutMulti;
    conn.tx = null;
    if (tx.failed) {
      recycle(conn, tx);
      this.unwatch(conn);
      return TransactionErrors.execAbort;
    }
    // In cluster mode the whole transaction must be on one slot this node serves now (a slot
    // may have started moving since the commands were queued).
    const redirect =
      this.cluster === null
        ? null
        : transactionRefusal(
            this.cluster,
            conn,
            tx.commands.map((q) => ({ command: q.command, args: tx.view(q) })),
          );
    if (redirect !== null) {
      this.unwatch(conn);
      return redirect;
    }
    const watchedShards = conn.watchedShards;
    conn.watchedShards = null;
    for (const q of tx.commands) {
      const command = q.command as Command;
      if (command.route !== "main") this.countShardCommand(conn, command, tx.peek(q));
    }
    const direct = this.directShard(tx, watchedShards);
    if (direct >= 0) {
      // The usual case: every command on one shard, which answers EXEC itself.
      tx.setHeader(0, "_exec");
      tx.setHeader(1, conn.id);
      tx.setHeader(2, 0);
      tx.setHeader(3, 0);
      tx.setHeader(4, 0);
      tx.setHeader(5, EXEC_DIRECT);
      this.pool.send(direct, conn.id, seq, conn.out.proto, this.execId, tx.args, null);
      // The request is a copy: the next MULTI may reuse the buffers.
      recycle(conn, tx);
      return false;
    }
    return this.execAcrossShards(conn, tx, w, seq, watchedShards);
  }

  /** The shard that can run the whole transaction and answer EXEC itself, or -1. */
  private directShard(tx: QueuedTransaction, watchedShards: Set<number> | null): number {
    let shard = -1;
    for (const q of tx.commands) {
      const command = q.command as Command;
      if (command.route !== "key" || command.name === "mmap") return -1;
      const s = commandShard(command, tx.peek(q), this.config.workers);
      if (shard >= 0 && s !== shard) return -1;
      shard = s;
    }
    if (watchedShards !== null) {
      for (const s of watchedShards) {
        if (shard >= 0 && s !== shard) return -1;
        shard = s;
      }
    }
    return shard;
  }

  /** EXEC of a transaction with commands on several shards, or ones the main thread runs. */
  private execAcrossShards(
    conn: Connection,
    tx: QueuedTransaction,
    w: ReplyWriter,
    seq: number,
    watchedShards: Set<number> | null,
  ): true | string | false {
    const shards = this.config.workers;
    /** Per shard: the indices of its arguments in `tx.args` after the header. */
    const perShard = new Map<number, number[]>();
    /** Shards that get a write: when two or more do, they finish together (the second barrier). */
    const writers = new Set<number>();
    const sources: Source[] = [];
    const counts = new Map<number, number>();
    const partOf = (s: number, command: CommandSpec, indices: number[]) => {
      let list = perShard.get(s);
      if (list === undefined) perShard.set(s, (list = []));
      for (const i of indices) list.push(i);
      if (command.flags.includes("write")) writers.add(s);
      const index = counts.get(s) ?? 0;
      counts.set(s, index + 1);
      return { shard: s, index };
    };
    const whole = (q: QueuedCommand) => Array.from({ length: q.argc + 2 }, (_, k) => q.at + k);
    for (const q of tx.commands) {
      const command = q.command as Command;
      const a = tx.view(q);
      if (command.route === "main") {
        sources.push({ kind: "main", command, args: q });
        continue;
      }
      if (command.name === "mmap") {
        const refusal = this.catalog.checkMmap(conn, a, seq);
        if (refusal !== null) {
          sources.push({ kind: "error", text: refusal });
          continue;
        }
      }
      switch (command.route) {
        case "key":
          sources.push({ kind: "shard", parts: [partOf(commandShard(command, a, shards), command, whole(q))], merge: "ok" });
          break;
        case "scan": {
          const cursor = argInt(a, 1);
          if (!(cursor >= 0)) sources.push({ kind: "error", text: Errors.invalidCursor });
          else sources.push({ kind: "shard", parts: [partOf(cursor % shards, command, whole(q))], merge: "ok" });
          break;
        }
        case "keys": {
          const byShard = keysByShard(a, 1, shards);
          const parts = [...byShard].map(([s, positions]) => {
            const keys = positions.map((i) => q.at + 2 + i);
            // Each shard gets the command with its own keys: an id and a count of its own.
            const at = tx.pushNumber(shardCommandId.get(command)!);
            tx.pushNumber(keys.length + 1);
            return partOf(s, command, [at, at + 1, q.at + 2, ...keys]);
          });
          sources.push({ kind: "shard", parts, merge: command.merge ?? "sum" });
          break;
        }
        case "all":
          sources.push({
            kind: "shard",
            parts: Array.from({ length: shards }, (_, s) => partOf(s, command, whole(q))),
            merge: command.merge ?? "ok",
          });
          break;
      }
    }
    // Shards where the connection WATCHes keys take part: they check them.
    const watched = watchedShards !== null;
    for (const s of watchedShards ?? []) if (!perShard.has(s)) perShard.set(s, []);
    if (perShard.size === 0) {
      writeReplies(this.runOnMain, conn, w, tx, sources, NO_REPLIES);
      return true;
    }
    // The first barrier only matters when a WATCH may abort (every shard must agree first); the
    // second only when writes land on two shards or more (they become visible together).
    const checkers = watched && perShard.size > 1 ? perShard.size : 0;
    const finishers = writers.size > 1 ? writers.size : 0;
    let slot = 0;
    if (checkers > 0 || finishers > 0) {
      const free = this.takeSlot(new Set(perShard.keys()));
      if (free < 0) return TransactionErrors.tooMany;
      slot = free;
    }
    tx.setHeader(0, "_exec");
    tx.setHeader(1, conn.id);
    tx.setHeader(2, slot);
    tx.setHeader(3, checkers);
    tx.setHeader(4, finishers);
    tx.setHeader(5, EXEC_PARTS);
    const notFinishing = tx.pushNumber(0);
    conn.parked.set(seq, {
      remaining: perShard.size,
      parts: [],
      merge: (parts, proto) => {
        if (checkers > 0 || finishers > 0) this.slotsInUse.delete(slot);
        const out = this.scratch;
        out.reset();
        out.proto = proto;
        const replies = splitParts(parts);
        if (replies === "aborted") out.nilArray();
        else writeReplies(this.runOnMain, conn, out, tx, sources, replies);
        // The reply is made: nothing refers to the transaction any more.
        if (conn.spareTx === null) recycle(conn, tx);
        return out.buf.subarray(0, out.length);
      },
    });
    for (const [s, indices] of perShard) {
      const header = [0, 1, 2, 3, writers.has(s) ? 4 : notFinishing, 5];
      this.pool.send(s, conn.id, seq, conn.out.proto, this.execId, tx.args, header.concat(indices));
    }
    return false;
  }

  /** A free barrier slot, zeroed and recorded with its shards; -1 when every slot is in use. */
  private takeSlot(shards: Set<number>): number {
    for (let tries = 0; tries < TRANSACTION_SLOTS; tries++) {
      const slot = this.nextSlot;
      this.nextSlot = (this.nextSlot + 1) % TRANSACTION_SLOTS;
      if (this.slotsInUse.has(slot)) continue;
      this.pool.barriers.fill(0, slot * BARRIER_WORDS, (slot + 1) * BARRIER_WORDS);
      this.slotsInUse.set(slot, shards);
      return slot;
    }
    return -1;
  }

  /** A shard's worker died: transactions waiting for it at a barrier stop waiting. */
  shardDied(shard: number): void {
    const barriers = this.pool.barriers;
    for (const [slot, shards] of this.slotsInUse) {
      if (!shards.has(shard)) continue;
      Atomics.store(barriers, slot * BARRIER_WORDS + CANCELLED, 1);
      for (let word = 0; word < BARRIER_WORDS; word++) Atomics.notify(barriers, slot * BARRIER_WORDS + word);
    }
  }
}

/**
 * Keeps a finished transaction for the connection's next MULTI. Only one that nothing refers to
 * any more: not one whose EXEC went to several shards, whose reply is put together from it later.
 */
function recycle(conn: Connection, tx: QueuedTransaction): void {
  tx.reset();
  conn.spareTx = tx;
}
