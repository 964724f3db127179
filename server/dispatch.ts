/**
 * Dispatch: finds a command in the table, applies the checks every command gets (arity, AUTH),
 * runs main-thread commands, and routes shard commands to the shard(s) that own their keys.
 */
import type { ArgList } from "../core/args.ts";
import { Args, argInt, argString, copyArgs } from "../core/args.ts";
import { shardCommandId } from "../core/commands.ts";
import { CommandError, ConnectionErrors, Errors } from "../core/errors.ts";
import type { ShardCommand } from "../core/shard.ts";
import { keysByShard } from "../core/slots.ts";
import type { ShardPool } from "../workers/shard_pool.ts";
import type { BindingCatalog } from "./catalog.ts";
import { clusterRefusal } from "./cluster/redirect.ts";
import type { Command } from "./command_table.ts";
import { COMMAND_INDEX } from "./command_table.ts";
import { commandShard } from "../core/command_spec.ts";
import type { ServerCommand } from "./commands/server_command.ts";
import { DEFERRED } from "./commands/server_command.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import type { Config } from "./config.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import type { MergeKind } from "./merge.ts";
import { mergeReplies } from "./merge.ts";
import { mergeScanPages, ScanHops } from "./scan_pages.ts";
import type { Turn } from "./turn.ts";

export class Dispatcher {
  constructor(
    private readonly ctx: ServerContext,
    private readonly config: Config,
    private readonly pool: ShardPool,
    private readonly turn: Turn,
    private readonly catalog: BindingCatalog,
  ) {}

  /** Runs or routes the command in `a` for `conn`. */
  execute(conn: Connection, a: ArgList): void {
    if (conn.scanInFlight && conn.owed > 0) {
      // A SCAN is still going from shard to shard: nothing may overtake it on a shard it has not reached.
      conn.held = copyArgs(a);
      return;
    }
    const command = COMMAND_INDEX.find(a, 0);
    if (conn.tx !== null && command?.inMulti !== "runs-now") {
      // Inside MULTI: queued, or refused (and EXEC will answer EXECABORT).
      const reply = this.ctx.transactions.queue(conn, command, a, this.check(conn, command, a));
      this.turn.replyNow(conn, (w) => (reply === null ? w.simple("QUEUED") : w.error(reply)));
      return;
    }
    const refusal = this.check(conn, command, a);
    if (refusal !== null) {
      this.ctx.commandStats.rejected(command, a, refusal);
      this.turn.replyNow(conn, (w) => w.error(refusal));
      return;
    }
    if (this.ctx.pause.holds(conn, command!)) {
      // CLIENT PAUSE: the command waits, and the input behind it, until the pause ends.
      conn.held = copyArgs(a);
      return;
    }
    if (command!.name === "exec" && this.ctx.transactions.mustWait(conn)) {
      // A transaction that binds files waits for the earlier replies, as MMAP does (see route).
      conn.held = copyArgs(a);
      return;
    }
    if (command!.route === "main") this.runOnMain(conn, command!, a);
    else {
      this.route(conn, command!, a);
      // A held MMAP is counted when it runs.
      if (conn.held === null) this.ctx.commandStats.routed(conn, command!, a);
    }
  }

  /** The error that refuses `command` before it runs, or null. */
  private check(conn: Connection, command: Command | undefined, a: ArgList): string | null {
    if (command === undefined) {
      conn.lastCommand = "unknown";
      return unknownCommandError(a);
    }
    conn.lastCommand = command.name;
    if (!conn.authenticated && !command.flags.includes("no_auth")) return ConnectionErrors.noAuth;
    if (command.arity > 0 ? a.argc !== command.arity : a.argc < -command.arity) return Errors.wrongArity(command.name);
    if (conn.monitoring && (command.flags.includes("readonly") || command.flags.includes("write"))) return Errors.monitorKeyspace;
    return this.ctx.cluster === null ? null : clusterRefusal(this.ctx.cluster, conn, command, a);
  }

  /** Runs a main-thread command of a transaction into `w` (EXEC's array); none of them answers later. */
  runInto(conn: Connection, command: ServerCommand, a: ArgList, w: ReplyWriter): void {
    const mark = w.length;
    const started = this.ctx.commandStats.started();
    try {
      if (command.run(this.ctx, conn, a, w, 0) === DEFERRED) throw new Error(`${command.name} cannot run inside a transaction`);
    } catch (e) {
      w.length = mark;
      w.error(e instanceof CommandError ? e.reply : Errors.internal(e));
    }
    this.ctx.commandStats.ran(conn, command, a, started, w, mark);
  }

  /** Counts a shard command that a transaction runs (its time is counted by its worker), and shows it to MONITOR. */
  countInto(conn: Connection, command: ShardCommand, a: ArgList): void {
    this.ctx.commandStats.routed(conn, command, a);
  }

  private runOnMain(conn: Connection, command: Command & { route: "main" }, a: ArgList): void {
    const seq = conn.nextSeq++;
    const w = this.turn.writerFor(conn, seq);
    const mark = w.length;
    const started = this.ctx.commandStats.started();
    try {
      if (command.run(this.ctx, conn, a, w, seq) === DEFERRED) {
        this.ctx.commandStats.ran(conn, command, a, started, null, mark);
        return;
      }
    } catch (e) {
      w.length = mark;
      w.error(e instanceof CommandError ? e.reply : Errors.internal(e));
    }
    this.ctx.commandStats.ran(conn, command, a, started, w, mark);
    this.turn.finish(conn, seq, w);
  }

  /** Sends a shard command to the shard(s) it concerns. */
  private route(conn: Connection, command: ShardCommand, a: ArgList): void {
    const shards = this.config.workers;
    const id = shardCommandId.get(command)!;
    const proto = conn.out.proto;
    switch (command.route) {
      case "key": {
        if (command.name === "mmap") {
          // MMAP runs only after this connection's earlier commands are answered, so the
          // bindings it checks against include what they did (a pipelined DEL, say).
          if (conn.owed > 0) {
            conn.held = copyArgs(a);
            return;
          }
          const refusal = this.catalog.checkMmap(conn, a, conn.nextSeq);
          if (refusal !== null) {
            this.turn.replyNow(conn, (w) => w.error(refusal));
            return;
          }
        }
        this.pool.send(commandShard(command, a, shards), conn.id, conn.nextSeq++, proto, id, a, null);
        return;
      }
      case "scan": {
        const cursor = argInt(a, 1);
        if (!(cursor >= 0)) {
          this.turn.replyNow(conn, (w) => w.error(Errors.invalidCursor));
          return;
        }
        const seq = conn.nextSeq++;
        if (shards > 1) {
          // A page that ends its shard goes on into the next one (see scan_pages.ts).
          const hops = new ScanHops(a, shards);
          const more = (part: Uint8Array) => {
            const hop = hops.nextHop(part);
            if (hop !== null) this.pool.send(hop.shard, conn.id, seq, conn.out.proto, id, Args.of(...hop.args), null);
            return hop !== null;
          };
          const merge = (parts: Uint8Array[]) => {
            conn.scanInFlight = false;
            return mergeScanPages(parts);
          };
          conn.scanInFlight = true;
          conn.parked.set(seq, { remaining: 1, parts: [], merge, more });
        }
        this.pool.send(cursor % shards, conn.id, seq, proto, id, a, null);
        return;
      }
      case "keys": {
        // Each shard gets the command's name and its own keys.
        const byShard = keysByShard(a, 1, shards);
        for (const indices of byShard.values()) indices.unshift(0);
        const seq = conn.nextSeq++;
        if (byShard.size > 1)
          conn.parked.set(seq, { remaining: byShard.size, parts: [], merge: (parts) => mergeReplies(command.merge ?? "sum", parts) });
        for (const [s, indices] of byShard) this.pool.send(s, conn.id, seq, proto, id, a, byShard.size > 1 ? indices : null);
        return;
      }
      case "all":
        this.sendToAllShards(conn, conn.nextSeq++, command, a, command.merge ?? "ok");
        return;
    }
  }

  /** Sends `command` to every shard as one reply for `seq`, merged by `merge`. */
  private sendToAllShards(conn: Connection, seq: number, command: ShardCommand, a: ArgList, merge: MergeKind): void {
    const shards = this.config.workers;
    conn.parked.set(seq, { remaining: shards, parts: [], merge: (parts) => mergeReplies(merge, parts) });
    const id = shardCommandId.get(command)!;
    for (let s = 0; s < shards; s++) this.pool.send(s, conn.id, seq, conn.out.proto, id, a, null);
  }
}

/** Redis's unknown-command error: the name, then the first arguments quoted, up to 128 bytes in all. */
function unknownCommandError(a: ArgList): string {
  const clean = (s: string) => s.replace(/[\r\n]/g, " ");
  let args = "";
  for (let i = 1; i < a.argc && args.length < 128; i++) args += `'${clean(argString(a, i)).slice(0, 128 - args.length)}' `;
  return Errors.unknownCommand(clean(argString(a, 0)).slice(0, 128), args);
}
