/**
 * The arguments of one command, as offsets into a byte buffer.
 *
 * The request parser (on the main thread) and the ring reader (in a shard worker) both fill this
 * shape without copying the bytes; commands read their arguments through the helpers below,
 * which parse numbers and compare words in place so that the hot path allocates nothing.
 */
export interface ArgList {
  buf: Uint8Array;
  argc: number;
  argStart: Int32Array;
  argEnd: Int32Array;
}

const encoder = new TextEncoder();

/** A reusable ArgList whose offset arrays grow as needed. */
export class Args implements ArgList {
  buf: Uint8Array = new Uint8Array(0);
  argc = 0;
  argStart = new Int32Array(16);
  argEnd = new Int32Array(16);

  /** Makes room for `n` arguments. */
  reserve(n: number): void {
    if (n <= this.argStart.length) return;
    let cap = this.argStart.length;
    while (cap < n) cap *= 2;
    const s = new Int32Array(cap);
    s.set(this.argStart);
    const e = new Int32Array(cap);
    e.set(this.argEnd);
    this.argStart = s;
    this.argEnd = e;
  }

  /** Sets the arguments to these strings (for tests and internal commands; cold path). */
  static of(...words: (string | Uint8Array)[]): Args {
    const parts = words.map((w) => (typeof w === "string" ? encoder.encode(w) : w));
    const total = parts.reduce((n, p) => n + p.length, 0);
    const a = new Args();
    a.reserve(parts.length);
    a.buf = new Uint8Array(total);
    let at = 0;
    parts.forEach((p, i) => {
      a.buf.set(p, at);
      a.argStart[i] = at;
      at += p.length;
      a.argEnd[i] = at;
    });
    a.argc = parts.length;
    return a;
  }
}

const decoder = new TextDecoder();

/** Byte length of argument i. */
export function argLength(a: ArgList, i: number): number {
  return a.argEnd[i] - a.argStart[i];
}

/** True when argument i equals `lowerWord` ignoring ASCII case (`lowerWord` must be lowercase). */
export function argIs(a: ArgList, i: number, lowerWord: string): boolean {
  const start = a.argStart[i];
  if (a.argEnd[i] - start !== lowerWord.length) return false;
  const buf = a.buf;
  for (let k = 0; k < lowerWord.length; k++) {
    let c = buf[start + k];
    if (c >= 65 && c <= 90) c |= 32;
    if (c !== lowerWord.charCodeAt(k)) return false;
  }
  return true;
}

/**
 * Argument i as a decimal integer: optional sign, digits, leading zeros allowed (redis-benchmark
 * pads `__rand_int__` with zeros). NaN when it is not one or is beyond 2^53-1.
 */
export function argInt(a: ArgList, i: number): number {
  let p = a.argStart[i];
  const end = a.argEnd[i];
  const buf = a.buf;
  if (p === end) return NaN;
  let negative = false;
  if (buf[p] === 45 /* - */ || buf[p] === 43 /* + */) {
    negative = buf[p] === 45;
    if (++p === end) return NaN;
  }
  let n = 0;
  for (; p < end; p++) {
    const d = buf[p] - 48;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  if (n > Number.MAX_SAFE_INTEGER) return NaN;
  return negative ? -n : n;
}

/** Argument i decoded as UTF-8 (allocates: cold paths only). */
export function argString(a: ArgList, i: number): string {
  return decoder.decode(a.buf.subarray(a.argStart[i], a.argEnd[i]));
}

/** Argument i as a view over the buffer (no copy; valid while the buffer is). */
export function argView(a: ArgList, i: number): Uint8Array {
  return a.buf.subarray(a.argStart[i], a.argEnd[i]);
}

/** True when argument i's bytes equal `bytes`. */
export function argEquals(a: ArgList, i: number, bytes: Uint8Array): boolean {
  const start = a.argStart[i];
  const len = a.argEnd[i] - start;
  if (len !== bytes.length) return false;
  const buf = a.buf;
  for (let k = 0; k < len; k++) if (buf[start + k] !== bytes[k]) return false;
  return true;
}

/** Argument i as a key: a latin1 string, so that any bytes round-trip (as shards and the registry keep keys). */
export function keyString(a: ArgList, i: number): string {
  return Buffer.from(a.buf.buffer, a.buf.byteOffset + a.argStart[i], a.argEnd[i] - a.argStart[i]).toString("latin1");
}

/** A copy of `a` that owns its bytes: for a command kept after the buffer it was read from is reused. */
export function copyArgs(a: ArgList): Args {
  const out = new Args();
  out.reserve(a.argc);
  let from = a.buf.length;
  let to = 0;
  for (let i = 0; i < a.argc; i++) {
    from = Math.min(from, a.argStart[i]);
    to = Math.max(to, a.argEnd[i]);
  }
  // A copy, never a view: the parser's buffer may be a socket's Buffer, whose slice() is a view
  // into memory that the next read reuses.
  out.buf = a.argc === 0 ? new Uint8Array(0) : new Uint8Array(a.buf.subarray(from, to));
  for (let i = 0; i < a.argc; i++) {
    out.argStart[i] = a.argStart[i] - from;
    out.argEnd[i] = a.argEnd[i] - from;
  }
  out.argc = a.argc;
  return out;
}
