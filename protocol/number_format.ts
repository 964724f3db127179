/**
 * Number texts for replies: doubles and float32 values in their shortest round-trip form, and
 * decimal integers written straight into a byte buffer without building a string.
 *
 * Texts follow JavaScript's `Number.prototype.toString` layout (`0.1`, `1e+21`, `1.5e-7`), with
 * Redis's spellings for the special values (`inf`, `-inf`, `nan`) and `-0` kept as `-0`.
 * formatDouble and formatFloat32 define the texts and are the slow, exact path: replies write the
 * same bytes without a string through shortest_double.ts, and fall back to these only for the
 * special values and the rare values that writer leaves to them.
 */

/** Every integer up to 2^24 is a float32 and is its own shortest text. */
const FLOAT32_EXACT_INTEGER_LIMIT = 16777216;

/** Powers of ten that are exact doubles, so `m * 10^k` and `m / 10^k` round only once. */
const EXACT_POWERS_OF_TEN: Float64Array = (() => {
  const powers = new Float64Array(23);
  let p = 1;
  for (let i = 0; i < powers.length; i++, p *= 10) powers[i] = p;
  return powers;
})();

/** The text of a double: `inf`, `-inf`, `nan`, `-0`, else the shortest text that reads back to `x`. */
export function formatDouble(x: number): string {
  if (x !== x) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return 1 / x < 0 ? "-0" : "0";
  // String() is the shortest round-trip text. Replies do not come here for finite values: the
  // writers in shortest_double.ts produce the same bytes at a third of the cost (String() plus
  // copying the text), and ReplyWriter writes integers and short decimals itself.
  return String(x);
}

/**
 * The shortest text `t` with `Math.fround(parseFloat(t)) === Math.fround(x)`, laid out as
 * JavaScript lays out numbers (`0.1`, `16777216`, `3.4028235e+38`); `inf`, `-inf`, `nan`, `-0`.
 */
export function formatFloat32(x: number): string {
  x = Math.fround(x);
  if (x !== x) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (x === 0) return 1 / x < 0 ? "-0" : "0";
  if (Number.isInteger(x) && x <= FLOAT32_EXACT_INTEGER_LIMIT && x >= -FLOAT32_EXACT_INTEGER_LIMIT) {
    return String(x);
  }
  const negative = x < 0;
  const magnitude = negative ? -x : x;
  const exponent = decimalExponent(magnitude);
  for (let precision = 1; precision <= 9; precision++) {
    // Candidates are mantissa × 10^scale with `precision` significant digits.
    const scale = exponent - precision + 1;
    const mantissa = nearestMantissa(magnitude, scale);
    if (Math.fround(decimalValue(mantissa, scale)) === magnitude) {
      return layoutDecimal(negative, mantissa, scale);
    }
    // At a power of two the float's rounding interval is half as wide below as above: the
    // nearest decimal may miss the narrow lower half while the next one up lies in the upper.
    if (Math.fround(decimalValue(mantissa + 1, scale)) === magnitude) {
      return layoutDecimal(negative, mantissa + 1, scale);
    }
  }
  // Nine significant digits always identify a float32, so the loop has returned already.
  return String(x);
}

/** The number of decimal digits of a non-negative safe integer. */
export function decimalLength(n: number): number {
  // Comparisons, not a loop: lengths and small counts dominate, and a chain of predictable
  // branches is cheaper than a loop whose exit varies.
  if (n < 100000000) {
    if (n < 10000) return n < 100 ? (n < 10 ? 1 : 2) : n < 1000 ? 3 : 4;
    return n < 1000000 ? (n < 100000 ? 5 : 6) : n < 10000000 ? 7 : 8;
  }
  let length = 9;
  for (let bound = 1e9; n >= bound && length < 16; bound *= 10) length++;
  return length;
}

/** Writes the safe integer `n` in decimal (with `-` if negative) at `pos`; returns the end position. */
export function writeDecimal(buf: Uint8Array, pos: number, n: number): number {
  if (n < 0) {
    buf[pos++] = 45; // '-'
    n = -n;
  }
  if (n < 100000000) {
    // Int32 arithmetic, the common case (lengths, counts, small values) and the cheapest.
    const end = pos + decimalLength(n);
    writeDigitsBackward(buf, end, n | 0, end - pos);
    return end;
  }
  // Two int32 halves: the digits above 10^8, then exactly eight more.
  const high = Math.floor(n / 100000000);
  const end = pos + decimalLength(high) + 8;
  writeDigitsBackward(buf, end, (n - high * 100000000) | 0, 8);
  writeDigitsBackward(buf, end - 8, high | 0, end - 8 - pos);
  return end;
}

/** "00" to "99", two ASCII bytes each. */
export const DIGIT_PAIRS: Uint8Array = (() => {
  const pairs = new Uint8Array(200);
  for (let i = 0; i < 100; i++) {
    pairs[2 * i] = 48 + Math.floor(i / 10);
    pairs[2 * i + 1] = 48 + (i % 10);
  }
  return pairs;
})();

/** Writes n (0 <= n < 10^count, n < 2^31) as exactly `count` digits, leading zeros included, ending at buf[end]. */
export function writeDigitsBackward(buf: Uint8Array, end: number, n: number, count: number): void {
  // Two digits per step from a table, in int32 arithmetic (a double-typed index or digit makes
  // every typed array access slow).
  const stop = end - count;
  let q = end;
  while (q - stop >= 2) {
    const next = (n / 100) | 0;
    const pair = (n - next * 100) << 1;
    buf[q - 2] = DIGIT_PAIRS[pair]!;
    buf[q - 1] = DIGIT_PAIRS[pair + 1]!;
    q -= 2;
    n = next;
  }
  if (q > stop) buf[q - 1] = 48 + n;
}

/** Powers of ten as the nearest doubles, for locating a float32's decimal exponent. */
const POWER_OF_TEN_MIN_EXPONENT = -46;
const POWERS_OF_TEN: Float64Array = (() => {
  const powers = new Float64Array(40 - POWER_OF_TEN_MIN_EXPONENT + 1);
  for (let i = 0; i < powers.length; i++) powers[i] = Number(`1e${i + POWER_OF_TEN_MIN_EXPONENT}`);
  return powers;
})();

function decimalExponent(magnitude: number): number {
  // floor(log10(magnitude)), corrected where log10 rounds across a power of ten. Comparing with
  // the nearest double to 10^k is exact here: no such double is a float32 unless it is 10^k.
  let k = Math.floor(Math.log10(magnitude));
  while (magnitude < POWERS_OF_TEN[k - POWER_OF_TEN_MIN_EXPONENT]!) k--;
  while (magnitude >= POWERS_OF_TEN[k + 1 - POWER_OF_TEN_MIN_EXPONENT]!) k++;
  return k;
}

function nearestMantissa(magnitude: number, scale: number): number {
  // magnitude / 10^scale rounded to an integer, ties to even (as Number::toString and Ryu break
  // ties between two shortest texts).
  if (scale <= 0 && scale >= -12) {
    // Exact: a 24-bit significand times 10^12's odd part 5^12 (28 bits) fits in 53 bits.
    const scaled = magnitude * EXACT_POWERS_OF_TEN[-scale]!;
    const whole = Math.floor(scaled);
    const fraction = scaled - whole;
    return fraction > 0.5 || (fraction === 0.5 && whole % 2 === 1) ? whole + 1 : whole;
  }
  if (scale >= -22 && scale <= 22) {
    // Rounded once, so within half an ulp of the true quotient: only a fraction that close to
    // one half needs the exact comparison.
    const scaled = scale > 0 ? magnitude / EXACT_POWERS_OF_TEN[scale]! : magnitude * EXACT_POWERS_OF_TEN[-scale]!;
    const whole = Math.floor(scaled);
    const fraction = scaled - whole;
    if (Math.abs(fraction - 0.5) > scaled * 2.3e-16) return fraction > 0.5 ? whole + 1 : whole;
  }
  return nearestMantissaExactly(magnitude, scale);
}

const float32Bits = new Uint32Array(1);
const float32View = new Float32Array(float32Bits.buffer);

function nearestMantissaExactly(magnitude: number, scale: number): number {
  // magnitude = significand × 2^exponent2 exactly; divide by 10^scale in integers.
  float32View[0] = magnitude;
  const b = float32Bits[0]!;
  const biased = b >>> 23;
  const fraction = b & 0x7fffff;
  const exponent2 = (biased === 0 ? 1 : biased) - 150;
  let numerator = BigInt(biased === 0 ? fraction : fraction | 0x800000);
  let denominator = 1n;
  if (exponent2 >= 0) numerator <<= BigInt(exponent2);
  else denominator <<= BigInt(-exponent2);
  if (scale >= 0) denominator *= 10n ** BigInt(scale);
  else numerator *= 10n ** BigInt(-scale);
  let quotient = numerator / denominator;
  const twiceRemainder = 2n * (numerator - quotient * denominator);
  if (twiceRemainder > denominator || (twiceRemainder === denominator && quotient % 2n === 1n)) quotient++;
  return Number(quotient);
}

function decimalValue(mantissa: number, scale: number): number {
  // The double nearest to mantissa × 10^scale, exactly as parseFloat would read it.
  if (scale >= 0 && scale <= 22) return mantissa * EXACT_POWERS_OF_TEN[scale]!;
  if (scale < 0 && scale >= -22) return mantissa / EXACT_POWERS_OF_TEN[-scale]!;
  return Number(mantissa + "e" + scale);
}

function layoutDecimal(negative: boolean, mantissa: number, scale: number): string {
  // JavaScript's Number::toString layout for the value mantissa × 10^scale.
  while (mantissa % 10 === 0) {
    mantissa /= 10;
    scale++;
  }
  const digits = String(mantissa);
  const digitCount = digits.length;
  const pointPosition = scale + digitCount;
  let text: string;
  if (digitCount <= pointPosition && pointPosition <= 21) {
    text = digits + "0".repeat(pointPosition - digitCount);
  } else if (0 < pointPosition && pointPosition <= 21) {
    text = digits.slice(0, pointPosition) + "." + digits.slice(pointPosition);
  } else if (-6 < pointPosition && pointPosition <= 0) {
    text = "0." + "0".repeat(-pointPosition) + digits;
  } else {
    const e = pointPosition - 1;
    text = digits[0] + (digitCount > 1 ? "." + digits.slice(1) : "") + (e < 0 ? "e-" : "e+") + (e < 0 ? -e : e);
  }
  return negative ? "-" + text : text;
}
