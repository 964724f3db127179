/**
 * The shape of a command the main thread runs itself (connection and server commands).
 */
import type { ArgList } from "../../core/args.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { Connection } from "../connection.ts";
import type { MmapdServer } from "../server.ts";

/** Returned by a command that will answer later with `server.replyTo(conn, seq, ...)`. */
export const DEFERRED = Symbol("deferred");

export interface ServerCommand {
  /** Lowercase name. */
  name: string;
  /** Redis arity: n exactly, -n at least. */
  arity: number;
  /** Writes the reply into `w`, or returns DEFERRED and replies to `seq` later. */
  run(server: MmapdServer, conn: Connection, a: ArgList, w: ReplyWriter, seq: number): void | typeof DEFERRED;
}
