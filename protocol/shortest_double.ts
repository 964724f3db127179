/**
 * Shortest round-trip texts of doubles and float32 values, written as bytes straight into a
 * buffer: the same bytes as `String(x)` (and as formatFloat32 for float32), without a string.
 *
 * The algorithm is Schubfach's (Giulietti, "The Schubfach way to render doubles", 2020), carried
 * out in double-double arithmetic instead of 128-bit integers, which JavaScript lacks:
 *  - v = c·2^q is scaled to S = v·10^-k, with k chosen so that the rounding interval of v,
 *    [S - Hl, S + Hr] in these units, is between 1 and 10 wide. The shortest text is then the
 *    multiple of 10 inside the interval if there is one, else the integer inside nearest to S.
 *  - S is c times a per-exponent constant G held as two doubles (about 106 bits), multiplied with
 *    Dekker's exact product; S comes out as 100·I + r with I an exact integer and r known to
 *    within about 1e-13.
 *  - Every decision compares r with a boundary or with a midpoint between two candidates. When
 *    they are closer than a tolerance (1e-10), carefulDecision decides exactly where the exponent
 *    puts every such distance on a coarse lattice (an apparent zero is then a true zero: a value
 *    on a boundary, or an exact tie), and otherwise the writer returns -1 and the caller uses the
 *    exact slow path (String(x), formatFloat32). Random bit patterns, normal variates, fixed-point
 *    and decimal data never get there in the tests' tens of millions of values.
 * The tables are computed with BigInt when the module loads (a few milliseconds).
 */

import { DIGIT_PAIRS, decimalLength, writeDigitsBackward } from "./number_format.ts";

/**
 * Bytes a call may write from its position on: the longest text, `-1.2345678901234567e-308`, is
 * 24, and digits are written in blocks that may run a few bytes past the text's end.
 */
export const SHORTEST_ROOM = 32;

/** In units of the last digit of S, where the approximation errs by less than 1e-13. */
const DOUBLE_TOLERANCE = 1e-10;
/**
 * float32 texts are defined by reading back through a double (Math.fround(Number(text))), which
 * can differ from reading straight to float32 only within 2^-53·S (< 2e-8) of a boundary.
 */
const FLOAT32_TOLERANCE = 1e-7;

const STRIDE = 9;
// Fields of a table entry, one entry per biased exponent (and one more per exponent for the
// powers of two, whose interval is narrower below): T = S/100 = c·G, G = Gh + Gl.
const GH = 0;
const GH_HIGH = 1; // Gh split in two halves of 26 bits, so that c·Gh is exact in two doubles
const GH_LOW = 2;
const GL = 3;
const H_LOW = 4; // half-widths of the rounding interval below and above, in units of S
const H_HIGH = 5;
const K = 6; // the decimal exponent: v = S·10^K
const EXACT = 7; // 1 when every distance is a multiple of a step far above the tolerance (carefulDecision)
const Q = 8; // the binary exponent: v = c·2^Q

/** Veltkamp's splitter 2^27 + 1: x·SPLIT splits a double into two halves of at most 26 bits. */
const SPLIT = 134217729;

/** 10^0 to 10^330, each from the one before. */
const POWERS_OF_TEN: bigint[] = [1n];
for (let i = 1; i <= 330; i++) POWERS_OF_TEN.push(POWERS_OF_TEN[i - 1]! * 10n);

/** 10^m ≈ z·2^-shift with z a 120-bit integer, as the doubles nearest z and z - high; by m. */
const scaledPowersOfTen = new Map<number, { high: number; low: number; shift: number }>();
function scaledPowerOfTen(m: number): { high: number; low: number; shift: number } {
  let p = scaledPowersOfTen.get(m);
  if (p === undefined) {
    const shift = 120 - Math.ceil(m * Math.log2(10));
    const num = POWERS_OF_TEN[Math.max(m, 0)]! << BigInt(Math.max(shift, 0));
    const den = POWERS_OF_TEN[Math.max(-m, 0)]! << BigInt(Math.max(-shift, 0));
    const z = (2n * num + den) / (2n * den);
    const high = Number(z);
    p = { high, low: Number(z - BigInt(high)), shift };
    scaledPowersOfTen.set(m, p);
  }
  return p;
}

/**
 * The constants for every exponent of a binary format with `fractionBits` stored fraction bits and
 * exponent bias `bias`: entries 0..maxBiased for the biased exponents, and entries
 * irregularOffset + b for the powers of two 2^(b - bias), whose lower neighbour is twice as close.
 */
function buildTable(fractionBits: number, bias: number, maxBiased: number, irregularOffset: number, tolerance: number): Float64Array {
  const table = new Float64Array(2 * irregularOffset * STRIDE);
  for (let variant = 0; variant < 2; variant++) {
    for (let b = variant === 0 ? 0 : 2; b <= maxBiased; b++) {
      const q = (b === 0 ? 1 : b) - bias - fractionBits;
      // The ulp 2^q, scaled by 10^-k, must leave an interval at least 1 wide: 2^q·10^-k in
      // [1, 10), or, for a power of two, its width 3/4·2^q·10^-k in [1, 10). So k is
      // floor(log10(2^q)), or floor(log10(3/4·2^q)), by Schubfach's integer approximations of
      // log10(2) and log10(3/4), exact for every exponent here (the tests cover each).
      const k = Math.floor((variant === 0 ? q * 1262611 : q * 1262611 - 524031) / 4194304);
      // G = 2^q·10^(-k-2) as two doubles: 10^(-k-2) to 120 bits, scaled by a power of two (exact:
      // G is near 0.1).
      const power = scaledPowerOfTen(-k - 2);
      const gh = power.high * 2 ** (q - power.shift);
      const gl = power.low * 2 ** (q - power.shift);
      const scaled = gh * SPLIT;
      const ghHigh = scaled - (scaled - gh);
      const at = (variant * irregularOffset + b) * STRIDE;
      table[at + GH] = gh;
      table[at + GH_HIGH] = ghHigh;
      table[at + GH_LOW] = gh - ghHigh;
      table[at + GL] = gl;
      // Half an ulp is 2^(q-1)·10^-k = 50·G; below a power of two, a quarter.
      table[at + H_HIGH] = 50 * gh;
      table[at + H_LOW] = variant === 0 ? 50 * gh : 25 * gh;
      table[at + K] = k;
      // S, the boundaries (2c ± 1)·2^(q-1)·10^-k (or (4c - 1)·2^(q-2)·10^-k), the integers and
      // the midpoints between them are all multiples of 1/step, step = 5^max(k,0)·2^max(1, k+2-q).
      const step = 5 ** Math.max(k, 0) * 2 ** Math.max(1, k + 2 - q);
      table[at + EXACT] = step * tolerance < 0.01 ? 1 : 0;
      table[at + Q] = q;
    }
  }
  return table;
}

const DOUBLE_TABLE = buildTable(52, 1023, 2046, 2048, DOUBLE_TOLERANCE);
const FLOAT32_TABLE = buildTable(23, 127, 254, 256, FLOAT32_TOLERANCE);

const float64 = new Float64Array(1);
const float64Words = new Uint32Array(float64.buffer);
const float32 = new Float32Array(1);
const float32Word = new Uint32Array(float32.buffer);

/** "0000" to "9999" as little-endian 32-bit words, for one DataView store per four digits. */
const FOUR_DIGITS: Uint32Array = (() => {
  const words = new Uint32Array(10000);
  for (let i = 0; i < 10000; i++) {
    words[i] =
      (48 + ((i / 1000) | 0)) | ((48 + (((i / 100) | 0) % 10)) << 8) | ((48 + (((i / 10) | 0) % 10)) << 16) | ((48 + (i % 10)) << 24);
  }
  return words;
})();

/** "0000" as a little-endian 32-bit word. */
const ZEROS = 0x30303030;

/**
 * Writes the shortest text of the finite, non-zero double x at buf[pos] (room for
 * SHORTEST_ROOM bytes is the caller's) and returns the end, or -1 when x is zero, not
 * finite, or too close to call (then String(x) is the text).
 */
export function writeShortestDouble(buf: Uint8Array, view: DataView, pos: number, x: number): number {
  float64[0] = x;
  const low = float64Words[0]!;
  const high = float64Words[1]!;
  const biased = (high >>> 20) & 0x7ff;
  const fraction = high & 0xfffff;
  if (biased === 0x7ff) return -1;
  if (biased === 0 && fraction === 0 && low === 0) return -1;
  const c = (biased === 0 ? fraction : fraction + 0x100000) * 4294967296 + low;
  const entry = fraction === 0 && low === 0 && biased > 1 ? 2048 + biased : biased;
  return writeShortest(buf, view, pos, high >>> 31 !== 0, c, DOUBLE_TABLE, entry * STRIDE, DOUBLE_TOLERANCE);
}

/**
 * Writes the shortest text of x as a float32 (x is rounded to float32 first), as formatFloat32
 * spells it, and returns the end, or -1 when x is zero, not finite, or too close to call.
 */
export function writeShortestFloat32(buf: Uint8Array, view: DataView, pos: number, x: number): number {
  float32[0] = x;
  const bits = float32Word[0]!;
  const biased = (bits >>> 23) & 0xff;
  const fraction = bits & 0x7fffff;
  if (biased === 0xff || (biased === 0 && fraction === 0)) return -1;
  const c = biased === 0 ? fraction : fraction + 0x800000;
  const entry = fraction === 0 && biased > 1 ? 256 + biased : biased;
  return writeShortest(buf, view, pos, bits >>> 31 !== 0, c, FLOAT32_TABLE, entry * STRIDE, FLOAT32_TOLERANCE);
}

/** Writes the shortest text of ±c·2^q, q and the other constants being table[at...]; or returns -1. */
function writeShortest(
  buf: Uint8Array,
  view: DataView,
  pos: number,
  negative: boolean,
  c: number,
  table: Float64Array,
  at: number,
  tolerance: number,
): number {
  // T = c·G = S/100, as p + g: p = c·Gh rounded, and its rounding error found exactly (Dekker).
  const gh = table[at + GH]!;
  const split = c * SPLIT;
  const cHigh = split - (split - c);
  const cLow = c - cHigh;
  const p = c * gh;
  const error = cHigh * table[at + GH_HIGH]! - p + cHigh * table[at + GH_LOW]! + cLow * table[at + GH_HIGH]! + cLow * table[at + GH_LOW]!;
  const g = error + c * table[at + GL]!;
  // T < 2^50, so p's fraction bits are exact and wholes = floor(T) is an exact integer.
  let wholes = Math.floor(p);
  let fraction = p - wholes + g;
  if (fraction < 0) {
    wholes -= 1;
    fraction += 1;
  } else if (fraction >= 1) {
    wholes += 1;
    fraction -= 1;
  }
  // From here on S = 100·wholes + r, and candidates are integers relative to 100·wholes.
  const r = fraction * 100;
  const lowerHalf = table[at + H_LOW]!;
  const upperHalf = table[at + H_HIGH]!;
  const lower = r - lowerHalf;
  const upper = r + upperHalf;
  // The interval is narrower than 10 and reaches less than 5 either side, so the only multiple of
  // 10 it can hold is the nearest one; it reaches at least 1/2 either side, so it holds the integer
  // nearest to S. Positive margins mean inside. (Below a power of two it reaches less far down and
  // further up: carefulDecision looks at both neighbours there.)
  // (Truncation is floor here: r is at least -1e-13 or so.)
  const near10 = ((r * 0.1 + 0.5) | 0) * 10;
  const below10 = near10 - lower;
  const above10 = upper - near10;
  const near1 = (r + 0.5) | 0;
  const below1 = near1 - lower;
  const above1 = upper - near1;
  const half = r - near1;
  let last: number;
  let rounded: number;
  if (
    lowerHalf !== upperHalf ||
    Math.abs(below10) < tolerance ||
    Math.abs(above10) < tolerance ||
    Math.abs(below1) < tolerance ||
    Math.abs(above1) < tolerance ||
    Math.abs(half) > 0.5 - tolerance
  ) {
    // A power of two, or a candidate on a boundary or halfway between two, as far as the
    // approximation can tell.
    // S alone (for a tie) lies on a coarser lattice than the boundaries when c ends in zero bits:
    // 1/step with step = 5^max(k,0)·2^max(1, k - q - zeros). Fixed-point data (n/2^20) ties often.
    const k = table[at + K]!;
    const tieStep = 5 ** Math.max(k, 0) * 2 ** Math.max(1, k - table[at + Q]! - trailingZeros(c));
    last = carefulDecision(r, lower, upper, tolerance, c % 2 === 0, table[at + EXACT] === 1, tieStep * tolerance < 0.01);
    if (last === NO_DECISION) return -1;
    rounded = +(last % 10 === 0);
  } else {
    // The multiple of 10 when it is inside (both margins positive: they cannot both be negative),
    // chosen by arithmetic rather than a branch, which data this random would mispredict.
    rounded = +(below10 * above10 > 0);
    last = near1 + rounded * (near10 - near1);
  }
  if (last < 0) {
    wholes -= 1;
    last += 100;
  } else if (last >= 100) {
    wholes += 1;
    last -= 100;
  }

  // D = 100·wholes + last = high·10^8 + low, both parts int32 (indices and digit arithmetic stay
  // int32 from here: a double-typed index makes every typed array access slow).
  // Exact: 1e-8 is slightly above 10^-8, by too little to reach the next integer below 10^15.
  const top = Math.floor(wholes * 1e-8);
  const middle = (wholes - top * 1e8) | 0;
  const middleHigh = (middle / 1000000) | 0;
  const high = ((top | 0) * 100 + middleHigh) | 0;
  const low = ((middle - middleHigh * 1000000) * 100 + last) | 0;
  // D has `length` digits; the text shows its first `count` (the rest are zeros), with the
  // decimal point after digit `point` (Number::toString's n).
  const length = high >= 10000000 ? 16 + +(high >= 100000000) : high > 0 ? 8 + decimalLength(high) : decimalLength(low);
  const point = (table[at + K]! | 0) + length;
  // The sign is written always and kept or not: half of all data is negative, a branch on it would
  // be mispredicted half the time. So are the choices below between layouts that data mixes.
  let o = pos;
  buf[o] = 45; // -
  o += +negative;
  if (point > -6 && point <= 21) {
    // Plain notation: the digits go at o + 1 + leading, after `leading` zeros (1 - point of them,
    // for "0.000ddd"); then the units digit and those before it move one place left, and the
    // point takes the place they leave.
    const t = 1 - point;
    const leading = t & ~(t >> 31); // max(1 - point, 0)
    const units = point + leading; // max(point, 1)
    const first = o + 1 + leading;
    view.setUint32(o + 1, ZEROS, true);
    view.setUint32(o + 5, ZEROS, true);
    writeDigits(buf, view, first, length, high, low);
    // Trailing zeros, which only a multiple of 10 has: usually just the one.
    let count = length - rounded;
    while (buf[first + count - 1] === 48) count--;
    for (let i = o; i < o + units; i++) buf[i] = buf[i + 1]!;
    if (count > point) {
      buf[o + units] = 46; // .
      return first + count;
    }
    // An integer: zeros up to the point (D's own trailing zeros are there already).
    for (let i = o + length; i < o + point; i++) buf[i] = 48;
    return o + point;
  }
  const first = o + 1;
  writeDigits(buf, view, first, length, high, low);
  let count = length - rounded;
  while (buf[first + count - 1] === 48) count--;
  // Exponent form: d[.ddd]e±n.
  buf[o] = buf[first]!;
  o = count > 1 ? first + count : first;
  if (count > 1) buf[first] = 46;
  buf[o++] = 101; // e
  let e = point - 1;
  if (e < 0) {
    buf[o++] = 45;
    e = -e;
  } else buf[o++] = 43; // +
  if (e >= 100) {
    const hundreds = (e / 100) | 0;
    buf[o++] = 48 + hundreds;
    e -= hundreds * 100;
    buf[o++] = DIGIT_PAIRS[2 * e]!;
    buf[o++] = DIGIT_PAIRS[2 * e + 1]!;
  } else if (e >= 10) {
    buf[o++] = DIGIT_PAIRS[2 * e]!;
    buf[o++] = DIGIT_PAIRS[2 * e + 1]!;
  } else buf[o++] = 48 + e;
  return o;
}

const NO_DECISION = -1000;

/**
 * writeShortest's choice made slowly, for powers of two and for candidates that lie on a boundary
 * or halfway between two as far as the approximation can tell. When `exact` (`tieExact` for the
 * distance to a midpoint), every such distance is a multiple of a lattice step far above the
 * tolerance, so one within the tolerance is exactly zero: a boundary then counts as inside when c
 * is even (round half to even reads it back to c), and a tie between two candidates goes to the
 * even one. Otherwise such a distance leaves the choice to the caller's fallback (NO_DECISION).
 */
function carefulDecision(
  r: number,
  lower: number,
  upper: number,
  tolerance: number,
  even: boolean,
  exact: boolean,
  tieExact: boolean,
): number {
  let unsure = false;
  const snap = (d: number, exactly: boolean) => {
    if (Math.abs(d) >= tolerance) return d;
    if (!exactly) unsure = true;
    return 0;
  };
  const inside = (x: number) => {
    const low = snap(x - lower, exact);
    const high = snap(upper - x, exact);
    return even ? low >= 0 && high >= 0 : low > 0 && high > 0;
  };
  // The multiples of 10 either side of S: at most one is inside, the interval being narrower than 10.
  const below10 = Math.floor((r + tolerance) * 0.1) * 10;
  let last = inside(below10) ? below10 : inside(below10 + 10) ? below10 + 10 : NO_DECISION;
  if (last === NO_DECISION) {
    // Else the nearer inside of the integers either side of S.
    const s = Math.floor(r + tolerance);
    const sInside = inside(s);
    const tInside = inside(s + 1);
    if (sInside && tInside) {
      const toward = snap(r - s - 0.5, tieExact);
      last = toward < 0 || (toward === 0 && s % 2 === 0) ? s : s + 1;
    } else last = sInside ? s : tInside ? s + 1 : NO_DECISION;
  }
  return unsure ? NO_DECISION : last;
}

/** The number of trailing zero bits of a positive integer below 2^53. */
function trailingZeros(c: number): number {
  const low = c % 4294967296;
  const word = low !== 0 ? low : c / 4294967296;
  // x & -x keeps the lowest set bit.
  return (low !== 0 ? 0 : 32) + 31 - Math.clz32(word & -word);
}

/**
 * Writes the `length` digits of high·10^8 + low (low < 10^8, high < 10^9) from buf[first] on.
 * A 16-digit number is written as 17 digits from first - 1, a leading zero included.
 */
function writeDigits(buf: Uint8Array, view: DataView, first: number, length: number, high: number, low: number): void {
  if (length >= 16) {
    const start = first + length - 17;
    const lead = (high / 100000000) | 0;
    buf[start] = 48 + lead;
    high -= lead * 100000000;
    let upper = (high / 10000) | 0;
    view.setUint32(start + 1, FOUR_DIGITS[upper]!, true);
    view.setUint32(start + 5, FOUR_DIGITS[high - upper * 10000]!, true);
    upper = (low / 10000) | 0;
    view.setUint32(start + 9, FOUR_DIGITS[upper]!, true);
    view.setUint32(start + 13, FOUR_DIGITS[low - upper * 10000]!, true);
  } else if (length > 8) {
    writeDigitsBackward(buf, first + length - 8, high, length - 8);
    const upper = (low / 10000) | 0;
    view.setUint32(first + length - 8, FOUR_DIGITS[upper]!, true);
    view.setUint32(first + length - 4, FOUR_DIGITS[low - upper * 10000]!, true);
  } else writeDigitsBackward(buf, first + length, low, length);
}
