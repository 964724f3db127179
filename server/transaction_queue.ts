/**
 * A connection's transaction between MULTI and EXEC: its queued commands' arguments laid out in
 * one growing buffer, already in the shape of the `_EXEC` request that carries them to a shard
 * (see core/commands/transaction.ts): six header arguments, then for each command its wire id,
 * its argument count and its arguments. So EXEC of a transaction on one shard sends this buffer
 * as it is, and one across shards sends each shard its arguments by index.
 */
import { Args, type ArgList } from "../core/args.ts";
import type { CommandSpec } from "../core/command_spec.ts";
import { copyBytes } from "../protocol/bytes.ts";

/** `_EXEC client slot checkers finishers form`, filled in by EXEC. */
const HEADER_ARGS = 6;

/** A queued command: where its id argument is (its count follows, then its arguments). */
export interface QueuedCommand {
  readonly command: CommandSpec;
  readonly at: number;
  readonly argc: number;
}

export class QueuedTransaction {
  /** Every argument so far; argc counts them all. */
  readonly args = new Args();
  private used = 0;
  readonly commands: QueuedCommand[] = [];
  /** A command was refused while queueing: EXEC answers EXECABORT. */
  failed = false;

  /** What `peek` returns: one object, refilled for each queued command (made on first use). */
  private scratchView: Args | null = null;

  constructor() {
    this.args.buf = new Uint8Array(512);
    this.args.reserve(64);
    this.reset();
  }

  /** Empties the transaction, keeping its buffers: a connection reuses it for its next MULTI. */
  reset(): void {
    this.args.argc = HEADER_ARGS;
    this.used = 0;
    this.commands.length = 0;
    this.failed = false;
  }

  /** Queues `a` as `command`, whose wire id is `id` (-1: the main thread runs it). */
  queue(command: CommandSpec, id: number, a: ArgList): void {
    const at = this.pushNumber(id);
    this.pushNumber(a.argc);
    for (let i = 0; i < a.argc; i++) this.push(a.buf, a.argStart[i], a.argEnd[i]);
    this.commands.push({ command, at, argc: a.argc });
  }

  /** A queued command's own arguments (a view of its own, valid until more is pushed). */
  view(q: QueuedCommand): ArgList {
    const a = this.args;
    return {
      buf: a.buf,
      argc: q.argc,
      argStart: a.argStart.subarray(q.at + 2, q.at + 2 + q.argc),
      argEnd: a.argEnd.subarray(q.at + 2, q.at + 2 + q.argc),
    };
  }

  /** As `view`, in one object reused by the next call: for a use that ends before it (no allocation). */
  peek(q: QueuedCommand): ArgList {
    const a = this.args;
    const v = (this.scratchView ??= new Args());
    v.reserve(q.argc);
    v.buf = a.buf;
    v.argc = q.argc;
    for (let i = 0; i < q.argc; i++) {
      v.argStart[i] = a.argStart[q.at + 2 + i];
      v.argEnd[i] = a.argEnd[q.at + 2 + i];
    }
    return v;
  }

  /** Sets header argument `i` (0 to HEADER_ARGS - 1). */
  setHeader(i: number, value: string | number): void {
    const text = String(value);
    const start = this.reserveBytes(text.length);
    for (let k = 0; k < text.length; k++) this.args.buf[start + k] = text.charCodeAt(k);
    this.args.argStart[i] = start;
    this.args.argEnd[i] = start + text.length;
  }

  /** Appends a decimal number as one more argument; returns its index. */
  pushNumber(n: number): number {
    const text = String(n);
    const start = this.reserveBytes(text.length);
    for (let k = 0; k < text.length; k++) this.args.buf[start + k] = text.charCodeAt(k);
    return this.pushRange(start, start + text.length);
  }

  /** Appends src[from, to) as one more argument; returns its index. */
  private push(src: Uint8Array, from: number, to: number): number {
    const start = this.reserveBytes(to - from);
    copyBytes(this.args.buf, start, src, from, to);
    return this.pushRange(start, start + to - from);
  }

  private pushRange(start: number, end: number): number {
    const a = this.args;
    const i = a.argc;
    a.reserve(i + 1);
    a.argStart[i] = start;
    a.argEnd[i] = end;
    a.argc = i + 1;
    return i;
  }

  /** Room for `n` more bytes; returns where they go. */
  private reserveBytes(n: number): number {
    const a = this.args;
    if (this.used + n > a.buf.length) {
      const grown = new Uint8Array(Math.max(2 * a.buf.length, this.used + n));
      grown.set(a.buf.subarray(0, this.used));
      a.buf = grown;
    }
    const start = this.used;
    this.used += n;
    return start;
  }
}
