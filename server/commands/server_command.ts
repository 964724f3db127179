/**
 * The shape of a command the main thread runs itself (connection and server commands).
 */
import type { ArgList } from "../../core/args.ts";
import type { CommandSpec } from "../../core/command_spec.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { Connection } from "../connection.ts";
import type { ServerContext } from "../context.ts";

/** Returned by a command that will answer later with `ctx.replyTo(conn, seq, ...)`. */
export const DEFERRED = Symbol("deferred");

export interface ServerCommand extends CommandSpec {
  route: "main";
  /** Writes the reply into `w`, or returns DEFERRED and replies to `seq` later. */
  run(ctx: ServerContext, conn: Connection, a: ArgList, w: ReplyWriter, seq: number): undefined | typeof DEFERRED;
}
