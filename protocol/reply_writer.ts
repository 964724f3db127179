/**
 * Builds a connection's replies as RESP bytes in one growable buffer, in the protocol version
 * the connection chose with HELLO (RESP2 by default). RESP3-only types fall back to their RESP2
 * equivalents as Redis does, so callers never branch on the version.
 *
 * Integers, lengths and integer-valued numbers are written digit by digit, and ASCII strings char
 * by char, so a reply allocates nothing unless the buffer has to grow.
 */

import { decimalLength, formatDouble, formatFloat32, writeDecimal, writeDigitsBackward } from "./number_format.ts";
import { copyBytes } from "./bytes.ts";
import { SHORTEST_ROOM, writeShortestDouble, writeShortestFloat32 } from "./shortest_double.ts";

const CR = 13;
const LF = 10;
const SPACE = 32;

/** Room for a type byte, a sign, up to 16 digits and CRLF. */
const HEADER_ROOM = 24;
/** Every integer up to 2^24 is a float32 and prints as itself. */
const FLOAT32_EXACT_INTEGER_LIMIT = 16777216;
const POWERS_OF_TEN = [1, 10, 100, 1000, 10000, 100000, 1000000];
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

export class ReplyWriter {
  /** Protocol version of the connection; set by HELLO. */
  proto: 2 | 3 = 2;
  /** Output bytes are buf[0, length). */
  buf: Uint8Array;
  length = 0;

  constructor(initialCapacity = 16 * 1024) {
    this.buf = new Uint8Array(Math.max(initialCapacity, 64));
  }

  /** Empties the output, keeping the capacity. */
  reset(): void {
    this.length = 0;
  }

  /** Guarantees room for `extra` more bytes, doubling the capacity as needed. */
  ensure(extra: number): void {
    const required = this.length + extra;
    if (required <= this.buf.length) return;
    let capacity = this.buf.length * 2;
    while (capacity < required) capacity *= 2;
    const next = new Uint8Array(capacity);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  /** `+s\r\n`; CR and LF inside `s` become spaces so the reply stays one line. */
  simple(s: string): void {
    this.line(43 /* + */, s);
  }

  /** `-s\r\n` (`s` includes the code: "ERR ..."); CR and LF inside `s` become spaces. */
  error(s: string): void {
    this.line(45 /* - */, s);
  }

  /** `:n\r\n`; safe integers are written digit by digit. Throws RangeError for non-integers. */
  integer(n: number): void {
    if (!Number.isSafeInteger(n)) {
      if (!Number.isInteger(n)) throw new RangeError(`integer reply of a non-integer: ${n}`);
      this.bigint(BigInt(n));
      return;
    }
    this.header(58 /* : */, n);
  }

  /**
   * `:n\r\n` for integers beyond 2^53 within 64-bit signed range. Beyond it (uint64 values above
   * 2^63-1, 64-bit sums) the exact decimal as a bulk string, in both protocols: clients parse `:`
   * into a signed 64-bit integer, and redis-cli 7.0 cannot print RESP3's big number.
   */
  bigint(n: bigint): void {
    if (n > INT64_MAX || n < INT64_MIN) {
      this.bulk(n.toString());
      return;
    }
    const text = n.toString();
    this.ensure(text.length + 3);
    const buf = this.buf;
    let p = this.length;
    buf[p++] = 58; // ':'
    p = writeAscii(buf, p, text);
    buf[p++] = CR;
    buf[p++] = LF;
    this.length = p;
  }

  /** `$len\r\n<utf8 of s>\r\n`. */
  bulk(s: string): void {
    const charCount = s.length;
    // Optimistically ASCII, where the byte length is the char count; redone if it is not.
    this.ensure(charCount + HEADER_ROOM);
    const start = this.length;
    this.header(36 /* $ */, charCount);
    const buf = this.buf;
    let p = this.length;
    for (let i = 0; i < charCount; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.length = start;
        this.bulkUtf8(s);
        return;
      }
      buf[p++] = c;
    }
    buf[p++] = CR;
    buf[p++] = LF;
    this.length = p;
  }

  /** An array of simple strings, one per line: the HELP subcommands' reply. */
  lines(lines: readonly string[]): void {
    this.array(lines.length);
    for (const line of lines) this.simple(line);
  }

  /** `$len\r\n` alone: the caller writes the `len` bytes and the CRLF after them. */
  bulkHeader(n: number): void {
    this.header(36 /* $ */, n);
  }

  /** `$len\r\n<src[start, end)>\r\n`. */
  bulkBytes(src: Uint8Array, start: number, end: number): void {
    const count = end - start;
    this.ensure(count + HEADER_ROOM);
    this.header(36 /* $ */, count);
    const p = copyBytes(this.buf, this.length, src, start, end);
    this.buf[p] = CR;
    this.buf[p + 1] = LF;
    this.length = p + 2;
  }

  /** Null bulk string: RESP2 `$-1\r\n`, RESP3 `_\r\n`. */
  nil(): void {
    if (this.proto === 3) this.resp3Null();
    else this.header(36 /* $ */, -1);
  }

  /** Null array: RESP2 `*-1\r\n`, RESP3 `_\r\n`. */
  nilArray(): void {
    if (this.proto === 3) this.resp3Null();
    else this.header(42 /* * */, -1);
  }

  /** `*n\r\n`, followed by the n elements. */
  array(n: number): void {
    this.header(42 /* * */, n);
  }

  /** RESP3 `%n\r\n`; RESP2 `*(2n)\r\n`, followed by n key/value pairs. */
  map(n: number): void {
    if (this.proto === 3) this.header(37 /* % */, n);
    else this.header(42 /* * */, 2 * n);
  }

  /** RESP3 `~n\r\n`; RESP2 `*n\r\n`, followed by the n members. */
  set(n: number): void {
    this.header(this.proto === 3 ? 126 /* ~ */ : 42 /* * */, n);
  }

  // A DataView over `buf` for the number writers' four-byte stores, remade when `buf` is replaced.
  private numberView: DataView = new DataView(new ArrayBuffer(0));
  private numberViewOf: Uint8Array | null = null;

  /** RESP3 `,<formatDouble(x)>\r\n`; RESP2 the same text as a bulk string. */
  double(x: number): void {
    if (Number.isSafeInteger(x) && !(x === 0 && 1 / x < 0)) this.integralNumber(x);
    else if (!(mayBeShortDecimal(x) && this.shortDecimal(x)) && !this.shortestDouble(x)) this.doubleText(formatDouble(x));
  }

  /**
   * Writes x's shortest text without making a string; returns false when the writer leaves x to
   * formatDouble (zero, infinities, NaN, rare ties).
   */
  private shortestDouble(x: number): boolean {
    const start = this.numberStart();
    const end = writeShortestDouble(this.buf, this.numberView, start, x);
    if (end < 0) return false;
    this.frameNumber(start, end);
    return true;
  }

  /**
   * As shortestDouble, for x as a float32 (formatFloat32's text). A method of its own: one call
   * site shared by both types made each 15% slower once a shard had served both.
   */
  private shortestFloat32(x: number): boolean {
    const start = this.numberStart();
    const end = writeShortestFloat32(this.buf, this.numberView, start, x);
    if (end < 0) return false;
    this.frameNumber(start, end);
    return true;
  }

  /** Makes room for a number text and its framing; returns where the text goes. */
  private numberStart(): number {
    this.ensure(SHORTEST_ROOM + 8);
    const buf = this.buf;
    if (this.numberViewOf !== buf) {
      this.numberViewOf = buf;
      this.numberView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    // After the longest header (`$nn\r\n`, or RESP3's `,`), which frameNumber writes afterwards.
    return this.proto === 3 ? this.length + 1 : this.length + 5;
  }

  /** Frames the number text buf[start, end) that numberStart placed: RESP3 `,text\r\n`, RESP2 bulk. */
  private frameNumber(start: number, end: number): void {
    const buf = this.buf;
    const p = this.length;
    if (this.proto === 3) {
      buf[p] = 44; // ,
    } else {
      const n = end - start;
      buf[p] = 36; // $
      if (n >= 10) {
        // At most 24 bytes; n·205 >> 11 is n / 10 for n below 1029, without a branch.
        const tens = (n * 205) >> 11;
        buf[p + 1] = 48 + tens;
        buf[p + 2] = 48 + n - 10 * tens;
        buf[p + 3] = CR;
        buf[p + 4] = LF;
      } else {
        // A one-digit length: the text moves one byte closer.
        buf[p + 1] = 48 + n;
        buf[p + 2] = CR;
        buf[p + 3] = LF;
        for (let i = start; i < end; i++) buf[i - 1] = buf[i]!;
        end--;
      }
    }
    buf[end] = CR;
    buf[end + 1] = LF;
    this.length = end + 2;
  }

  /**
   * Writes x without making a string when it is a short decimal (at most 6 fraction digits,
   * |x| < 1e9, such as 1.5 or 0.25): the digits of m = x·10^k for the least k with m / 10^k === x
   * are then exactly the shortest round-trip text String(x) gives (below 1e9 an ulp times 10^6 is
   * under 1, so no other k-digit decimal reads back to x). Returns false to leave x to String().
   */
  private shortDecimal(x: number): boolean {
    const magnitude = x < 0 ? -x : x;
    if (!(magnitude >= 1e-6 && magnitude < 1e9)) return false;
    for (let k = 1; k <= 6; k++) {
      const scale = POWERS_OF_TEN[k];
      const m = Math.round(magnitude * scale);
      if (m / scale !== magnitude) continue;
      // Below 1e9 and 1e6: both parts fit int32, so the digit loops below stay in integer arithmetic.
      const whole = Math.floor(magnitude) | 0;
      const fraction = (m - whole * scale) | 0;
      const wholeDigits = decimalLength(whole);
      const length = (x < 0 ? 1 : 0) + wholeDigits + 1 + k;
      this.ensure(length + HEADER_ROOM);
      const buf = this.buf;
      let p = this.length;
      if (this.proto === 3)
        buf[p++] = 44; // ,
      else {
        // `$<length>\r\n`: the length is at most 17, one or two digits.
        buf[p++] = 36; // $
        if (length >= 10) {
          buf[p++] = 49; // 1
          buf[p++] = 38 + length; // 48 + length - 10
        } else buf[p++] = 48 + length;
        buf[p++] = CR;
        buf[p++] = LF;
      }
      if (x < 0) buf[p++] = 45; // -
      // The whole part's digits, then '.', then the fraction's k digits, leading zeros included.
      p += wholeDigits;
      writeDigitsBackward(buf, p, whole, wholeDigits);
      buf[p++] = 46; // .
      p += k;
      writeDigitsBackward(buf, p, fraction, k);
      buf[p++] = CR;
      buf[p++] = LF;
      this.length = p;
      return true;
    }
    return false;
  }

  /** As double(), with the shortest text that identifies `x` as a float32 (formatFloat32). */
  float32(x: number): void {
    x = Math.fround(x);
    if (Number.isInteger(x) && x <= FLOAT32_EXACT_INTEGER_LIMIT && x >= -FLOAT32_EXACT_INTEGER_LIMIT && !(x === 0 && 1 / x < 0)) {
      this.integralNumber(x);
    } else if (!this.shortestFloat32(x)) {
      this.doubleText(formatFloat32(x));
    }
  }

  /** RESP3 `,text\r\n`; RESP2 bulk `text` (text already formatted). */
  doubleText(text: string): void {
    if (this.proto === 3) this.line(44 /* , */, text);
    else this.bulk(text);
  }

  /** RESP3 `#t\r\n` / `#f\r\n`; RESP2 `:1\r\n` / `:0\r\n`. */
  boolean(b: boolean): void {
    this.ensure(4);
    const buf = this.buf;
    const p = this.length;
    if (this.proto === 3) {
      buf[p] = 35; // '#'
      buf[p + 1] = b ? 116 /* t */ : 102 /* f */;
    } else {
      buf[p] = 58; // ':'
      buf[p + 1] = b ? 49 : 48;
    }
    buf[p + 2] = CR;
    buf[p + 3] = LF;
    this.length = p + 4;
  }

  /** RESP3 `=len\r\n<format>:<text>\r\n` (format is the 3-letter type); RESP2 bulk `text`. */
  verbatim(text: string, format = "txt"): void {
    if (this.proto !== 3) {
      this.bulk(text);
      return;
    }
    const formatBytes = utf8Length(format);
    const textBytes = utf8Length(text);
    this.ensure(formatBytes + 1 + textBytes + HEADER_ROOM);
    this.header(61 /* = */, formatBytes + 1 + textBytes);
    const buf = this.buf;
    let p = writeUtf8(buf, this.length, format, false);
    buf[p++] = 58; // ':'
    p = writeUtf8(buf, p, text, false);
    buf[p++] = CR;
    buf[p++] = LF;
    this.length = p;
  }

  /** Appends already-encoded RESP bytes src[start, end). */
  raw(src: Uint8Array, start: number, end: number): void {
    this.ensure(end - start);
    this.length = copyBytes(this.buf, this.length, src, start, end);
  }

  /** `<type>n\r\n` for a safe integer n. */
  private header(type: number, n: number): void {
    this.ensure(HEADER_ROOM);
    const buf = this.buf;
    let p = this.length;
    buf[p++] = type;
    p = writeDecimal(buf, p, n);
    buf[p++] = CR;
    buf[p++] = LF;
    this.length = p;
  }

  /** `<type>s\r\n`, with CR/LF in `s` turned into spaces. */
  private line(type: number, s: string): void {
    this.ensure(s.length * 3 + 3);
    const buf = this.buf;
    let p = this.length;
    buf[p++] = type;
    p = writeUtf8(buf, p, s, true);
    buf[p++] = CR;
    buf[p++] = LF;
    this.length = p;
  }

  /** A double or float32 whose text is its integer digits: written without a string. */
  private integralNumber(n: number): void {
    if (this.proto === 3) {
      this.header(44 /* , */, n);
      return;
    }
    const digits = n < 0 ? 1 + decimalLength(-n) : decimalLength(n);
    this.ensure(digits + 2 * HEADER_ROOM);
    this.header(36 /* $ */, digits);
    const buf = this.buf;
    let p = writeDecimal(buf, this.length, n);
    buf[p++] = CR;
    buf[p++] = LF;
    this.length = p;
  }

  private resp3Null(): void {
    this.ensure(3);
    const buf = this.buf;
    const p = this.length;
    buf[p] = 95; // '_'
    buf[p + 1] = CR;
    buf[p + 2] = LF;
    this.length = p + 3;
  }

  private bulkUtf8(s: string): void {
    const byteLength = utf8Length(s);
    this.ensure(byteLength + HEADER_ROOM);
    this.header(36 /* $ */, byteLength);
    const buf = this.buf;
    let p = writeUtf8(buf, this.length, s, false);
    buf[p++] = CR;
    buf[p++] = LF;
    this.length = p;
  }
}

/**
 * False when x cannot be a short decimal (ReplyWriter.shortDecimal): such a decimal times 10^6 is
 * within two roundings (2^-52 relative) of an integer, and other doubles almost never are, so
 * they skip trying each k. Kept small to be inlined.
 */
function mayBeShortDecimal(x: number): boolean {
  const millionths = (x < 0 ? -x : x) * 1e6;
  const fraction = millionths - Math.floor(millionths);
  const slack = millionths * 2 ** -50;
  return fraction <= slack || fraction >= 1 - slack;
}

/** UTF-8 byte length of `s` as TextEncoder would produce it (lone surrogates become U+FFFD). */
function utf8Length(s: string): number {
  let bytes = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && isLowSurrogate(s.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Writes `s` as UTF-8 at `pos` (room already ensured); returns the end position. */
function writeUtf8(buf: Uint8Array, pos: number, s: string, oneLine: boolean): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      buf[pos++] = oneLine && (c === CR || c === LF) ? SPACE : c;
    } else if (c < 0x800) {
      buf[pos++] = 0xc0 | (c >> 6);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && isLowSurrogate(s.charCodeAt(i + 1))) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      buf[pos++] = 0xf0 | (c >> 18);
      buf[pos++] = 0x80 | ((c >> 12) & 0x3f);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // a lone surrogate has no UTF-8 form
      buf[pos++] = 0xe0 | (c >> 12);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

function writeAscii(buf: Uint8Array, pos: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[pos++] = s.charCodeAt(i);
  return pos;
}
