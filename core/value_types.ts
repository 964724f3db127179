/**
 * The value types, as one table: width, how a client's text becomes file bytes, and how file
 * bytes become a reply.
 *
 * Commands never switch on the type: they look the type up once at MMAP time and call its
 * `encode` / `reply`. Encoding writes into a scratch buffer first, so a write command can check
 * every value before it changes a byte of the file.
 */
import type { ArgList } from "./args.ts";
import { Errors } from "./errors.ts";
import { argInt, argString } from "./args.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import type { MappedFile } from "./mapped_file.ts";

export interface ValueType {
  /** The name VTYPE replies with. */
  readonly name: string;
  /** Bytes per value; 0 when MMAP gives it (string). */
  readonly width: number;
  /** True for the integer and floating-point types. */
  readonly numeric: boolean;
  /** Encodes argument i into `dst` at `off` (`width` bytes); returns null, or the error reply. */
  encode(a: ArgList, i: number, dst: DataView, off: number, width: number): string | null;
  /** Appends the value stored at `at` as one reply. */
  reply(w: ReplyWriter, view: DataView, bytes: Uint8Array, at: number, width: number): void;
  /**
   * Appends values of `file` as replies, one after another: those at the positions
   * indices[start, end) when `indices` is given, else those at positions [start, end). Every
   * position must be inside the file. The hot types loop themselves, with no call per value.
   */
  replyValues(w: ReplyWriter, file: MappedFile, indices: Float64Array | null, start: number, end: number): void;
  /** The value at `at` as a JavaScript number (64-bit integers may round), for statistics. */
  toNumber(view: DataView, at: number): number;
}

const TWO32 = 4294967296;

/** A type whose `replyValues` calls its one-value `reply` per value (the types read less often than the floats). */
function withEachValue(type: Omit<ValueType, "replyValues">): ValueType {
  const reply = type.reply;
  return {
    ...type,
    replyValues(w, file, indices, start, end) {
      const width = file.valueSize;
      for (let k = start; k < end; k++) {
        file.locate((indices === null ? k : indices[k]) * width);
        reply(w, file.view, file.bytes, file.at, width);
      }
    },
  };
}

const INTEGER_TEXT = /^[+-]?[0-9]+$/;

/** Argument i as an exact BigInt, or null when it is not an integer. Cold path for 64-bit extremes. */
function parseBigInt(a: ArgList, i: number): bigint | null {
  const text = argString(a, i);
  return INTEGER_TEXT.test(text) ? BigInt(text) : null;
}

interface IntSpec {
  name: string;
  width: number;
  min: number;
  max: number;
  get(view: DataView, at: number): number;
  set(view: DataView, at: number, v: number): void;
}

/** An integer type of at most 32 bits: every value is a safe JavaScript number. */
function smallInt(spec: IntSpec): ValueType {
  const rangeError = Errors.valueOutOfRange(spec.min, spec.max);
  return withEachValue({
    name: spec.name,
    width: spec.width,
    numeric: true,
    encode(a, i, dst, off) {
      let n = argInt(a, i);
      if (n !== n) {
        // Beyond the exact fast path: an integer all the same (many digits or leading zeros)?
        const big = parseBigInt(a, i);
        if (big === null) return Errors.valueNotInteger;
        if (big < BigInt(spec.min) || big > BigInt(spec.max)) return rangeError;
        n = Number(big);
      }
      if (n < spec.min || n > spec.max) return rangeError;
      spec.set(dst, off, n);
      return null;
    },
    reply(w, view, _bytes, at) {
      w.integer(spec.get(view, at));
    },
    toNumber: spec.get,
  });
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/** int64 and uint64: exact. Numbers within ±2^53 take a path without BigInt. */
function bigInt(name: string, signed: boolean): ValueType {
  const min = signed ? INT64_MIN : 0n;
  const max = signed ? INT64_MAX : UINT64_MAX;
  const rangeError = Errors.valueOutOfRange(min, max);
  return withEachValue({
    name,
    width: 8,
    numeric: true,
    encode(a, i, dst, off) {
      const n = argInt(a, i);
      if (n === n && Math.abs(n) <= Number.MAX_SAFE_INTEGER) {
        if (!signed && n < 0) return rangeError;
        const high = Math.floor(n / TWO32);
        dst.setUint32(off, n - high * TWO32, true);
        dst.setInt32(off + 4, high, true);
        return null;
      }
      const big = parseBigInt(a, i);
      if (big === null) return Errors.valueNotInteger;
      if (big < min || big > max) return rangeError;
      dst.setBigUint64(off, BigInt.asUintN(64, big), true);
      return null;
    },
    reply(w, view, _bytes, at) {
      const high = signed ? view.getInt32(at + 4, true) : view.getUint32(at + 4, true);
      if (high >= -0x200000 && high < 0x200000) {
        w.integer(high * TWO32 + view.getUint32(at, true));
        return;
      }
      // Above 2^63-1 (uint64 only) bigint() writes the exact decimal as a bulk string.
      w.bigint(signed ? view.getBigInt64(at, true) : view.getBigUint64(at, true));
    },
    toNumber(view, at) {
      const high = signed ? view.getInt32(at + 4, true) : view.getUint32(at + 4, true);
      return high * TWO32 + view.getUint32(at, true);
    },
  });
}

const DECIMAL_TEXT = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;
const NAN_TEXT = /^[+-]?nan$/i;

/** The error for argument i, which is not a number of the type: it says so of NaN, which is never stored. */
function notNumberError(a: ArgList, i: number, type: "float" | "double"): string {
  return NAN_TEXT.test(argString(a, i)) ? Errors.nanNotStored(type) : Errors.valueNotNumber(type);
}
const INFINITY_TEXT = /^([+-]?)inf(inity)?$/i;
const POWERS_OF_TEN = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/**
 * Argument i as a double, or NaN when it is not a decimal number or an infinity.
 * Short plain decimals ("1.5", "-20", "0.125") take Clinger's exact fast path: an integer below
 * 2^53 divided by an exact power of ten rounds correctly. Everything else goes through Number().
 */
function parseDouble(a: ArgList, i: number): number {
  let p = a.argStart[i];
  const end = a.argEnd[i];
  const buf = a.buf;
  if (p < end && end - p <= 16) {
    let negative = false;
    if (buf[p] === 45 || buf[p] === 43) {
      negative = buf[p] === 45;
      p++;
    }
    let mantissa = 0;
    let digits = 0;
    let fraction = -1;
    for (; p < end; p++) {
      const c = buf[p];
      if (c === 46 && fraction < 0) {
        fraction = 0;
        continue;
      }
      const d = c - 48;
      if (d < 0 || d > 9) break;
      mantissa = mantissa * 10 + d;
      digits++;
      if (fraction >= 0) fraction++;
    }
    if (p === end && digits > 0 && digits <= 15) {
      const v = fraction > 0 ? mantissa / POWERS_OF_TEN[fraction] : mantissa;
      return negative ? -v : v;
    }
  }
  const text = argString(a, i);
  if (DECIMAL_TEXT.test(text)) return Number(text);
  const inf = INFINITY_TEXT.exec(text);
  if (inf) return inf[1] === "-" ? -Infinity : Infinity;
  return NaN;
}

/** Files of at most this many values have int32 indices and byte offsets (below 2^31). */
const SMALL_FILE_LIMIT = 2 ** 28;

// A run of float values is copied here a chunk at a time (readInto checks the range). The typed
// arrays read the bytes in the machine's order, little-endian like the files on every platform
// mmapd runs on (x86-64, arm64).
const RUN_CHUNK = 4096;
const runBytes = new Uint8Array(RUN_CHUNK * 8);
const runDoubles = new Float64Array(runBytes.buffer);
const runFloats = new Float32Array(runBytes.buffer);

/** float32 and float64: finite values beyond the type's range are refused, NaN is never accepted. */
function floating(name: string, width: 4 | 8): ValueType {
  const overflow = Errors.valueOverflow(name);
  const get =
    width === 4 ? (view: DataView, at: number) => view.getFloat32(at, true) : (view: DataView, at: number) => view.getFloat64(at, true);
  return {
    name,
    width,
    numeric: true,
    encode(a, i, dst, off) {
      const x = parseDouble(a, i);
      if (x !== x) return notNumberError(a, i, name === "float" ? "float" : "double");
      if ((x === Infinity || x === -Infinity) && !INFINITY_TEXT.test(argString(a, i))) return overflow;
      if (width === 8) {
        dst.setFloat64(off, x, true);
        return null;
      }
      const f = Math.fround(x);
      if ((f === Infinity || f === -Infinity) && f !== x) return overflow;
      dst.setFloat32(off, f, true);
      return null;
    },
    reply:
      width === 4
        ? (w, view, _bytes, at) => w.float32(view.getFloat32(at, true))
        : (w, view, _bytes, at) => w.double(view.getFloat64(at, true)),
    // The reads that matter most (VMGET, VALL of doubles): one loop, no call per value but the format.
    // Runs (VALL, VRANGE) are copied out a chunk at a time and read from a typed array, with no
    // locate and DataView read per value (which also keeps them clear of what other files' reads
    // teach the JIT about locate: a float VALL after a double VALL ran 30% slower through it).
    // Index lists (VMGET) locate each value, the index as an int32 in files below 2^28 values
    // (2^31 bytes): positions that arrive as doubles, as read from the indices' Float64Array,
    // make the JIT compile locate for doubles, which slowed the reads after them by 40%.
    replyValues:
      width === 4
        ? (w, file, indices, start, end) => {
            if (indices === null) {
              for (let k = start; k < end; k += RUN_CHUNK) {
                const n = Math.min(RUN_CHUNK, end - k);
                file.readInto(k * 4, n * 4, runBytes, 0);
                for (let i = 0; i < n; i++) w.float32(runFloats[i]!);
              }
            } else if (file.count <= SMALL_FILE_LIMIT) {
              for (let k = start; k < end; k++) {
                file.locate((indices[k]! | 0) * 4);
                w.float32(file.view.getFloat32(file.at, true));
              }
            } else {
              for (let k = start; k < end; k++) {
                file.locate(indices[k]! * 4);
                w.float32(file.view.getFloat32(file.at, true));
              }
            }
          }
        : (w, file, indices, start, end) => {
            if (indices === null) {
              for (let k = start; k < end; k += RUN_CHUNK) {
                const n = Math.min(RUN_CHUNK, end - k);
                file.readInto(k * 8, n * 8, runBytes, 0);
                for (let i = 0; i < n; i++) w.double(runDoubles[i]!);
              }
            } else if (file.count <= SMALL_FILE_LIMIT) {
              for (let k = start; k < end; k++) {
                file.locate((indices[k]! | 0) * 8);
                w.double(file.view.getFloat64(file.at, true));
              }
            } else {
              for (let k = start; k < end; k++) {
                file.locate(indices[k]! * 8);
                w.double(file.view.getFloat64(file.at, true));
              }
            }
          },
    toNumber: get,
  };
}

/**
 * x87 80-bit extended precision, stored in 16 bytes (as C's long double on x86-64): 64-bit
 * mantissa with an explicit integer bit, 15-bit exponent, sign. Read and written through double.
 */
function writeLongDouble(view: DataView, at: number, x: number): void {
  for (let k = 0; k < 16; k += 4) view.setUint32(at + k, 0, true);
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  if (x !== x) {
    view.setUint32(at + 4, 0xc0000000, true);
    view.setUint16(at + 8, 0x7fff, true);
    return;
  }
  const ax = Math.abs(x);
  if (ax === Infinity) {
    view.setUint32(at + 4, 0x80000000, true);
    view.setUint16(at + 8, sign | 0x7fff, true);
    return;
  }
  if (ax === 0) {
    view.setUint16(at + 8, sign, true);
    return;
  }
  // Take the double's own bits: exact, and subnormal doubles are normal in the 15-bit exponent.
  const bits = new DataView(scratch8);
  bits.setFloat64(0, ax, true);
  let exponent = (bits.getUint16(6, true) >> 4) & 0x7ff;
  let high = bits.getUint32(4, true) & 0xfffff; // 20 mantissa bits
  let low = bits.getUint32(0, true); // 32 mantissa bits
  if (exponent === 0) {
    // Subnormal double: normalise the 52-bit fraction.
    exponent = 1;
    while ((high & 0x100000) === 0) {
      high = ((high << 1) | (low >>> 31)) >>> 0;
      low = (low << 1) >>> 0;
      exponent--;
    }
    high &= 0xfffff;
  }
  // 1.f (53 bits) shifted to the top of 64 bits: integer bit, then 52 fraction bits, then 11 zeros.
  const mantHigh = (0x80000000 | (high << 11) | (low >>> 21)) >>> 0;
  const mantLow = (low << 11) >>> 0;
  view.setUint32(at, mantLow, true);
  view.setUint32(at + 4, mantHigh, true);
  view.setUint16(at + 8, sign | (exponent - 1023 + 16383), true);
}

const scratch8 = new ArrayBuffer(8);

function readLongDouble(view: DataView, at: number): number {
  const mantLow = view.getUint32(at, true);
  const mantHigh = view.getUint32(at + 4, true);
  const se = view.getUint16(at + 8, true);
  const sign = se & 0x8000 ? -1 : 1;
  const exponent = se & 0x7fff;
  if (exponent === 0x7fff) return (mantHigh & 0x7fffffff) === 0 && mantLow === 0 ? sign * Infinity : NaN;
  // value = mantissa / 2^63 * 2^(exponent - 16383); two exact halves keep 53 bits of precision.
  const mantissa = mantHigh * TWO32 + mantLow;
  if (mantissa === 0) return sign * 0;
  const e = (exponent === 0 ? 1 : exponent) - 16383 - 63;
  return sign * scaleByPowerOfTwo(mantissa, e);
}

/** x · 2^e without overflowing the intermediate power (2^e alone may be out of double range). */
function scaleByPowerOfTwo(x: number, e: number): number {
  while (e > 1000) {
    x *= 2 ** 1000;
    e -= 1000;
  }
  while (e < -1000) {
    x *= 2 ** -1000;
    e += 1000;
  }
  return x * 2 ** e;
}

const longDouble: ValueType = withEachValue({
  name: "long_double",
  width: 16,
  numeric: true,
  encode(a, i, dst, off) {
    const x = parseDouble(a, i);
    if (x !== x) return notNumberError(a, i, "double");
    if ((x === Infinity || x === -Infinity) && !INFINITY_TEXT.test(argString(a, i))) return Errors.valueOverflow("long_double");
    writeLongDouble(dst, off, x);
    return null;
  },
  reply(w, view, _bytes, at) {
    w.double(readLongDouble(view, at));
  },
  toNumber: readLongDouble,
});

/** Byte strings of at most `width` bytes, NUL-padded; the reply stops at the first NUL. */
const fixedString: ValueType = withEachValue({
  name: "string",
  width: 0,
  numeric: false,
  encode(a, i, dst, off, width) {
    const start = a.argStart[i];
    const len = a.argEnd[i] - start;
    if (len > width) return Errors.valueTooLong(width);
    const out = new Uint8Array(dst.buffer, dst.byteOffset + off, width);
    out.set(a.buf.subarray(start, start + len));
    out.fill(0, len);
    return null;
  },
  reply(w, _view, bytes, at, width) {
    let end = at;
    const stop = at + width;
    while (end < stop && bytes[end] !== 0) end++;
    w.bulkBytes(bytes, at, end);
  },
  toNumber() {
    return NaN;
  },
});

/** Every type by every name MMAP accepts (aliases included). */
export const VALUE_TYPES: ReadonlyMap<string, ValueType> = (() => {
  const m = new Map<string, ValueType>();
  const add = (t: ValueType, ...aliases: string[]) => {
    m.set(t.name, t);
    for (const alias of aliases) m.set(alias, t);
  };
  add(smallInt({ name: "int8", width: 1, min: -128, max: 127, get: (v, at) => v.getInt8(at), set: (v, at, n) => v.setInt8(at, n) }));
  add(smallInt({ name: "uint8", width: 1, min: 0, max: 255, get: (v, at) => v.getUint8(at), set: (v, at, n) => v.setUint8(at, n) }));
  add(
    smallInt({
      name: "int16",
      width: 2,
      min: -32768,
      max: 32767,
      get: (v, at) => v.getInt16(at, true),
      set: (v, at, n) => v.setInt16(at, n, true),
    }),
  );
  add(
    smallInt({
      name: "uint16",
      width: 2,
      min: 0,
      max: 65535,
      get: (v, at) => v.getUint16(at, true),
      set: (v, at, n) => v.setUint16(at, n, true),
    }),
  );
  add(
    smallInt({
      name: "int32",
      width: 4,
      min: -2147483648,
      max: 2147483647,
      get: (v, at) => v.getInt32(at, true),
      set: (v, at, n) => v.setInt32(at, n, true),
    }),
  );
  add(
    smallInt({
      name: "uint32",
      width: 4,
      min: 0,
      max: 4294967295,
      get: (v, at) => v.getUint32(at, true),
      set: (v, at, n) => v.setUint32(at, n, true),
    }),
  );
  add(bigInt("int64", true));
  add(bigInt("uint64", false));
  add(floating("float", 4), "float32");
  add(floating("double", 8), "float64");
  add(longDouble);
  add(fixedString);
  return m;
})();

/** The type `double`, which the blog form `MMAP key path` uses. */
export const DEFAULT_TYPE = VALUE_TYPES.get("double")!;
