/**
 * Big text replies formatted in parallel: a shard worker hands the chunks of a VALL or VRANGE of
 * numbers to a piscina pool, and sends the formatted chunks in order as they come back.
 *
 * Formatting is the one part of a big reply that is pure CPU work without state: the shard copies
 * a chunk's raw values from the mapping into an input slot of shared memory (so no pool thread ever
 * touches a mapping, which may be unmapped or resized by the shard at any time), a pool thread
 * writes their replies into the matching output slot, and the shard copies those into its reply
 * ring. Per-task cost in piscina is tens of microseconds, against milliseconds of formatting per
 * chunk; a chunk in flight per slot keeps every pool thread busy while the shard sends the head.
 * The shard stays the key's owner: the stream is in its gate until the last chunk is sent, as a
 * stream it formats itself would be.
 */
import path from "node:path";
import { Piscina } from "piscina";
import type { ReplyStream } from "../core/reply_stream.ts";

/**
 * Values per task: 32K values are about 2 ms of formatting, against ~40 µs per task, and their
 * replies (about 1 MiB) fit a ring record, as the shard's own chunks do.
 */
export const FORMAT_CHUNK_VALUES = 32 * 1024;
/** The widest value a pool formats (long double); wider values (strings) are formatted in the shard. */
const MAX_WIDTH = 16;
/** The most bytes one value's reply takes, framing included (a double's 24 characters and `$24\r\n`, `\r\n`). */
const MAX_REPLY_BYTES_PER_VALUE = 32;

/** The shared memory of a pool's slots, given to each thread once. */
export interface FormatSlots {
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
  inputSlotBytes: number;
  outputSlotBytes: number;
}

/** One chunk for a pool thread: `count` values of type `typeName` in input slot `slot`. */
export interface FormatTask {
  slot: number;
  count: number;
  typeName: string;
  proto: 2 | 3;
}

/** A chunk handed to the pool: its slot until the pool answers, then the length of its replies. */
interface Chunk {
  slot: number;
  /** Bytes of replies in the output slot, once formatted; -1 before. */
  length: number;
  error: unknown;
  /** Set when the stream was dropped: the slot is freed as soon as the thread lets go of it. */
  orphaned: boolean;
}

export class FormatPool {
  private pool: Piscina | null = null;
  private slots: FormatSlots | null = null;
  private output: Uint8Array | null = null;
  private input: Uint8Array | null = null;
  private readonly freeSlots: number[] = [];
  private slotCount = 0;
  private readonly chunks = new Map<ReplyStream, Chunk[]>();
  private wake: (() => void) | null = null;

  /** `threads`: pool threads per shard worker; 0 formats every reply in the shard. */
  constructor(readonly threads: number) {}

  /** True when `s` is formatted in the pool: a long run of numbers as text. */
  takes(s: ReplyStream): boolean {
    if (this.threads === 0 || s.form !== "values" || s.indices !== null) return false;
    const { type, width } = s.binding;
    return this.chunks.has(s) || (type.numeric && width <= MAX_WIDTH && s.end - s.next >= 2 * FORMAT_CHUNK_VALUES);
  }

  /** Hands the next chunks of `s` to the pool while slots are free. Throws as ReplyStream.check does. */
  fill(s: ReplyStream): void {
    let queue = this.chunks.get(s);
    // A stream whose every chunk was handed over and sent is no longer the pool's.
    if (queue === undefined && s.done) return;
    if (queue === undefined) this.chunks.set(s, (queue = []));
    const { file, type, width } = s.binding;
    while (!s.done && this.freeSlot() && queue.length < this.slotsPerStream()) {
      s.check();
      const slot = this.freeSlots.at(-1)!;
      const count = Math.min(FORMAT_CHUNK_VALUES, s.end - s.next);
      file.readInto(s.next * width, count * width, this.input!, slot * this.slots!.inputSlotBytes);
      // Taken only once the values are in: a read that throws leaves the slot free.
      this.freeSlots.pop();
      s.advance(count);
      const chunk: Chunk = { slot, length: -1, error: null, orphaned: false };
      queue.push(chunk);
      const task: FormatTask = { slot, count, typeName: type.name, proto: s.proto };
      this.pool!.run(task).then(
        (length: number) => this.settle(chunk, length, null),
        (error: unknown) => this.settle(chunk, -1, error ?? new Error("format task failed")),
      );
    }
  }

  /**
   * The replies of the oldest chunk of `s` when they are ready (null while the pool works on it),
   * and whether they end the reply. `shift` lets the chunk go once they are sent.
   */
  ready(s: ReplyStream): { bytes: Uint8Array; last: boolean } | null {
    const queue = this.chunks.get(s);
    const head = queue?.[0];
    if (head === undefined || (head.length < 0 && head.error === null)) return null;
    if (head.error !== null) throw head.error;
    const at = head.slot * this.slots!.outputSlotBytes;
    return { bytes: this.output!.subarray(at, at + head.length), last: s.done && queue!.length === 1 };
  }

  /** Lets the oldest chunk of `s` go (its replies were sent). */
  shift(s: ReplyStream): void {
    const queue = this.chunks.get(s)!;
    this.freeSlots.push(queue.shift()!.slot);
    if (queue.length === 0 && s.done) this.chunks.delete(s);
  }

  /**
   * True when `s`, a stream of the pool's, can do nothing until the pool answers: its oldest chunk
   * is still being formatted (or none is, for want of a free slot), and no more can be handed over.
   */
  waitsForPool(s: ReplyStream): boolean {
    const queue = this.chunks.get(s);
    if (queue === undefined || this.pool === null) return false;
    if (!s.done && this.freeSlots.length > 0 && queue.length < this.slotsPerStream()) return false;
    const head = queue[0];
    return head === undefined ? !s.done : head.length < 0 && head.error === null;
  }

  /** Forgets the chunks of a stream that ended early (cancelled, or failed); their slots come back as the pool lets go. */
  drop(s: ReplyStream): void {
    const queue = this.chunks.get(s);
    if (queue === undefined) return;
    this.chunks.delete(s);
    for (const chunk of queue) {
      if (chunk.length >= 0 || chunk.error !== null) this.freeSlots.push(chunk.slot);
      else chunk.orphaned = true;
    }
  }

  /** Ends the pool's threads (the process does not wait for them: this is for tests). */
  async destroy(): Promise<void> {
    await this.pool?.destroy();
    this.pool = null;
  }

  /** Resolves when the pool next answers a chunk. */
  answered(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  private settle(chunk: Chunk, length: number, error: unknown): void {
    chunk.length = length;
    chunk.error = error;
    if (chunk.orphaned) this.freeSlots.push(chunk.slot);
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** The most chunks one stream may have in the pool: streams formatted at once share the slots, so none waits for another to end. */
  private slotsPerStream(): number {
    return Math.max(1, Math.floor(this.slotCount / this.chunks.size));
  }

  /** True when a slot is free; makes the pool and its slots on first use. */
  private freeSlot(): boolean {
    if (this.pool === null) this.start();
    return this.freeSlots.length > 0;
  }

  private start(): void {
    // Two chunks per thread: one formatted while the other waits to be sent.
    const count = 2 * this.threads;
    this.slotCount = count;
    const inputSlotBytes = FORMAT_CHUNK_VALUES * MAX_WIDTH;
    const outputSlotBytes = FORMAT_CHUNK_VALUES * MAX_REPLY_BYTES_PER_VALUE;
    this.slots = {
      input: new SharedArrayBuffer(count * inputSlotBytes),
      output: new SharedArrayBuffer(count * outputSlotBytes),
      inputSlotBytes,
      outputSlotBytes,
    };
    this.input = new Uint8Array(this.slots.input);
    this.output = new Uint8Array(this.slots.output);
    for (let slot = count - 1; slot >= 0; slot--) this.freeSlots.push(slot);
    this.pool = new Piscina({
      filename: path.join(import.meta.dir, "format_task.ts"),
      minThreads: 0,
      maxThreads: this.threads,
      // Threads that sat idle this long end, and their memory with them (about 10 MiB each), well
      // inside the 10 s in which memory must be back after a burst of big replies. The next big
      // reply starts them again (about 40 ms, and their code starts cold).
      idleTimeout: 5_000,
      workerData: this.slots,
    });
  }
}
