/**
 * mmapd's range and analytics commands, in-process and byte for byte in RESP2 and RESP3: VRANGE
 * (LRANGE index rules, indices of any size clamped, RAW bytes), VSTATS (NaN skipped, exact
 * integer sums, min and max; uint64 values above 2^63-1 as bulk strings) and VINFO.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { bulk, err, int, shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const run = h.run;

/** An index beyond any file, and beyond 2^64. */
const HUGE = "99999999999999999999";
const U64_TOP = "18446744073709551615"; // 2^64-1
const U64_NEXT = "18446744073709551614";
const U64_HALF = "9223372036854775808"; // 2^63
const INT64_MAX = "9223372036854775807";
const both = (args: string[]) => [run(args, 2), run(args, 3)];

beforeAll(() => {
  // d: the doubles 1, 2, 3; u: uint64 values on both sides of 2^63.
  expect(run(["MMAP", "d", "d.f64"])).toBe(int(0));
  expect(run(["VADD", "d", "1", "2", "3"])).toBe(int(3));
  expect(run(["MMAP", "u", "u.u64", "uint64", "WRITABLE"])).toBe(int(0));
  expect(run(["VADD", "u", U64_NEXT, INT64_MAX, U64_HALF, "5", U64_TOP])).toBe(int(5));
});

const f64 = (values: number[]) => {
  const b = Buffer.alloc(values.length * 8);
  for (const [i, v] of values.entries()) b.writeDoubleLE(v, i * 8);
  return b;
};

describe("VRANGE", () => {
  beforeAll(() => {
    fs.writeFileSync(h.file("r.f64"), f64([0, 1.5, 2, 3.25, 4]));
    expect(run(["MMAP", "r", "r.f64", "double"])).toBe(":5\r\n");
  });

  test("inclusive ranges with negative indices, clamped like LRANGE", () => {
    expect(run(["VRANGE", "r", "1", "2"])).toBe("*2\r\n$3\r\n1.5\r\n$1\r\n2\r\n");
    expect(run(["VRANGE", "r", "-2", "-1"])).toBe("*2\r\n$4\r\n3.25\r\n$1\r\n4\r\n");
    expect(run(["VRANGE", "r", "3", "100"])).toBe("*2\r\n$4\r\n3.25\r\n$1\r\n4\r\n");
    expect(run(["VRANGE", "r", "-100", "0"])).toBe("*1\r\n$1\r\n0\r\n");
    expect(run(["VRANGE", "r", "3", "1"])).toBe("*0\r\n");
    expect(run(["VRANGE", "r", "5", "9"])).toBe("*0\r\n");
  });

  test("RESP3: the values as doubles", () => {
    expect(run(["VRANGE", "r", "1", "-2"], 3)).toBe("*3\r\n,1.5\r\n,2\r\n,3.25\r\n");
  });

  test("RAW returns the file's own bytes, ready for numpy.frombuffer, in both protocols", () => {
    for (const proto of [2, 3] as const) {
      const reply = Buffer.from(run(["VRANGE", "r", "1", "3", "RAW"], proto), "latin1");
      expect(reply.subarray(0, 5).toString()).toBe("$24\r\n");
      expect(reply.subarray(5, 29).equals(f64([1.5, 2, 3.25]))).toBe(true);
      expect(reply.subarray(29).toString()).toBe("\r\n");
      expect(run(["VRANGE", "r", "4", "2", "raw"], proto)).toBe("$0\r\n\r\n");
    }
  });

  test("an index of any size is an integer, clamped like any other; -1 is the last value", () => {
    const all = `*3\r\n${bulk("1")}${bulk("2")}${bulk("3")}`;
    expect(run(["VRANGE", "d", "0", HUGE])).toBe(all);
    expect(run(["VRANGE", "d", `-${HUGE}`, HUGE])).toBe(all);
    expect(run(["VRANGE", "d", HUGE, HUGE])).toBe("*0\r\n");
    expect(run(["VRANGE", "d", "0", `-${HUGE}`])).toBe("*0\r\n");
    expect(run(["VRANGE", "d", `-${HUGE}`, "0", "RAW"])).toBe(`$8\r\n${Buffer.from(new Float64Array([1]).buffer).toString("latin1")}\r\n`);
    expect(run(["VRANGE", "d", "-1", "-1"])).toBe(`*1\r\n${bulk("3")}`);
  });

  test("uint64 above 2^63-1: bulk strings, in both protocols", () => {
    const tail = `*2\r\n${int(5)}${bulk(U64_TOP)}`;
    expect(both(["VRANGE", "u", "-2", "-1"])).toEqual([tail, tail]);
  });

  test("errors: bad indices, unknown option, unbound key, wrong arity", () => {
    for (const bad of ["1.5", "1e3", "x", ""]) expect(run(["VRANGE", "d", "0", bad])).toBe(err("ERR index argument must be integer"));
    expect(run(["VRANGE", "r", "a", "2"])).toBe("-ERR index argument must be integer\r\n");
    expect(run(["VRANGE", "r", "0", "2", "BYTES"])).toBe("-ERR syntax error\r\n");
    expect(run(["VRANGE", "nope", "0", "2"])).toBe("-ERR You must do MMAP first\r\n");
    expect(run(["VRANGE", "r", "0"])).toBe(err("ERR wrong number of arguments for 'vrange' command"));
  });
});

describe("VSTATS", () => {
  test("doubles: NaN skipped and counted; RESP2 flat array, RESP3 map of doubles", () => {
    fs.writeFileSync(h.file("s.f64"), f64([1, NaN, 2.5, -4, NaN]));
    expect(run(["MMAP", "s", "s.f64", "double"])).toBe(":5\r\n");
    expect(run(["VSTATS", "s"])).toBe(
      "*12\r\n$5\r\ncount\r\n:3\r\n$3\r\nsum\r\n$4\r\n-0.5\r\n$3\r\nmin\r\n$2\r\n-4\r\n$3\r\nmax\r\n$3\r\n2.5\r\n" +
        "$4\r\nmean\r\n$20\r\n-0.16666666666666666\r\n$9\r\nnan_count\r\n:2\r\n",
    );
    expect(run(["VSTATS", "s", "0", "2"], 3)).toBe(
      "%6\r\n$5\r\ncount\r\n:2\r\n$3\r\nsum\r\n,3.5\r\n$3\r\nmin\r\n,1\r\n$3\r\nmax\r\n,2.5\r\n$4\r\nmean\r\n,1.75\r\n$9\r\nnan_count\r\n:1\r\n",
    );
  });

  test("int64 sums are exact past 2^63; an empty range has nil min, max and mean", () => {
    expect(run(["MMAP", "i", "i.i64", "int64", "WRITABLE"])).toBe(":0\r\n");
    expect(run(["VSTATS", "i"])).toBe(
      "*12\r\n$5\r\ncount\r\n:0\r\n$3\r\nsum\r\n:0\r\n$3\r\nmin\r\n$-1\r\n$3\r\nmax\r\n$-1\r\n$4\r\nmean\r\n$-1\r\n$9\r\nnan_count\r\n:0\r\n",
    );
    expect(run(["VSTATS", "i"], 3)).toBe(
      "%6\r\n$5\r\ncount\r\n:0\r\n$3\r\nsum\r\n:0\r\n$3\r\nmin\r\n_\r\n$3\r\nmax\r\n_\r\n$4\r\nmean\r\n_\r\n$9\r\nnan_count\r\n:0\r\n",
    );
    expect(run(["VADD", "i", "9223372036854775807", "9223372036854775807", "-5"])).toBe(":3\r\n");
    const reply = run(["VSTATS", "i"]);
    expect(reply).toContain("$3\r\nsum\r\n$20\r\n18446744073709551609\r\n");
    expect(reply).toContain("$3\r\nmin\r\n:-5\r\n$3\r\nmax\r\n:9223372036854775807\r\n");
  });

  test("uint64: min and max exact (values that round to the same double), the sum past 2^64 exact", () => {
    // 2^64-2 and 2^64-1 are the same double: the maximum is still 2^64-1.
    const sum = (2n ** 64n - 2n + 2n ** 63n - 1n + 2n ** 63n + 5n + 2n ** 64n - 1n).toString();
    const mean = String(Number(BigInt(sum)) / 5);
    const fields = (proto: 2 | 3) =>
      `${bulk("count")}${int(5)}${bulk("sum")}${bulk(sum)}${bulk("min")}${int(5)}${bulk("max")}${bulk(U64_TOP)}` +
      `${bulk("mean")}${proto === 3 ? `,${mean}\r\n` : bulk(mean)}${bulk("nan_count")}${int(0)}`;
    expect(both(["VSTATS", "u"])).toEqual([`*12\r\n${fields(2)}`, `%6\r\n${fields(3)}`]);
    const ends = (first: string, second: string) => `${bulk("min")}${first}${bulk("max")}${second}`;
    expect(run(["VSTATS", "u", "0", "0"])).toContain(ends(bulk(U64_NEXT), bulk(U64_NEXT)));
    expect(run(["VSTATS", "u", "2", "4"])).toContain(ends(int(5), bulk(U64_TOP)));
  });

  test("int64: a sum beyond 64-bit signed range is a bulk string, within it an integer", () => {
    expect(run(["MMAP", "extremes", "extremes.i64", "int64", "WRITABLE"])).toBe(int(0));
    expect(run(["VADD", "extremes", "-9223372036854775808", "-9223372036854775808", INT64_MAX])).toBe(int(3));
    expect(run(["VSTATS", "extremes", "0", "1"])).toContain(`${bulk("sum")}${bulk("-18446744073709551616")}`);
    expect(run(["VSTATS", "extremes"])).toContain(`${bulk("sum")}${bulk("-9223372036854775809")}`);
    expect(run(["VSTATS", "extremes", "1", "2"])).toContain(`${bulk("sum")}${int(-1)}`);
  });

  test("indices as VRANGE's: any size clamped, anything else not an integer", () => {
    expect(run(["VSTATS", "d", `-${HUGE}`, HUGE])).toContain(`${bulk("count")}${int(3)}`);
    for (const bad of ["1.5", "1e3", "x", ""]) expect(run(["VSTATS", "d", bad, "1"])).toBe(err("ERR index argument must be integer"));
  });

  test("strings have no statistics", () => {
    expect(run(["MMAP", "t", "t.bin", "string", "4", "WRITABLE"])).toBe(":0\r\n");
    expect(run(["VSTATS", "t"])).toBe("-ERR VSTATS needs a numeric type\r\n");
    expect(run(["VSTATS", "t", "0"])).toBe("-ERR wrong number of arguments for 'vstats' command\r\n");
  });
});

describe("VINFO", () => {
  const v1 = shardHarness({ index: 1, count: 2 });

  test("VINFO describes the binding: RESP2 flat array, RESP3 map", () => {
    expect(run(["MMAP", "v", "v.u16", "uint16", "WRITABLE"])).toBe(":0\r\n");
    expect(run(["VADD", "v", "1", "2", "3"])).toBe(":3\r\n");
    const fields =
      "$4\r\npath\r\n$5\r\nv.u16\r\n$4\r\ntype\r\n$6\r\nuint16\r\n$4\r\nsize\r\n:2\r\n$5\r\ncount\r\n:3\r\n$8\r\nwritable\r\n:1\r\n$5\r\nbytes\r\n:6\r\n$5\r\nshard\r\n:0\r\n";
    expect(run(["VINFO", "v"])).toBe(`*14\r\n${fields}`);
    expect(run(["VINFO", "v"], 3)).toBe(`%7\r\n${fields}`);
  });

  test("VINFO names the shard that holds the key", () => {
    fs.writeFileSync(v1.file("one.i8"), new Uint8Array([1]));
    expect(v1.run(["MMAP", "one", "one.i8", "int8"])).toBe(":1\r\n");
    expect(v1.run(["VINFO", "one"])).toEndWith("$8\r\nwritable\r\n:0\r\n$5\r\nbytes\r\n:1\r\n$5\r\nshard\r\n:1\r\n");
  });
});
