/**
 * Command timing shared by the main thread and the shard workers: the latency histogram's
 * buckets, the layout of the SharedArrayBuffer in which a shard worker counts the time, failures
 * and error codes of the commands it runs (INFO reads it on the main thread: no message per
 * command), and the slow log's entries, which a worker sends on its reply ring.
 *
 * Timing a command costs one clock read: a command's time runs from the end of the one before it
 * in the same batch (or the batch's start) to its own end.
 */
import type { ArgList } from "../core/args.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";

/**
 * Latency buckets: durations in steps of 8 ns, eight buckets per doubling (about 6% wide), from
 * 0 to 17 s; longer ones fall in the last.
 */
export const LATENCY_BUCKETS = 232;

/** The bucket of a duration in milliseconds. */
export function latencyBucket(ms: number): number {
  const u = ms < 17_179 ? (ms * 125_000) | 0 : 0x7fffffff;
  if (u < 16) return u;
  const e = 31 - Math.clz32(u);
  return (e - 2) * 8 + ((u >>> (e - 3)) & 7);
}

/** The longest duration, in microseconds, that falls in `bucket`. */
export function bucketCeilingMicros(bucket: number): number {
  if (bucket < 16) return ((bucket + 1) * 8) / 1000;
  const e = (bucket >> 3) + 2;
  return ((8 + (bucket & 7) + 1) * 2 ** (e - 3) * 8) / 1000;
}

/** Distinct error codes (ERR, WRONGTYPE ...) a shard counts; further ones are counted as the last. */
export const ERROR_CODES = 32;
/** Bytes of an error code's name. */
const ERROR_CODE_BYTES = 32;

/**
 * The layout of a shard's timing buffer, in float64 words: [0] the slow log's threshold in ms
 * (negative: off; written by the main thread), then per error code its count, then per shard
 * command its total time in ms, its failed calls, and its latency histogram. After the words,
 * the error codes' names: a length (int32, stored last) and the bytes.
 */
export const THRESHOLD_WORD = 0;
export const ERROR_COUNTS_AT = 1;
export const COMMANDS_AT = ERROR_COUNTS_AT + ERROR_CODES;
/** Words per command: total ms, failed calls, histogram. */
export const COMMAND_WORDS = 2 + LATENCY_BUCKETS;

function wordCount(commands: number): number {
  return COMMANDS_AT + commands * COMMAND_WORDS;
}

/** A timing buffer for a shard that runs `commands` commands. */
export function createTimingBuffer(commands: number): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(wordCount(commands) * 8 + ERROR_CODES * (4 + ERROR_CODE_BYTES));
  new Float64Array(sab, 0, 1)[THRESHOLD_WORD] = -1;
  return sab;
}

/** The names of the error codes in a timing buffer (index: code slot; "" for a slot not used yet). */
export function errorCodeNames(sab: SharedArrayBuffer, commands: number): string[] {
  const at = wordCount(commands) * 8;
  const lengths = new Int32Array(sab, at, ERROR_CODES);
  const bytes = new Uint8Array(sab, at + ERROR_CODES * 4, ERROR_CODES * ERROR_CODE_BYTES);
  const names: string[] = [];
  for (let i = 0; i < ERROR_CODES; i++) {
    const n = Atomics.load(lengths, i);
    names.push(Buffer.from(bytes.subarray(i * ERROR_CODE_BYTES, i * ERROR_CODE_BYTES + n)).toString("latin1"));
  }
  return names;
}

/**
 * The code of an error reply (`-WRONGTYPE Operation ...` -> WRONGTYPE): its first word when a
 * space comes within 32 bytes, else ERR (as Redis counts them).
 */
export function errorCode(buf: Uint8Array, start: number, end: number): string {
  const limit = Math.min(end, start + 33);
  for (let p = start + 1; p < limit; p++) {
    if (buf[p] === 32) return p === start + 1 ? "ERR" : Buffer.from(buf.subarray(start + 1, p)).toString("latin1");
    if (buf[p] === 13) break;
  }
  return "ERR";
}

/** The worker's side: records each command it runs in the shard's timing buffer. */
export class ShardTiming {
  private readonly words: Float64Array;
  private readonly lengths: Int32Array;
  private readonly names: Uint8Array;
  private readonly codes = new Map<string, number>();
  private last = performance.now();

  constructor(sab: SharedArrayBuffer, commands: number) {
    const at = wordCount(commands) * 8;
    this.words = new Float64Array(sab, 0, wordCount(commands));
    this.lengths = new Int32Array(sab, at, ERROR_CODES);
    this.names = new Uint8Array(sab, at + ERROR_CODES * 4, ERROR_CODES * ERROR_CODE_BYTES);
    // A restarted worker goes on with the codes its predecessor named.
    errorCodeNames(sab, commands).forEach((name, slot) => {
      if (name !== "") this.codes.set(name, slot);
    });
  }

  /** Starts a batch: the next command's time runs from now. */
  startBatch(): void {
    this.last = performance.now();
  }

  /**
   * Records the command `id` whose reply is in `w` from `mark`: its time, whether it failed (an
   * error reply) and with which code. Returns its time in ms when the slow log wants it, else -1.
   */
  record(id: number, w: ReplyWriter, mark = 0): number {
    const now = performance.now();
    const ms = now - this.last;
    this.last = now;
    const words = this.words;
    const at = COMMANDS_AT + id * COMMAND_WORDS;
    words[at] += ms;
    words[at + 2 + latencyBucket(ms)]++;
    if (w.buf[mark] === 45) {
      words[at + 1]++;
      words[ERROR_COUNTS_AT + this.codeSlot(errorCode(w.buf, mark, w.length))]++;
    }
    const threshold = words[THRESHOLD_WORD];
    return threshold >= 0 && ms >= threshold ? ms : -1;
  }

  private codeSlot(code: string): number {
    let slot = this.codes.get(code);
    if (slot !== undefined) return slot;
    slot = Math.min(this.codes.size, ERROR_CODES - 1);
    if (this.codes.size < ERROR_CODES) {
      const bytes = Buffer.from(code.slice(0, ERROR_CODE_BYTES), "latin1");
      this.names.set(bytes, slot * ERROR_CODE_BYTES);
      // The length is stored last: a reader that sees it sees the name.
      Atomics.store(this.lengths, slot, bytes.length);
      this.codes.set(code, slot);
    }
    return slot;
  }
}

/** The slow log keeps at most this many arguments of a command, the last one saying how many more there were. */
const SLOWLOG_MAX_ARGS = 32;
/** ... and at most this many bytes of each, followed by how many more there were. */
const SLOWLOG_MAX_ARG_BYTES = 128;

/** A command's arguments as the slow log keeps them, truncated as Redis truncates them. */
export function slowlogArguments(a: ArgList): Uint8Array[] {
  const kept = Math.min(a.argc, SLOWLOG_MAX_ARGS);
  const out: Uint8Array[] = [];
  for (let i = 0; i < kept; i++) {
    if (kept !== a.argc && i === kept - 1) {
      out.push(Buffer.from(`... (${a.argc - kept + 1} more arguments)`));
      break;
    }
    const length = a.argEnd[i] - a.argStart[i];
    if (length > SLOWLOG_MAX_ARG_BYTES) {
      const head = a.buf.subarray(a.argStart[i], a.argStart[i] + SLOWLOG_MAX_ARG_BYTES);
      out.push(Buffer.concat([head, Buffer.from(`... (${length - SLOWLOG_MAX_ARG_BYTES} more bytes)`)]));
    } else out.push(a.buf.slice(a.argStart[i], a.argEnd[i]));
  }
  return out;
}

/** A slow command as a worker sends it on its reply ring: [micros, argc, lengths...] as int32, then the bytes. */
export function encodeSlowEntry(a: ArgList, ms: number): Uint8Array {
  const args = slowlogArguments(a);
  const header = (2 + args.length) * 4;
  const out = new Uint8Array(header + args.reduce((n, x) => n + x.length, 0));
  const words = new Int32Array(out.buffer, 0, 2 + args.length);
  words[0] = Math.min(Math.floor(ms * 1000), 0x7fffffff);
  words[1] = args.length;
  let p = header;
  args.forEach((x, i) => {
    words[2 + i] = x.length;
    out.set(x, p);
    p += x.length;
  });
  return out;
}

/** Reads what `encodeSlowEntry` wrote (bytes [start, end) of `buf`). */
export function decodeSlowEntry(buf: Uint8Array, start: number): { micros: number; args: Uint8Array[] } {
  const view = new DataView(buf.buffer, buf.byteOffset + start);
  const micros = view.getInt32(0, true);
  const argc = view.getInt32(4, true);
  const args: Uint8Array[] = [];
  let p = start + (2 + argc) * 4;
  for (let i = 0; i < argc; i++) {
    const n = view.getInt32(8 + i * 4, true);
    args.push(buf.slice(p, p + n));
    p += n;
  }
  return { micros, args };
}
