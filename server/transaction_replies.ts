/**
 * EXEC's reply put together on the main thread: the shards' `_EXEC` parts taken apart, and each
 * queued command's reply written in the order the commands were queued (server/transactions.ts
 * sends the parts).
 */
import type { ArgList } from "../core/args.ts";
import { EXEC_ABORTED, EXEC_CANCELLED } from "../core/commands/transaction.ts";
import { TransactionErrors } from "../core/errors.ts";
import { replyEnd } from "../protocol/reply_scan.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import type { ServerCommand } from "./commands/server_command.ts";
import type { Connection } from "./connection.ts";
import type { MergeKind } from "./merge.ts";
import { mergeReplies } from "./merge.ts";
import type { QueuedCommand, QueuedTransaction } from "./transaction_queue.ts";

/** Where one queued command's reply comes from once the shards answer. */
export type Source =
  | { kind: "main"; command: ServerCommand; args: QueuedCommand }
  | { kind: "error"; text: string }
  | { kind: "shard"; parts: { shard: number; index: number }[]; merge: MergeKind };

/** Runs a main-thread command into `w` (errors become error replies), counted as it would be alone. */
export type RunOnMain = (conn: Connection, command: ServerCommand, a: ArgList, w: ReplyWriter) => void;

/** The replies of a transaction no shard takes part in. */
export const NO_REPLIES = new Map<number, Uint8Array[]>();

const encoder = new TextEncoder();

/** EXEC's array: each queued command's reply, in the order the commands were queued. */
export function writeReplies(
  runOnMain: RunOnMain,
  conn: Connection,
  w: ReplyWriter,
  tx: QueuedTransaction,
  sources: Source[],
  replies: Map<number, Uint8Array[]>,
): void {
  w.array(sources.length);
  for (const source of sources) {
    if (source.kind === "main") runOnMain(conn, source.command, tx.view(source.args), w);
    else if (source.kind === "error") w.error(source.text);
    else {
      const parts = source.parts.map(
        ({ shard, index }) => replies.get(shard)?.[index] ?? encoder.encode(`-${TransactionErrors.cutShort}\r\n`),
      );
      const reply = parts.length === 1 ? parts[0] : mergeReplies(source.merge, parts);
      w.raw(reply, 0, reply.length);
    }
  }
}

/** The integer of the `:n` reply at `at` (n >= 0), and where the reply ends. */
function integerAt(part: Uint8Array, at: number): { n: number; end: number } {
  let n = 0;
  let p = at + 1;
  for (; part[p] !== 13; p++) n = n * 10 + (part[p] - 48);
  return { n, end: p + 2 };
}

/**
 * Takes the shards' `_EXEC` replies apart: per shard, its commands' replies in order, or
 * "aborted" when a watched key changed. A part that is an error (its worker died) or was
 * cancelled leaves that shard out, so its commands answer that they were cut short.
 */
export function splitParts(parts: Uint8Array[]): Map<number, Uint8Array[]> | "aborted" {
  const out = new Map<number, Uint8Array[]>();
  for (const part of parts) {
    if (part[0] !== 42 /* * */) continue;
    const shard = integerAt(part, part.indexOf(10) + 1);
    const status = integerAt(part, shard.end);
    if (status.n === EXEC_ABORTED) return "aborted";
    if (status.n === EXEC_CANCELLED) continue;
    const replies: Uint8Array[] = [];
    for (let p = status.end; p < part.length; ) {
      const end = replyEnd(part, p);
      replies.push(part.subarray(p, end));
      p = end;
    }
    out.set(shard.n, replies);
  }
  return out;
}
