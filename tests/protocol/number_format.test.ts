// Tests for the number texts used in replies: doubles, float32 values and decimal integers.
import { describe, expect, test } from "bun:test";
import { decimalLength, formatDouble, formatFloat32, writeDecimal, writeDigitsBackward } from "../../protocol/number_format.ts";
import { seededUint32 as seededRandom } from "../helpers/random.ts";

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);
function float32FromBits(b: number): number {
  bits[0] = b;
  return asFloat[0]!;
}
function bitsOfFloat32(x: number): number {
  asFloat[0] = x;
  return bits[0]!;
}

/**
 * Reference shortest float32 text, by exact arithmetic: x = digits × 10^exponent exactly, and for
 * each precision the two decimals bracketing x are tried; the closer one wins when both read back.
 */
function referenceFloat32(x: number): string {
  const negative = x < 0;
  const b = bitsOfFloat32(Math.abs(x));
  const biasedExponent = b >>> 23;
  const fraction = b & 0x7fffff;
  const significand = BigInt(biasedExponent === 0 ? fraction : fraction | 0x800000);
  const binaryExponent = (biasedExponent === 0 ? 1 : biasedExponent) - 150;
  let digits: bigint;
  let exponent: number;
  if (binaryExponent >= 0) {
    digits = significand << BigInt(binaryExponent);
    exponent = 0;
  } else {
    digits = significand * 5n ** BigInt(-binaryExponent);
    exponent = binaryExponent;
  }
  const digitText = digits.toString();
  const magnitude = Math.abs(x);
  for (let precision = 1; precision <= 9; precision++) {
    const drop = digitText.length - precision;
    const scale = exponent + Math.max(drop, 0);
    const low = drop > 0 ? digits / 10n ** BigInt(drop) : digits;
    const found: bigint[] = [];
    for (const candidate of [low, low + 1n]) {
      if (candidate > 0n && Math.fround(Number(`${candidate}e${scale}`)) === magnitude) found.push(candidate);
    }
    if (found.length === 0) continue;
    let best = found[0]!;
    if (found.length === 2 && drop > 0) {
      // Distances to x in units of 10^exponent: x - low×10^drop versus (low+1)×10^drop - x.
      const unit = 10n ** BigInt(drop);
      const below = digits - low * unit;
      const above = (low + 1n) * unit - digits;
      // Ties go to the even candidate, as Number::toString specifies.
      if (above < below || (above === below && found[1]! % 2n === 0n)) best = found[1]!;
    }
    const text = String(Number(`${best}e${scale}`));
    return negative ? "-" + text : text;
  }
  throw new Error(`no float32 text for ${x}`);
}

describe("formatDouble", () => {
  test("special values use Redis spellings", () => {
    expect(formatDouble(Infinity)).toBe("inf");
    expect(formatDouble(-Infinity)).toBe("-inf");
    expect(formatDouble(NaN)).toBe("nan");
    expect(formatDouble(-0)).toBe("-0");
    expect(formatDouble(0)).toBe("0");
  });

  test("shortest round-trip texts in JavaScript layout", () => {
    const cases: [number, string][] = [
      [0.1, "0.1"],
      [2, "2"],
      [-1.5, "-1.5"],
      [1e21, "1e+21"],
      [1e20, "100000000000000000000"],
      [1.5e-7, "1.5e-7"],
      [0.000001, "0.000001"],
      [123.456, "123.456"],
      [2 ** 53, "9007199254740992"],
      [Number.MAX_VALUE, "1.7976931348623157e+308"],
      [Number.MIN_VALUE, "5e-324"],
      [0.1 + 0.2, "0.30000000000000004"],
    ];
    for (const [value, text] of cases) expect(formatDouble(value)).toBe(text);
  });

  test("random doubles read back exactly", () => {
    const next = seededRandom(7);
    const view = new DataView(new ArrayBuffer(8));
    for (let i = 0; i < 5000; i++) {
      view.setUint32(0, next());
      view.setUint32(4, next());
      const x = view.getFloat64(0);
      if (!Number.isFinite(x) || x === 0) continue;
      const text = formatDouble(x);
      expect(Number(text)).toBe(x);
      expect(text).toBe(String(x));
    }
  });
});

describe("formatFloat32", () => {
  test("cases from the specification", () => {
    expect(formatFloat32(Math.fround(0.1))).toBe("0.1");
    expect(formatFloat32(16777216)).toBe("16777216");
    expect(formatFloat32(3.4028234663852886e38)).toBe("3.4028235e+38");
    expect(formatFloat32(Math.fround(1.5e-7))).toBe("1.5e-7");
    expect(formatFloat32(Math.fround(1e21))).toBe("1e+21");
  });

  test("special values and signs", () => {
    expect(formatFloat32(Infinity)).toBe("inf");
    expect(formatFloat32(-Infinity)).toBe("-inf");
    expect(formatFloat32(NaN)).toBe("nan");
    expect(formatFloat32(-0)).toBe("-0");
    expect(formatFloat32(0)).toBe("0");
    expect(formatFloat32(Math.fround(-0.1))).toBe("-0.1");
    expect(formatFloat32(-16777216)).toBe("-16777216");
  });

  test("an exact tie between two shortest texts picks the even one", () => {
    expect(formatFloat32(2 ** -12)).toBe("0.00024414062"); // 0.000244140625 exactly
    expect(formatFloat32(361759.125)).toBe("361759.12");
    expect(formatFloat32(361759.375)).toBe("361759.38");
  });

  test("doubles are rounded to float32 first", () => {
    expect(formatFloat32(0.1)).toBe("0.1");
    expect(formatFloat32(16777217)).toBe("16777216");
  });

  test("extremes of the float32 range", () => {
    expect(formatFloat32(float32FromBits(1))).toBe("1e-45"); // smallest subnormal
    expect(formatFloat32(2 ** -126)).toBe("1.1754944e-38"); // smallest normal
    expect(formatFloat32(float32FromBits(0x7f7fffff))).toBe("3.4028235e+38");
    expect(formatFloat32(2 ** 30)).toBe("1073741800");
  });

  test("every power of two and its neighbours matches the exact reference", () => {
    for (let e = -149; e <= 127; e++) {
      const b = bitsOfFloat32(2 ** e);
      for (const neighbour of [b - 1, b, b + 1]) {
        const x = float32FromBits(neighbour);
        if (!Number.isFinite(x) || x === 0) continue;
        expect(formatFloat32(x)).toBe(referenceFloat32(x));
        expect(formatFloat32(-x)).toBe(referenceFloat32(-x));
      }
    }
  });

  test("random float32 values match the exact reference and read back", () => {
    const next = seededRandom(42);
    let checked = 0;
    while (checked < 4000) {
      const x = float32FromBits(next());
      if (!Number.isFinite(x) || x === 0) continue;
      const text = formatFloat32(x);
      expect(Math.fround(parseFloat(text))).toBe(x);
      expect(text).toBe(referenceFloat32(x));
      checked++;
    }
  });

  test("everyday magnitudes and short binary fractions match the exact reference", () => {
    const next = seededRandom(11);
    for (let i = 0; i < 3000; i++) {
      // Uniform in log scale over 1e-8 .. 1e12, where the arithmetic path does the rounding.
      const x = Math.fround(10 ** ((next() / 2 ** 32) * 20 - 8));
      expect(formatFloat32(x)).toBe(referenceFloat32(x));
    }
    for (let i = 0; i < 3000; i++) {
      // n / 2^j has a short exact decimal expansion, so exact ties between two texts are common.
      const x = Math.fround((next() % 2 ** 24) / 2 ** (1 + (next() % 30)));
      if (x === 0) continue;
      expect(formatFloat32(x)).toBe(referenceFloat32(x));
    }
  });

  test("decimal-looking floats keep their short text", () => {
    const next = seededRandom(3);
    for (let i = 0; i < 2000; i++) {
      // Up to 6 significant digits always survive a float32 round trip.
      const digits = next() % 1000000;
      const scale = (next() % 60) - 30;
      const written = Number(`${digits}e${scale}`);
      const x = Math.fround(written);
      if (x === 0 || !Number.isFinite(x)) continue;
      expect(formatFloat32(x)).toBe(String(written));
    }
  });
});

describe("writeDecimal", () => {
  test("writes the same digits as String() and returns the end", () => {
    const values = [
      0,
      1,
      9,
      10,
      99,
      100,
      12345,
      -1,
      -10,
      2147483647,
      2147483648,
      -2147483648,
      -2147483649,
      999999999999999,
      1000000000000000,
      Number.MAX_SAFE_INTEGER,
      -Number.MAX_SAFE_INTEGER,
    ];
    const buf = new Uint8Array(32).fill(120);
    for (const n of values) {
      const end = writeDecimal(buf, 3, n);
      const text = String(n);
      expect(end).toBe(3 + text.length);
      expect(new TextDecoder().decode(buf.subarray(3, end))).toBe(text);
      expect(buf[2]).toBe(120);
    }
  });

  test("integers of every length, and the digits either side of each power of ten", () => {
    const next = seededRandom(5);
    const buf = new Uint8Array(32);
    const values: number[] = [];
    for (let p = 1; p <= 1e15; p *= 10) values.push(p - 1, p, p + 1, -p);
    for (let i = 0; i < 20000; i++) values.push(next() % 2 ** (1 + (i % 32)), Math.floor(next() * 2 ** (i % 22)), -next());
    for (const n of values) {
      const end = writeDecimal(buf, 1, n);
      expect(Buffer.from(buf.subarray(1, end)).toString("latin1")).toBe(String(n));
      if (n >= 0) expect(decimalLength(n)).toBe(String(n).length);
    }
  });

  test("writeDigitsBackward writes exactly `count` digits, leading zeros included", () => {
    const buf = new Uint8Array(16).fill(120);
    writeDigitsBackward(buf, 10, 4711, 7);
    expect(Buffer.from(buf).toString("latin1")).toBe("xxx0004711xxxxxx");
    writeDigitsBackward(buf, 16, 2147483647, 10);
    expect(Buffer.from(buf).toString("latin1")).toBe("xxx0002147483647");
  });

  test("decimalLength counts digits", () => {
    expect(decimalLength(0)).toBe(1);
    expect(decimalLength(9)).toBe(1);
    expect(decimalLength(10)).toBe(2);
    expect(decimalLength(2 ** 31)).toBe(10);
    expect(decimalLength(Number.MAX_SAFE_INTEGER)).toBe(16);
  });
});
