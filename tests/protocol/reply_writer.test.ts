// Byte-exact tests for every reply type of the writer, in RESP2 and RESP3.
import { describe, expect, test } from "bun:test";
import { formatFloat32 } from "../../protocol/number_format.ts";
import { ReplyWriter } from "../../protocol/reply_writer.ts";
import { seededRandom } from "../helpers/random.ts";

/** The writer's output as a latin1 string, so every byte maps to one char. */
function bytesOf(w: ReplyWriter): string {
  return Buffer.from(w.buf.buffer, w.buf.byteOffset, w.length).toString("latin1");
}

/** Runs `write` on a fresh writer of the given protocol and returns what it produced. */
function reply(proto: 2 | 3, write: (w: ReplyWriter) => void): string {
  const w = new ReplyWriter();
  w.proto = proto;
  write(w);
  return bytesOf(w);
}

/** Latin1 view of a string's UTF-8 bytes, to compare with bytesOf(). */
function utf8(s: string): string {
  return Buffer.from(s, "utf8").toString("latin1");
}

describe("ReplyWriter", () => {
  test("defaults to RESP2 with an empty output", () => {
    const w = new ReplyWriter();
    expect(w.proto).toBe(2);
    expect(w.length).toBe(0);
  });

  for (const proto of [2, 3] as const) {
    describe(`RESP${proto} types shared by both versions`, () => {
      test("simple", () => {
        expect(reply(proto, (w) => w.simple("OK"))).toBe("+OK\r\n");
        expect(reply(proto, (w) => w.simple(""))).toBe("+\r\n");
        expect(reply(proto, (w) => w.simple("a\r\nb"))).toBe("+a  b\r\n");
        expect(reply(proto, (w) => w.simple("é"))).toBe("+" + utf8("é") + "\r\n");
      });

      test("error", () => {
        expect(reply(proto, (w) => w.error("ERR unknown command"))).toBe("-ERR unknown command\r\n");
        expect(reply(proto, (w) => w.error("WRONGTYPE x\ny"))).toBe("-WRONGTYPE x y\r\n");
      });

      test("integer", () => {
        const cases: [number, string][] = [
          [0, ":0\r\n"],
          [-0, ":0\r\n"],
          [1, ":1\r\n"],
          [-1, ":-1\r\n"],
          [42, ":42\r\n"],
          [2147483647, ":2147483647\r\n"],
          [2147483648, ":2147483648\r\n"],
          [-2147483649, ":-2147483649\r\n"],
          [Number.MAX_SAFE_INTEGER, ":9007199254740991\r\n"],
          [-Number.MAX_SAFE_INTEGER, ":-9007199254740991\r\n"],
          [2 ** 60, ":1152921504606846976\r\n"],
        ];
        for (const [n, bytes] of cases) expect(reply(proto, (w) => w.integer(n))).toBe(bytes);
        expect(() => new ReplyWriter().integer(1.5)).toThrow(RangeError);
        expect(() => new ReplyWriter().integer(NaN)).toThrow(RangeError);
      });

      test("bigint: an integer within 64-bit signed range, the exact decimal as a bulk string beyond it", () => {
        expect(reply(proto, (w) => w.bigint(0n))).toBe(":0\r\n");
        expect(reply(proto, (w) => w.bigint(2n ** 63n - 1n))).toBe(":9223372036854775807\r\n");
        expect(reply(proto, (w) => w.bigint(-(2n ** 63n)))).toBe(":-9223372036854775808\r\n");
        expect(reply(proto, (w) => w.bigint(2n ** 63n))).toBe("$19\r\n9223372036854775808\r\n");
        expect(reply(proto, (w) => w.bigint(2n ** 64n - 1n))).toBe("$20\r\n18446744073709551615\r\n");
        expect(reply(proto, (w) => w.bigint(-123456789012345678901234567890n))).toBe("$31\r\n-123456789012345678901234567890\r\n");
      });

      test("bulk of ASCII and of UTF-8 text", () => {
        expect(reply(proto, (w) => w.bulk(""))).toBe("$0\r\n\r\n");
        expect(reply(proto, (w) => w.bulk("hello"))).toBe("$5\r\nhello\r\n");
        expect(reply(proto, (w) => w.bulk("a\r\nb"))).toBe("$4\r\na\r\nb\r\n");
        expect(reply(proto, (w) => w.bulk("héllo"))).toBe("$6\r\n" + utf8("héllo") + "\r\n");
        expect(reply(proto, (w) => w.bulk("€"))).toBe("$3\r\n" + utf8("€") + "\r\n");
        expect(reply(proto, (w) => w.bulk("😀"))).toBe("$4\r\n\xf0\x9f\x98\x80\r\n");
        // Lone surrogates are written as U+FFFD, like TextEncoder does.
        expect(reply(proto, (w) => w.bulk("a\ud800b"))).toBe("$5\r\na\xef\xbf\xbdb\r\n");
        expect(reply(proto, (w) => w.bulk("\udc00"))).toBe("$3\r\n\xef\xbf\xbd\r\n");
      });

      test("bulk agrees with TextEncoder on mixed text", () => {
        const text = "ascii-é-€-😀-\u0000-\u07ff-\u0800-\uffff-𝄞";
        const encoded = new TextEncoder().encode(text);
        const expected = `$${encoded.length}\r\n` + Buffer.from(encoded).toString("latin1") + "\r\n";
        expect(reply(proto, (w) => w.bulk(text))).toBe(expected);
      });

      test("bulkBytes is binary-safe and honours the range", () => {
        const all = new Uint8Array(260);
        for (let i = 0; i < 256; i++) all[i + 2] = i;
        const expected = "$256\r\n" + Buffer.from(all.subarray(2, 258)).toString("latin1") + "\r\n";
        expect(reply(proto, (w) => w.bulkBytes(all, 2, 258))).toBe(expected);
        expect(reply(proto, (w) => w.bulkBytes(all, 5, 5))).toBe("$0\r\n\r\n");
        expect(reply(proto, (w) => w.bulkBytes(all, 2, 5))).toBe("$3\r\n\x00\x01\x02\r\n");
      });

      test("array", () => {
        expect(reply(proto, (w) => w.array(3))).toBe("*3\r\n");
        expect(reply(proto, (w) => w.array(0))).toBe("*0\r\n");
      });

      test("raw", () => {
        const src = new TextEncoder().encode("xx+PONG\r\nyy");
        expect(reply(proto, (w) => w.raw(src, 2, 9))).toBe("+PONG\r\n");
      });
    });
  }

  describe("types that differ between versions", () => {
    const cases: [string, (w: ReplyWriter) => void, string, string][] = [
      ["nil", (w) => w.nil(), "$-1\r\n", "_\r\n"],
      ["nilArray", (w) => w.nilArray(), "*-1\r\n", "_\r\n"],
      ["map", (w) => w.map(2), "*4\r\n", "%2\r\n"],
      ["map of nothing", (w) => w.map(0), "*0\r\n", "%0\r\n"],
      ["set", (w) => w.set(2), "*2\r\n", "~2\r\n"],
      ["double fraction", (w) => w.double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n"],
      ["double 0.1", (w) => w.double(0.1), "$3\r\n0.1\r\n", ",0.1\r\n"],
      ["double integer", (w) => w.double(3), "$1\r\n3\r\n", ",3\r\n"],
      ["double negative integer", (w) => w.double(-12), "$3\r\n-12\r\n", ",-12\r\n"],
      ["double zero", (w) => w.double(0), "$1\r\n0\r\n", ",0\r\n"],
      ["double negative zero", (w) => w.double(-0), "$2\r\n-0\r\n", ",-0\r\n"],
      ["double inf", (w) => w.double(Infinity), "$3\r\ninf\r\n", ",inf\r\n"],
      ["double -inf", (w) => w.double(-Infinity), "$4\r\n-inf\r\n", ",-inf\r\n"],
      ["double nan", (w) => w.double(NaN), "$3\r\nnan\r\n", ",nan\r\n"],
      ["double 1e21", (w) => w.double(1e21), "$5\r\n1e+21\r\n", ",1e+21\r\n"],
      ["double 1e20", (w) => w.double(1e20), "$21\r\n100000000000000000000\r\n", ",100000000000000000000\r\n"],
      ["double 2^53", (w) => w.double(2 ** 53), "$16\r\n9007199254740992\r\n", ",9007199254740992\r\n"],
      ["double max safe", (w) => w.double(-(2 ** 53 - 1)), "$17\r\n-9007199254740991\r\n", ",-9007199254740991\r\n"],
      ["double tiny", (w) => w.double(1.5e-7), "$6\r\n1.5e-7\r\n", ",1.5e-7\r\n"],
      ["float32 0.1", (w) => w.float32(Math.fround(0.1)), "$3\r\n0.1\r\n", ",0.1\r\n"],
      ["float32 2^24", (w) => w.float32(16777216), "$8\r\n16777216\r\n", ",16777216\r\n"],
      ["float32 -2^24", (w) => w.float32(-16777216), "$9\r\n-16777216\r\n", ",-16777216\r\n"],
      ["float32 max", (w) => w.float32(3.4028234663852886e38), "$13\r\n3.4028235e+38\r\n", ",3.4028235e+38\r\n"],
      ["float32 2^30", (w) => w.float32(2 ** 30), "$10\r\n1073741800\r\n", ",1073741800\r\n"],
      ["float32 negative zero", (w) => w.float32(-0), "$2\r\n-0\r\n", ",-0\r\n"],
      ["float32 inf", (w) => w.float32(Infinity), "$3\r\ninf\r\n", ",inf\r\n"],
      ["float32 nan", (w) => w.float32(NaN), "$3\r\nnan\r\n", ",nan\r\n"],
      ["doubleText", (w) => w.doubleText("1.25"), "$4\r\n1.25\r\n", ",1.25\r\n"],
      ["boolean true", (w) => w.boolean(true), ":1\r\n", "#t\r\n"],
      ["boolean false", (w) => w.boolean(false), ":0\r\n", "#f\r\n"],
      ["verbatim", (w) => w.verbatim("hello"), "$5\r\nhello\r\n", "=9\r\ntxt:hello\r\n"],
      ["verbatim format", (w) => w.verbatim("# hi", "mkd"), "$4\r\n# hi\r\n", "=8\r\nmkd:# hi\r\n"],
      ["verbatim UTF-8", (w) => w.verbatim("é\r\n"), "$4\r\n" + utf8("é") + "\r\n\r\n", "=8\r\ntxt:" + utf8("é") + "\r\n\r\n"],
    ];
    for (const [name, write, resp2, resp3] of cases) {
      test(name, () => {
        expect(reply(2, write)).toBe(resp2);
        expect(reply(3, write)).toBe(resp3);
      });
    }
  });

  test("float32 writes formatFloat32's text for random values", () => {
    let seed = 12345;
    const w = new ReplyWriter();
    w.proto = 3;
    const view = new Float32Array(1);
    const raw = new Uint32Array(view.buffer);
    for (let i = 0; i < 2000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      raw[0] = seed;
      const x = view[0]!;
      w.reset();
      w.float32(x);
      expect(bytesOf(w)).toBe(`,${formatFloat32(x)}\r\n`);
    }
  });

  test("a nested RESP3 reply is the concatenation of its parts", () => {
    const w = new ReplyWriter();
    w.proto = 3;
    w.map(2);
    w.bulk("size");
    w.integer(4096);
    w.bulk("tags");
    w.set(2);
    w.simple("a");
    w.nil();
    expect(bytesOf(w)).toBe("%2\r\n$4\r\nsize\r\n:4096\r\n$4\r\ntags\r\n~2\r\n+a\r\n_\r\n");
  });

  test("reset empties the output and keeps the buffer", () => {
    const w = new ReplyWriter(128);
    w.simple("OK");
    const buf = w.buf;
    w.reset();
    expect(w.length).toBe(0);
    expect(w.buf).toBe(buf);
    w.integer(7);
    expect(bytesOf(w)).toBe(":7\r\n");
  });

  test("ensure grows by doubling and keeps the bytes written", () => {
    const w = new ReplyWriter(64);
    const first = w.buf.length;
    w.simple("kept");
    w.ensure(first * 3);
    expect(w.buf.length).toBe(first * 4);
    expect(w.buf.length - w.length).toBeGreaterThanOrEqual(first * 3);
    expect(bytesOf(w)).toBe("+kept\r\n");
  });

  test("growth in the middle of many replies loses nothing", () => {
    const w = new ReplyWriter(64);
    let expected = "";
    for (let i = 0; i < 3000; i++) {
      const text = "v".repeat(i % 70) + (i % 7 === 0 ? "é" : "");
      w.bulk(text);
      w.integer(i * 1000003);
      w.float32(i / 8);
      expected += `$${Buffer.byteLength(text)}\r\n${utf8(text)}\r\n:${i * 1000003}\r\n$${String(i / 8).length}\r\n${i / 8}\r\n`;
    }
    const big = "x".repeat(100_000) + "€";
    w.bulk(big);
    w.bulkBytes(new Uint8Array(70_000).fill(65), 0, 70_000);
    expected += `$100003\r\n${utf8(big)}\r\n$70000\r\n${"A".repeat(70_000)}\r\n`;
    expect(bytesOf(w)).toBe(expected);
  });
});

describe("double() writes short decimals without a string, with String()'s exact text", () => {
  test("m / 10^k for random m and k, random magnitudes and random bit patterns, in RESP2 and RESP3", () => {
    const w = new ReplyWriter();
    const next = seededRandom(2026);
    const mismatches: string[] = [];
    const check = (x: number) => {
      const text = Object.is(x, -0) ? "-0" : x !== x ? "nan" : x === Infinity ? "inf" : x === -Infinity ? "-inf" : String(x);
      for (const proto of [2, 3] as const) {
        w.reset();
        w.proto = proto;
        w.double(x);
        const got = new TextDecoder().decode(w.buf.subarray(0, w.length));
        const want = proto === 3 ? `,${text}\r\n` : `$${text.length}\r\n${text}\r\n`;
        if (got !== want && mismatches.length < 5) mismatches.push(`${x}: ${JSON.stringify(got)}`);
      }
    };
    for (let i = 0; i < 40_000; i++) {
      const k = 1 + Math.floor(next() * 7);
      const m = Math.floor(next() * 10 ** (1 + Math.floor(next() * 15)));
      check(m / 10 ** k);
      check(-m / 10 ** k);
      check((next() - 0.5) * 10 ** (Math.floor(next() * 20) - 8));
      const bits = new Float64Array(1);
      const words = new Uint32Array(bits.buffer);
      words[0] = next() * 2 ** 32;
      words[1] = next() * 2 ** 32;
      check(bits[0]);
    }
    for (const x of [0.1, 0.3, 1.5, -2.5, 0.000001, 0.0000015, 999999999.5, 999999999.999999, 1e9 + 0.5, 0.1 + 0.2, 1 / 3, 5e-7]) check(x);
    expect(mismatches).toEqual([]);
  });
});
