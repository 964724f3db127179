// Tests for the byte writers of shortest texts (protocol/shortest_double.ts) and the replies that
// use them: over ten million doubles against String(x) and ten million float32 values against
// formatFloat32, byte for byte, in the shapes where formatters go wrong.
import { describe, expect, test } from "bun:test";
import { formatDouble, formatFloat32 } from "../../protocol/number_format.ts";
import { ReplyWriter } from "../../protocol/reply_writer.ts";
import { SHORTEST_ROOM, writeShortestDouble, writeShortestFloat32 } from "../../protocol/shortest_double.ts";
import { seededUint32 } from "../helpers/random.ts";

const bits = new DataView(new ArrayBuffer(8));
function doubleFromBits(high: number, low: number): number {
  bits.setUint32(0, high);
  bits.setUint32(4, low);
  return bits.getFloat64(0);
}
function float32FromBits(b: number): number {
  bits.setUint32(0, b);
  return bits.getFloat32(0);
}

/** A standard-normal variate from two uniform ones (Box-Muller). */
function normal(next: () => number): number {
  const u = (next() + 1) / 4294967297;
  const v = next() / 4294967296;
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Runs `write` over values and compares its bytes with `expected`, collecting the first few
 * mismatches (one expect per value would dominate the run time). A write may decline (-1) only
 * where the caller falls back; declines are counted.
 */
class Checker {
  readonly buf = new Uint8Array(64);
  readonly view = new DataView(this.buf.buffer);
  readonly mismatches: string[] = [];
  checked = 0;
  declined = 0;

  constructor(
    private readonly write: (buf: Uint8Array, view: DataView, pos: number, x: number) => number,
    private readonly expected: (x: number) => string,
  ) {}

  check(x: number): void {
    if (x !== x || x === Infinity || x === -Infinity || x === 0) return;
    this.checked++;
    // Written at an offset, with a marker before it that must survive.
    this.buf[2] = 120;
    const end = this.write(this.buf, this.view, 3, x);
    if (end < 0) {
      this.declined++;
      return;
    }
    const text = this.expected(x);
    let same = end - 3 === text.length && this.buf[2] === 120;
    for (let i = 0; same && i < text.length; i++) same = this.buf[3 + i] === text.charCodeAt(i);
    if (!same && this.mismatches.length < 10) {
      this.mismatches.push(`${text}: wrote ${Buffer.from(this.buf.subarray(3, Math.max(end, 3))).toString("latin1")}`);
    }
  }
}

const doubles = () => new Checker(writeShortestDouble, (x) => String(x));
const floats = () => new Checker(writeShortestFloat32, formatFloat32);

describe("writeShortestDouble: the text String(x) gives", () => {
  test("cases from the specification and the layout boundaries", () => {
    const c = doubles();
    const cases = [
      0.1,
      2,
      -1.5,
      1e21,
      1e20,
      999999999999999900000,
      1.5e-7,
      1e-7,
      0.000001,
      9.999999999999997e-7,
      123.456,
      2 ** 53,
      2 ** 53 + 2,
      2 ** 63,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      2 ** -1022,
      0.1 + 0.2,
      1e23,
      5e-324,
      1.7976931348623157e308,
    ];
    for (const x of cases) {
      c.check(x);
      c.check(-x);
    }
    expect(c.mismatches).toEqual([]);
    expect(c.declined).toBe(0);
  });

  test("zero, infinities and NaN are left to the caller", () => {
    const buf = new Uint8Array(SHORTEST_ROOM);
    const view = new DataView(buf.buffer);
    for (const x of [0, -0, Infinity, -Infinity, NaN]) expect(writeShortestDouble(buf, view, 0, x)).toBe(-1);
  });

  test("ten million doubles of every shape", () => {
    const c = doubles();
    const next = seededUint32(20260413);
    // Random bit patterns: every exponent alike.
    for (let i = 0; i < 4_000_000; i++) c.check(doubleFromBits(next(), next()));
    const randomDeclined = c.declined;
    // Standard-normal values, the shape of real data (0.1082041549073216).
    for (let i = 0; i < 2_000_000; i++) c.check(normal(next));
    const normalDeclined = c.declined - randomDeclined;
    // Subnormals, with fewer significant bits than any normal double.
    for (let i = 0; i < 1_000_000; i++) c.check(doubleFromBits(next() & 0x800fffff, next()));
    // Every power of two and of ten, with their neighbours a few ulps away.
    for (let e = -1074; e <= 1023; e++) {
      bits.setFloat64(0, 2 ** e);
      const base = bits.getBigUint64(0);
      for (let d = -3n; d <= 3n; d++) {
        bits.setBigUint64(0, base + d);
        c.check(bits.getFloat64(0));
        c.check(-bits.getFloat64(0));
      }
    }
    for (let e = -323; e <= 308; e++) {
      bits.setFloat64(0, Number(`1e${e}`));
      const base = bits.getBigUint64(0);
      for (let d = -3n; d <= 3n; d++) {
        bits.setBigUint64(0, base + d);
        c.check(bits.getFloat64(0));
      }
      for (const m of ["2", "5", "1.5", "9.999999999999999", "1.2345678901234567"]) c.check(Number(`${m}e${e}`));
    }
    // Around 2^53, where doubles stop holding every integer, and beyond it.
    for (let i = 0; i < 500_000; i++) {
      const offset = next() % 2 ** 20;
      c.check(2 ** 53 - offset);
      c.check(2 ** 53 + 2 * offset);
      c.check(2 ** 52 + offset + 0.5);
      c.check(2 ** 54 + 4 * offset);
      c.check(2 ** 50 + offset + (next() % 4) / 4);
    }
    // Integers of every size (the writer's callers print safe integers themselves, but the
    // writer must be right for them too).
    for (let i = 0; i < 500_000; i++) {
      c.check(next());
      c.check(next() * 2 ** 21 + next());
      c.check(doubleFromBits(0x43e00000 + (next() % 0x1000000), next()));
    }
    // Either side of the layouts' boundaries: 1e-7 (exponent form below), 1e21 (above).
    for (let i = 0; i < 250_000; i++) {
      const jitter = 1 + (next() / 2 ** 32 - 0.5) * 2 ** -30;
      c.check(1e-7 * jitter);
      c.check(1e-6 * jitter);
      c.check(1e21 * jitter);
      c.check(1e20 * jitter);
    }
    // Short decimals and binary fractions, where two candidates are often equally short.
    for (let i = 0; i < 500_000; i++) {
      c.check(Number(`${next() % 1000000}e${(next() % 40) - 20}`));
      c.check((next() % 2 ** 24) / 2 ** (1 + (next() % 40)));
    }
    expect(c.mismatches).toEqual([]);
    expect(c.checked).toBeGreaterThanOrEqual(10_000_000);
    // Arbitrary data never needs the fallback; exact ties and boundaries beyond 2^96 may.
    expect(randomDeclined).toBeLessThan(100);
    expect(normalDeclined).toBe(0);
    expect(c.declined).toBeLessThan(c.checked / 10_000);
  }, 120_000);
});

describe("writeShortestFloat32: the text formatFloat32 gives", () => {
  test("cases from the specification", () => {
    const c = floats();
    for (const x of [0.1, 16777216, 3.4028234663852886e38, 1.5e-7, 1e21, 2 ** -12, 361759.125, 361759.375, 2 ** -149, 2 ** -126, 2 ** 30]) {
      c.check(Math.fround(x));
      c.check(-Math.fround(x));
    }
    expect(c.mismatches).toEqual([]);
  });

  test("ten million float32 values of every shape", () => {
    const c = floats();
    const next = seededUint32(413);
    // Random bit patterns over every exponent, then over the everyday ones (2^-40 to 2^40).
    for (let i = 0; i < 1_000_000; i++) c.check(float32FromBits(next()));
    const randomDeclined = c.declined;
    for (let i = 0; i < 5_000_000; i++) c.check(float32FromBits((next() & 0x807fffff) | ((87 + (next() % 81)) << 23)));
    for (let i = 0; i < 1_000_000; i++) c.check(Math.fround(normal(next)));
    for (let i = 0; i < 500_000; i++) c.check(float32FromBits(next() & 0x807fffff));
    for (let e = -149; e <= 127; e++) {
      bits.setFloat32(0, 2 ** e);
      const base = bits.getUint32(0);
      for (let d = -3; d <= 3; d++) c.check(float32FromBits(base + d));
    }
    // Short decimals, integers beyond 2^24, and binary fractions (exact ties are common there).
    for (let i = 0; i < 1_000_000; i++) {
      c.check(Math.fround(Number(`${next() % 1000000}e${(next() % 60) - 30}`)));
      c.check(Math.fround((next() % 2 ** 24) / 2 ** (1 + (next() % 30))));
      c.check(Math.fround(next() * 2 ** (next() % 40)));
    }
    expect(c.mismatches).toEqual([]);
    expect(c.checked).toBeGreaterThanOrEqual(10_000_000);
    expect(randomDeclined).toBeLessThan(100);
    expect(c.declined).toBeLessThan(c.checked / 10_000);
  }, 120_000);
});

describe("ReplyWriter number replies", () => {
  function bytesOf(w: ReplyWriter): string {
    return Buffer.from(w.buf.buffer, w.buf.byteOffset, w.length).toString("latin1");
  }
  const framed = (proto: 2 | 3, text: string) => (proto === 3 ? `,${text}\r\n` : `$${text.length}\r\n${text}\r\n`);

  test("double and float32 frame the text in both protocols, whatever its length", () => {
    const cases: [number, string][] = [
      [1e-7, "1e-7"],
      [0.1082041549073216, "0.1082041549073216"],
      [-1.2345678901234567e-308, "-1.2345678901234567e-308"],
      [2 ** 60, "1152921504606847000"],
      [-0, "-0"],
      [NaN, "nan"],
      [Infinity, "inf"],
    ];
    for (const proto of [2, 3] as const) {
      for (const [x, text] of cases) {
        const w = new ReplyWriter(64);
        w.proto = proto;
        w.simple("a");
        w.double(x);
        w.simple("b");
        expect(bytesOf(w)).toBe(`+a\r\n${framed(proto, text)}+b\r\n`);
      }
      const w = new ReplyWriter(64);
      w.proto = proto;
      w.float32(0.1);
      w.float32(3.4028234663852886e38);
      expect(bytesOf(w)).toBe(framed(proto, "0.1") + framed(proto, "3.4028235e+38"));
    }
  });

  test("values in a row, as one VALL writes them, in both protocols", () => {
    const next = seededUint32(99);
    for (const proto of [2, 3] as const) {
      const w = new ReplyWriter(64);
      w.proto = proto;
      const d = new ReplyWriter(64);
      d.proto = proto;
      let expected = "";
      let expected32 = "";
      for (let i = 0; i < 200_000; i++) {
        const x = i % 3 === 0 ? normal(next) : i % 3 === 1 ? doubleFromBits(next(), next()) : (next() % 100000) / 4;
        w.double(x);
        expected += framed(proto, formatDouble(x));
        const f = float32FromBits(next());
        d.float32(f);
        expected32 += framed(proto, formatFloat32(f));
      }
      expect(bytesOf(w) === expected).toBe(true);
      expect(bytesOf(d) === expected32).toBe(true);
    }
  }, 60_000);

  test("a buffer replaced from outside is written through its own view", () => {
    const w = new ReplyWriter(64);
    w.double(0.1082041549073216);
    w.buf = new Uint8Array(256);
    w.reset();
    w.double(0.30000000000000004);
    expect(bytesOf(w)).toBe("$19\r\n0.30000000000000004\r\n");
  });
});
