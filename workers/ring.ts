/**
 * A single-producer, single-consumer ring of byte records in a SharedArrayBuffer.
 *
 * Commands go from the main thread to a shard worker, and replies come back, through a pair of
 * these rings: writing a record is a few stores and one Atomics.store, with no message and no
 * allocation. A record is `[int32 length][payload, padded to 4 bytes]`, always contiguous: when
 * it does not fit before the end, a wrap marker (-1) sends the reader back to offset 0.
 *
 * The header holds the positions and a wake-up protocol: the consumer reads `signal`, sets
 * `sleeping`, re-checks for records, then waits on `signal`; the producer publishes, bumps
 * `signal`, and notifies only if `sleeping` is set. A record published at any point in that
 * sequence is either seen by the re-check or changes `signal` and ends the wait.
 *
 * The consumer waits in one of three ways, and `sleeping` says which: ASLEEP through its event
 * loop (Atomics.waitAsync, woken by Atomics.notify), BLOCKED in the kernel (a futex on its own
 * word, woken by a futex call, which is cheaper), or SPINNING (polling: nothing to wake).
 */
import { futexWait, futexWake, wordAddress } from "../core/libc.ts";

const HEAD = 0; // next byte the producer writes (only the producer stores it)
const TAIL = 1; // next byte the consumer reads (only the consumer stores it)
const SIGNAL = 2; // bumped by the producer after publishing
const SLEEPING = 3; // ASLEEP while the consumer waits on SIGNAL, BLOCKED while it blocks on BLOCKED_SIGNAL
const SPACE = 4; // bumped by the consumer after freeing space
const SPACE_WAITING = 5; // 1 while the producer waits for space
const BLOCKED_SIGNAL = 6; // bumped by the producer when the consumer blocks synchronously
const HEADER_WORDS = 16; // a cache line and more, so the data starts apart from the counters
const WRAP = -1;
const AWAKE = 0;
const ASLEEP = 1;
const BLOCKED = 2;
const SPINNING = 3; // polling: the producer needs to do nothing

export class Ring {
  readonly header: Int32Array;
  readonly data: Uint8Array;
  readonly words: Int32Array;
  readonly capacity: number;
  /** Where BLOCKED_SIGNAL is, for the futex calls of `waitBlocking` and `publish`. */
  private readonly blockedSignalAddress: number;

  /** Makes a ring with `capacity` bytes of records (rounded to a multiple of 4). */
  static create(capacity: number): Ring {
    return new Ring(new SharedArrayBuffer(HEADER_WORDS * 4 + (capacity & ~3)));
  }

  /** Attaches to a ring another thread created. */
  constructor(readonly sab: SharedArrayBuffer) {
    this.header = new Int32Array(sab, 0, HEADER_WORDS);
    this.capacity = sab.byteLength - HEADER_WORDS * 4;
    this.data = new Uint8Array(sab, HEADER_WORDS * 4, this.capacity);
    this.words = new Int32Array(sab, HEADER_WORDS * 4, this.capacity >> 2);
    this.blockedSignalAddress = wordAddress(this.header, BLOCKED_SIGNAL);
  }

  /** The largest payload a record can carry (bigger ones travel another way). */
  get maxPayload(): number {
    return (this.capacity >> 1) - 8;
  }

  /** Copies src[start, end) to data at `at`: a plain loop for short runs, which beats making a subarray. */
  copyIn(at: number, src: Uint8Array, start: number, end: number): void {
    const len = end - start;
    if (len > 64) {
      this.data.set(src.subarray(start, end), at);
      return;
    }
    const data = this.data;
    for (let k = 0; k < len; k++) data[at + k] = src[start + k];
  }

  // ---- producer side ----

  private pendingAt = -1;

  /**
   * Reserves room for a record of `length` payload bytes and returns the offset (in `data`) where
   * the payload starts, or -1 when the ring is full for now. Nothing is visible to the consumer
   * until `publish()`. Several records may be reserved and then published together.
   */
  reserve(length: number): number {
    const need = 4 + ((length + 3) & ~3);
    const tail = Atomics.load(this.header, TAIL);
    let head = this.pendingAt >= 0 ? this.pendingAt : Atomics.load(this.header, HEAD);
    if (head === this.capacity) head = 0; // a record ended exactly at the end
    if (head >= tail) {
      // Free: [head, capacity) and [0, tail); one word always stays free so head === tail means empty.
      if (head + need <= this.capacity - (tail === 0 ? 4 : 0)) {
        // fits before the end
      } else if (need <= tail - 4) {
        this.words[head >> 2] = WRAP;
        head = 0;
      } else return -1;
    } else if (head + need > tail - 4) return -1;
    this.words[head >> 2] = length;
    this.pendingAt = head + need;
    return head + 4;
  }

  /** Makes every reserved record visible to the consumer and wakes it if it sleeps. */
  publish(): void {
    if (this.pendingAt < 0) return;
    Atomics.store(this.header, HEAD, this.pendingAt === this.capacity ? 0 : this.pendingAt);
    this.pendingAt = -1;
    Atomics.add(this.header, SIGNAL, 1);
    const sleeping = Atomics.load(this.header, SLEEPING);
    if (sleeping === ASLEEP) Atomics.notify(this.header, SIGNAL);
    else if (sleeping === BLOCKED) {
      Atomics.add(this.header, BLOCKED_SIGNAL, 1);
      futexWake(this.blockedSignalAddress);
    }
  }

  /** The value of the space counter, to wait on when `reserve` returned -1. */
  spaceSignal(): number {
    return Atomics.load(this.header, SPACE);
  }

  /** Blocks (worker threads only) until the consumer frees space or `timeoutMs` passes. */
  waitForSpace(seen: number, timeoutMs: number): void {
    Atomics.store(this.header, SPACE_WAITING, 1);
    Atomics.wait(this.header, SPACE, seen, timeoutMs);
    Atomics.store(this.header, SPACE_WAITING, 0);
  }

  // ---- consumer side ----

  private readAt = -1;

  /** Offset of the next record's payload, or -1 when there is none. Its length is `length(offset)`. */
  next(): number {
    let tail = this.readAt >= 0 ? this.readAt : Atomics.load(this.header, TAIL);
    const head = Atomics.load(this.header, HEAD);
    if (tail === head) return -1;
    if (this.words[tail >> 2] === WRAP) {
      tail = 0;
      if (tail === head) return -1;
    }
    this.readAt = tail;
    return tail + 4;
  }

  /** Calls `visit` with the payload offset of every published record not consumed yet, without consuming them. */
  forEachPending(visit: (offset: number) => void): void {
    let at = this.readAt >= 0 ? this.readAt : Atomics.load(this.header, TAIL);
    const head = Atomics.load(this.header, HEAD);
    while (at !== head) {
      const len = this.words[at >> 2];
      if (len === WRAP) {
        at = 0;
        continue;
      }
      visit(at + 4);
      at += 4 + ((len + 3) & ~3);
      if (at === this.capacity) at = 0;
    }
  }

  /** Payload length of the record whose payload starts at `offset`. */
  length(offset: number): number {
    return this.words[(offset - 4) >> 2];
  }

  /** Steps past the record returned by the last `next()` (its bytes may then be overwritten once freed). */
  advance(): void {
    const at = this.readAt;
    const len = this.words[at >> 2];
    let after = at + 4 + ((len + 3) & ~3);
    if (after === this.capacity) after = 0;
    this.readAt = after;
  }

  /** Frees everything consumed so far for the producer, and tells a producer waiting for space. */
  release(): void {
    if (this.readAt < 0) return;
    Atomics.store(this.header, TAIL, this.readAt);
    this.readAt = -1;
    Atomics.add(this.header, SPACE, 1);
    // A notify costs a lock even with no waiter: only when the producer said it waits.
    if (Atomics.load(this.header, SPACE_WAITING) !== 0) Atomics.notify(this.header, SPACE);
  }

  /** The signal counter's value, read before the last check for records (see the class comment). */
  signal(): number {
    return Atomics.load(this.header, SIGNAL);
  }

  /** Marks the consumer as sleeping (true) or awake. */
  setSleeping(sleeping: boolean): void {
    Atomics.store(this.header, SLEEPING, sleeping ? ASLEEP : AWAKE);
  }

  /**
   * Polls for up to `spinMs`, then blocks until the producer publishes or `timeoutMs` (counted
   * from the call) passes, and tells whether records are waiting. A `waitAsync` armed on the ring
   * stays armed and is not woken by what is published meanwhile: the caller drains it.
   */
  waitBlocking(timeoutMs: number, spinMs = 0): boolean {
    const before = Atomics.load(this.header, SLEEPING);
    if (spinMs > 0) {
      Atomics.store(this.header, SLEEPING, SPINNING);
      const started = performance.now();
      const spinUntil = started + Math.min(spinMs, timeoutMs);
      while (!this.hasRecords() && performance.now() < spinUntil);
      timeoutMs -= performance.now() - started;
    }
    if (!this.hasRecords() && timeoutMs > 0) {
      Atomics.store(this.header, SLEEPING, BLOCKED);
      const seen = Atomics.load(this.header, BLOCKED_SIGNAL);
      if (!this.hasRecords()) futexWait(this.blockedSignalAddress, seen, timeoutMs);
    }
    Atomics.store(this.header, SLEEPING, before);
    return this.hasRecords();
  }

  /** True when a record is waiting. */
  hasRecords(): boolean {
    const tail = this.readAt >= 0 ? this.readAt : Atomics.load(this.header, TAIL);
    return tail !== Atomics.load(this.header, HEAD);
  }

  /** Resolves when the producer publishes after `seen`, or after `timeoutMs` (waitAsync: works on the main thread); null if it already did. */
  waitAsync(seen: number, timeoutMs = Infinity): Promise<unknown> | null {
    const r = Atomics.waitAsync(this.header, SIGNAL, seen, timeoutMs);
    return r.async ? (r.value as Promise<unknown>) : null;
  }
}
