/**
 * Big replies, produced a chunk at a time.
 *
 * A VALL, VRANGE or VMGET over many values does not build its whole reply: the command writes the
 * reply's header and leaves a ReplyStream on the shard (`Shard.replyRange`, `startedStream`);
 * whoever runs the shard then takes one chunk at a time (`produce`), between other commands. The shard worker sends each chunk
 * as it is made, so the first bytes leave at once and no buffer holds the whole reply.
 *
 * While a key is streamed, its binding must not change under the stream: `StreamGate` says which
 * commands must wait until the key's streams end (those naming the key, and those that may unbind
 * any key), and keeps them in arrival order. A client that is gone cancels its streams; one that
 * reads slowly holds them (no chunk is made while nothing waits for them), so a slow reader costs
 * a few chunks of memory, not its whole reply. Run in-process (no worker), a stream is produced
 * whole right away, so the reply is the same bytes either way.
 */
import type { ArgList } from "./args.ts";
import { keyString } from "./args.ts";
import { keyPositions } from "./command_spec.ts";
import { PAGE_SIZE } from "./libc.ts";
import { changedSizeError } from "./mapped_file.ts";
import type { CommandSpec } from "./command_spec.ts";
import type { MappedFile } from "./mapped_file.ts";
import type { ValueType } from "./value_types.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";

/** What a stream needs of a binding (core/shard.ts's Binding; stated here so this file does not import the shard). */
interface Binding {
  readonly key: string;
  readonly file: MappedFile;
  readonly type: ValueType;
  readonly width: number;
  readonly displayPath: string;
}

/** What the gate needs of a shard command. */
type ShardCommand = CommandSpec & { route: string };

/** How a streamed range is written: one reply per value, or one bulk string of the raw bytes. */
export type StreamForm = "values" | "raw";

/** About how many bytes each chunk of a stream holds. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

/** Values per text chunk: a double takes up to about 30 bytes with its framing. */
const TEXT_CHUNK_VALUES = 32 * 1024;

/** Replies expected to be bigger than this are streamed. */
export const STREAM_THRESHOLD_BYTES = 1024 * 1024;

/** The rest of one big reply: values [next, end) of a binding. */
export class ReplyStream {
  /** Who the reply is for (set by the worker that sends it). */
  conn = 0;
  seq = 0;
  proto: 2 | 3 = 2;
  /** Set when the client is gone: the stream ends without producing more. */
  cancelled = false;
  /** Set while the client has many bytes unsent: no chunk is made unless a command waits for the stream. */
  held = false;

  constructor(
    readonly binding: Binding,
    public next: number,
    readonly end: number,
    readonly form: StreamForm,
    /** For VMGET: the positions of the values, in reply order (next and end index this). */
    readonly indices: Float64Array | null = null,
  ) {}

  get key(): string {
    return this.binding.key;
  }

  get done(): boolean {
    return this.next >= this.end;
  }

  /**
   * Appends the next chunk (about `budget` bytes) to `w`, and the reply's end after the last
   * values; returns true when the reply is complete. Throws the changed-size error when the file
   * was resized outside mmapd meanwhile (the reply cannot be finished: the caller drops the client).
   */
  produce(w: ReplyWriter, budget = STREAM_CHUNK_BYTES): boolean {
    this.check();
    const b = this.binding;
    if (this.form === "raw") {
      const n = this.rawChunkValues(budget);
      const length = n * b.width;
      w.ensure(length + 2);
      if (length > 0) b.file.readInto(this.next * b.width, length, w.buf, w.length);
      w.length += length;
      this.advance(n);
    } else {
      // A value's text and framing take at most its width or a double's 24 characters, and 12 more.
      const stop = Math.min(
        this.end,
        this.next + Math.max(1, Math.min(TEXT_CHUNK_VALUES, Math.floor(budget / (Math.max(b.width, 24) + 12)))),
      );
      w.proto = this.proto;
      b.type.replyValues(w, b.file, this.indices, this.next, stop);
      this.advance(stop - this.next);
    }
    if (!this.done) return false;
    if (this.form === "raw") {
      w.buf[w.length++] = 13;
      w.buf[w.length++] = 10;
    }
    return true;
  }

  /** Moves past the next `count` values, once they are read (here, or by a format pool), and releases their pages. */
  advance(count: number): void {
    const first = this.next;
    this.next += count;
    this.releaseRead(first);
  }

  /**
   * Lets the pages of the run just read, values [first, next), leave mmapd's RSS (they stay in the
   * page cache): a whole file streamed once must not stay resident in the process. The page the
   * run ends inside is left to the next chunk, which may still read it. VMGET's scattered positions
   * are left alone.
   */
  private releaseRead(first: number): void {
    if (this.indices !== null) return;
    const width = this.binding.width;
    const end = this.done ? this.next * width : Math.floor((this.next * width) / PAGE_SIZE) * PAGE_SIZE;
    this.binding.file.releasePages(first * width, end - first * width);
  }

  /** Throws the changed-size error when the file was resized outside mmapd since the stream began. */
  check(): void {
    if (this.binding.file.sizeChanged) throw changedSizeError(this.binding.displayPath);
  }

  /** Values the next raw chunk holds (at most `budget` bytes of them, at least one). */
  rawChunkValues(budget = STREAM_CHUNK_BYTES): number {
    return Math.min(this.end - this.next, Math.max(1, Math.floor(budget / this.binding.width)));
  }

  /**
   * Copies the next raw chunk straight from the mapping into `dst` at `at` (the reply ring's
   * record, so the bytes are copied once), with the closing CRLF after the last values. Returns
   * the bytes written and whether the reply is complete. `check` first: this must not fail once
   * the destination is reserved.
   */
  produceRawInto(dst: Uint8Array, at: number, values: number): { bytes: number; done: boolean } {
    const b = this.binding;
    const length = values * b.width;
    if (length > 0) b.file.readInto(this.next * b.width, length, dst, at);
    this.advance(values);
    if (!this.done) return { bytes: length, done: false };
    dst[at + length] = 13;
    dst[at + length + 1] = 10;
    return { bytes: length + 2, done: true };
  }
}

/** Writes the header of a streamed range reply: the array's length, or the bulk string's. */
export function writeStreamHeader(w: ReplyWriter, b: Binding, start: number, end: number, form: StreamForm): void {
  if (form === "values") {
    w.array(end - start);
    return;
  }
  const header = `$${(end - start) * b.width}\r\n`;
  w.ensure(header.length);
  for (let k = 0; k < header.length; k++) w.buf[w.length + k] = header.charCodeAt(k);
  w.length += header.length;
}

/** True when a reply of values [start, end) of `b` in `form` is big enough to stream. */
export function worthStreaming(b: Binding, start: number, end: number, form: StreamForm): boolean {
  const n = end - start;
  // Text takes at least 4 bytes per value ("$1\r\n0\r\n" is 7; RESP3 doubles are 4 and more).
  return form === "raw" ? n * b.width > STREAM_THRESHOLD_BYTES : n * 4 > STREAM_THRESHOLD_BYTES;
}

/** A command that waits for streams to end, with a copy of its request. */
export interface WaitingRequest {
  conn: number;
  seq: number;
  commandWord: number;
  command: ShardCommand;
  /** The request's payload (see workers/wire.ts), copied out of the ring. */
  payload: Uint8Array;
}

/**
 * Which commands wait for a shard's streams, in arrival order. A command waits when it names a
 * streamed key, when it could change any key (a write with no one key: FLUSHDB, DEL of several
 * keys, a transaction's part), or when such a command already waits ahead of it.
 */
export class StreamGate {
  readonly streams: ReplyStream[] = [];
  readonly waiting: WaitingRequest[] = [];
  /** Keys with streams in progress, and how many each. */
  private readonly streamedKeys = new Map<string, number>();
  /** Clients that are gone while commands of theirs still wait (their streams end at once). */
  private readonly cancelledConns = new Set<number>();
  /** Clients whose streams are held (see `hold`). */
  private readonly heldConns = new Set<number>();

  get active(): boolean {
    return this.streams.length > 0;
  }

  /** Takes a stream started for (stream.conn, stream.seq). */
  add(stream: ReplyStream): void {
    stream.cancelled = this.cancelledConns.has(stream.conn);
    stream.held = this.heldConns.has(stream.conn);
    this.streams.push(stream);
    this.streamedKeys.set(stream.key, (this.streamedKeys.get(stream.key) ?? 0) + 1);
  }

  remove(stream: ReplyStream): void {
    const at = this.streams.indexOf(stream);
    if (at < 0) return;
    this.streams.splice(at, 1);
    const n = this.streamedKeys.get(stream.key)! - 1;
    if (n === 0) this.streamedKeys.delete(stream.key);
    else this.streamedKeys.set(stream.key, n);
  }

  /** Marks every stream of `conn` cancelled, and those its waiting commands would start (its client is gone). */
  cancel(conn: number): void {
    for (const s of this.streams) if (s.conn === conn) s.cancelled = true;
    this.heldConns.delete(conn);
    if (this.waiting.some((r) => r.conn === conn)) this.cancelledConns.add(conn);
  }

  /** Holds (or lets go) the streams of `conn`: its client has many bytes unsent (or has read them). */
  hold(conn: number, hold: boolean): void {
    if (hold) this.heldConns.add(conn);
    else this.heldConns.delete(conn);
    for (const s of this.streams) if (s.conn === conn) s.held = hold;
  }

  /** True when some stream makes a chunk this turn (see `due`). */
  get producing(): boolean {
    for (const s of this.streams) if (this.due(s)) return true;
    return false;
  }

  /**
   * Whether `s` makes a chunk this turn: unless it is held, or when another client's command waits
   * (a held stream then goes on, so that client does not wait on a slow reader; the slow reader's
   * own pipelined commands waiting behind it do not count, or a client that stops reading would
   * have its whole reply made and buffered).
   */
  due(s: ReplyStream): boolean {
    if (s.cancelled || !s.held) return true;
    for (const r of this.waiting) if (r.conn !== s.conn) return true;
    return false;
  }

  /** Forgets cancelled clients none of whose commands wait any more. */
  pruneCancelled(): void {
    for (const conn of this.cancelledConns) if (!this.waiting.some((r) => r.conn === conn)) this.cancelledConns.delete(conn);
  }

  /** True for a command that may change keys other than those it names. */
  static unbindsAny(command: ShardCommand): boolean {
    return (command.route !== "key" || command.keys === null) && !command.flags.includes("readonly");
  }

  /** True when `command` with arguments `a` must wait, given what waits already (`barrier`: a command that unbinds any key waits). */
  mustWait(command: ShardCommand, a: ArgList, barrier: boolean): boolean {
    if (barrier) return true;
    if (this.streams.length === 0) return false;
    if (StreamGate.unbindsAny(command)) return true;
    for (const i of keyPositions(command, a)) {
      if (this.streamedKeys.has(keyString(a, i))) return true;
    }
    return false;
  }

  /** True when a command that unbinds any key waits: everything after it waits too. */
  get barrier(): boolean {
    for (const r of this.waiting) if (StreamGate.unbindsAny(r.command)) return true;
    return false;
  }
}
