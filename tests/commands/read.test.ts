/**
 * The reading commands, in-process and byte for byte in RESP2 and RESP3: VGET, VMGET, VALL,
 * VCOUNT, VTYPE, VSIZE and VFILEPATH on every value type over files the test wrote; NaN found in
 * a file; long double files a C program wrote; uint64 values above 2^63-1, which RESP's signed
 * integer cannot carry, as their exact decimal in a bulk string; index rules (leading zeros,
 * negative, out of range at any size, not integers, every index checked before any is read);
 * keys that are not bound; wrong arity; and a 64 GiB sparse file read and written at index
 * 8,000,000,000.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { bulk, err, int, latin1, shardHarness } from "../helpers/harness.ts";
import { encodeFile, respOf, TYPE_CASES, x87Bytes } from "./type_cases.ts";

const h = shardHarness();
const run = h.run;

const U64_TOP = "18446744073709551615"; // 2^64-1
const U64_NEXT = "18446744073709551614";
const U64_HALF = "9223372036854775808"; // 2^63
const INT64_MAX = "9223372036854775807";

for (const t of TYPE_CASES) {
  test(`${t.name}: a file written by the test is read back exactly, read-only, in RESP2 and RESP3`, () => {
    const file = `interop-${t.name}.bin`;
    const inputs = t.samples.map((s) => s.input);
    const n = inputs.length;
    const bytes = encodeFile(t, inputs);
    fs.writeFileSync(h.file(file), bytes);
    const key = `interop:${t.name}`;
    expect(run(["MMAP", key, file, ...t.mmapArgs])).toBe(int(n));
    for (const proto of [2, 3] as const) {
      const spelled = (i: number) => latin1(respOf(t.samples[i]!, proto));
      expect(run(["VALL", key], proto)).toBe(`*${n}\r\n` + t.samples.map((_, i) => spelled(i)).join(""));
      for (let i = 0; i < n; i++) expect(run(["VGET", key, String(i)], proto)).toBe(spelled(i));
      const reversed = [...t.samples.keys()].reverse();
      expect(run(["VMGET", key, ...reversed.map(String)], proto)).toBe(`*${n}\r\n` + reversed.map(spelled).join(""));
      expect(run(["VTYPE", key], proto)).toBe(`$${t.name.length}\r\n${t.name}\r\n`);
      expect(run(["VSIZE", key], proto)).toBe(`:${t.width}\r\n`);
      expect(run(["VCOUNT", key], proto)).toBe(`:${n}\r\n`);
      expect(run(["VFILEPATH", key], proto)).toBe(bulk(file));
    }
    expect(run(["VSET", key, "0", inputs[0]!])).toBe(err("ERR The file is not writable"));
    expect(new Uint8Array(fs.readFileSync(h.file(file)))).toEqual(bytes);
  });

  test(`${t.name}: VMGET RAW answers the values' bytes in argument order, as one bulk string`, () => {
    const key = `interop:${t.name}`;
    const bytes = new Uint8Array(fs.readFileSync(h.file(`interop-${t.name}.bin`)));
    const order = [...t.samples.keys()].reverse().concat([0, 0]);
    const expected = new Uint8Array(order.length * t.width);
    for (const [k, i] of order.entries()) expected.set(bytes.subarray(i * t.width, (i + 1) * t.width), k * t.width);
    const body = Buffer.from(expected).toString("latin1");
    for (const proto of [2, 3] as const) {
      expect(run(["VMGET", key, "RAW", ...order.map(String)], proto)).toBe(`$${expected.length}\r\n${body}\r\n`);
      expect(run(["VMGET", key, "raw", "0"], proto)).toBe(
        `$${t.width}\r\n${Buffer.from(bytes.subarray(0, t.width)).toString("latin1")}\r\n`,
      );
    }
  });
}

describe("VMGET RAW: the errors of VMGET", () => {
  test("no index, a bad index, an index past the end, a key not bound", () => {
    run(["MMAP", "rawk", "rawk.f64"]);
    run(["VADD", "rawk", "1", "2"]);
    expect(run(["VMGET", "rawk", "RAW"])).toBe(err("ERR wrong number of arguments for 'vmget' command"));
    expect(run(["VMGET", "rawk", "RAW", "0", "x"])).toBe(err("ERR index argument must be integer"));
    expect(run(["VMGET", "rawk", "RAW", "0", "2"])).toBe(err("ERR index exceeds size"));
    expect(run(["VMGET", "rawk", "RAW", "-1"])).toBe(run(["VMGET", "rawk", "-1"]));
    expect(run(["VMGET", "nokey", "RAW", "0"])).toBe(err("ERR You must do MMAP first"));
    // RAW in another place is not a keyword: it is refused as an index.
    expect(run(["VMGET", "rawk", "0", "RAW"])).toBe(err("ERR index argument must be integer"));
  });
});

describe("values found in files", () => {
  test("NaN found in a file replies nan (float, double, long_double), in both protocols", () => {
    const f32 = new DataView(new ArrayBuffer(8));
    f32.setUint32(0, 0x7fc00000, true); // quiet NaN
    f32.setUint32(4, 0xffc00001, true); // negative NaN with a payload
    fs.writeFileSync(h.file("nan.f32"), new Uint8Array(f32.buffer));
    const f64 = new DataView(new ArrayBuffer(16));
    f64.setBigUint64(0, 0x7ff8000000000000n, true);
    f64.setBigUint64(8, 0x7ff0000000000001n, true); // signalling NaN
    fs.writeFileSync(h.file("nan.f64"), new Uint8Array(f64.buffer));
    fs.writeFileSync(h.file("nan.f80"), x87Bytes(NaN));
    expect(run(["MMAP", "nan32", "nan.f32", "float"])).toBe(":2\r\n");
    expect(run(["MMAP", "nan64", "nan.f64", "double"])).toBe(":2\r\n");
    expect(run(["MMAP", "nan80", "nan.f80", "long_double"])).toBe(":1\r\n");
    for (const key of ["nan32", "nan64"]) {
      expect(run(["VALL", key], 2)).toBe("*2\r\n$3\r\nnan\r\n$3\r\nnan\r\n");
      expect(run(["VALL", key], 3)).toBe("*2\r\n,nan\r\n,nan\r\n");
    }
    expect(run(["VGET", "nan80", "0"], 2)).toBe("$3\r\nnan\r\n");
    expect(run(["VGET", "nan80", "0"], 3)).toBe(",nan\r\n");
  });

  test("long_double: a file a C program wrote is read through double", () => {
    // 0.1L and 1/3.L carry 64-bit mantissas; the fifth is beyond double; 2^-16400 is an x87 denormal.
    const values: [mantissa: bigint, signExponent: number][] = [
      [0xcccccccccccccccdn, 0x3ffb],
      [0xaaaaaaaaaaaaaaabn, 0x3ffd],
      [0x8000000000000000n, 0x3fff],
      [0xc000000000000000n, 0xc000], // -3
      [0xd49689f5f5b63d26n, 0x73a2], // about 1e3979, beyond double
      [0x8000000000000000n, 0x7fff], // inf
      [0x8000000000000000n, 0xffff], // -inf
      [0x0000000000000000n, 0x8000], // -0
    ];
    const view = new DataView(new ArrayBuffer(16 * values.length));
    values.forEach(([mantissa, se], i) => {
      view.setBigUint64(16 * i, mantissa, true);
      view.setUint16(16 * i + 8, se, true);
      view.setUint16(16 * i + 10, 0xabcd, true); // padding bytes are ignored
    });
    fs.writeFileSync(h.file("c.f80"), new Uint8Array(view.buffer));
    expect(run(["MMAP", "cld", "c.f80", "long_double"])).toBe(int(values.length));
    const texts = ["0.1", "0.3333333333333333", "1", "-3", "inf", "inf", "-inf", "-0"];
    expect(run(["VALL", "cld"])).toBe(`*${texts.length}\r\n` + texts.map(bulk).join(""));
    expect(run(["VALL", "cld"], 3)).toBe(`*${texts.length}\r\n` + texts.map((x) => `,${x}\r\n`).join(""));
  });
});

describe("uint64 above 2^63-1: a bulk string with the exact decimal, in both protocols", () => {
  const both = (args: string[]) => [run(args, 2), run(args, 3)];

  beforeAll(() => {
    expect(run(["MMAP", "u", "u.u64", "uint64", "WRITABLE"])).toBe(int(0));
    expect(run(["VADD", "u", U64_NEXT, INT64_MAX, U64_HALF, "5", U64_TOP])).toBe(int(5));
  });

  test("VGET and VMGET; values up to 2^63-1 stay integers", () => {
    expect(both(["VGET", "u", "0"])).toEqual([bulk(U64_NEXT), bulk(U64_NEXT)]);
    expect(both(["VGET", "u", "1"])).toEqual([int(INT64_MAX), int(INT64_MAX)]);
    const vmget = `*3\r\n${bulk(U64_HALF)}${int(INT64_MAX)}${bulk(U64_TOP)}`;
    expect(both(["VMGET", "u", "2", "1", "4"])).toEqual([vmget, vmget]);
  });

  test("VALL", () => {
    const all = `*5\r\n${bulk(U64_NEXT)}${int(INT64_MAX)}${bulk(U64_HALF)}${int(5)}${bulk(U64_TOP)}`;
    expect(both(["VALL", "u"])).toEqual([all, all]);
  });

  test("int64: the extremes stay integers", () => {
    expect(run(["MMAP", "i", "i.i64", "int64", "WRITABLE"])).toBe(int(0));
    expect(run(["VADD", "i", "-9223372036854775808", "-9223372036854775808", INT64_MAX])).toBe(int(3));
    expect(both(["VGET", "i", "0"])).toEqual([int("-9223372036854775808"), int("-9223372036854775808")]);
  });
});

describe("indices", () => {
  beforeAll(() => {
    const values = new Int32Array(5000).map((_, i) => i);
    fs.writeFileSync(h.file("idx.i32"), new Uint8Array(values.buffer));
    expect(run(["MMAP", "idx", "idx.i32", "int32"])).toBe(int(5000));
  });

  test("leading zeros (redis-benchmark's __rand_int__)", () => {
    expect(run(["VGET", "idx", "000000004711"])).toBe(int(4711));
    expect(run(["VGET", "idx", "000000000000"])).toBe(int(0));
    expect(run(["VMGET", "idx", "0004711", "00", "000000004999"])).toBe(`*3\r\n${int(4711)}${int(0)}${int(4999)}`);
  });

  test("out of range: index exceeds size; negative: only the range commands count from the end", () => {
    const exceeds = err("ERR index exceeds size");
    // An index of any size is an integer: past 2^53 and past 2^64 it is still beyond the end.
    for (const index of ["5000", "000000005000", "9007199254740991", "9007199254740993", "99999999999999999999", "+99999999999999999999"]) {
      expect(run(["VGET", "idx", index])).toBe(exceeds);
      expect(run(["VMGET", "idx", "0", index])).toBe(exceeds);
    }
    const negative = err("ERR index must not be negative (only VRANGE and VSTATS count negative indices from the end)");
    for (const index of ["-1", "-0000001", "-99999999999999999999"]) {
      expect(run(["VGET", "idx", index])).toBe(negative);
      expect(run(["VMGET", "idx", "0", index])).toBe(negative);
    }
    // -0 is 0, not a negative index.
    expect(run(["VGET", "idx", "-0"])).toBe(int(0));
  });

  test("not an integer: index argument must be integer", () => {
    const notInteger = err("ERR index argument must be integer");
    for (const index of ["", "abc", "x", "1.5", "1e3", " 1", "1 ", "0x10", "-", "+", "４"]) {
      expect(run(["VGET", "idx", index])).toBe(notInteger);
      expect(run(["VMGET", "idx", index, "0"])).toBe(notInteger);
    }
  });

  test("VMGET checks every index before it reads any", () => {
    expect(run(["VMGET", "idx", "0", "1", "5000", "2"])).toBe(err("ERR index exceeds size"));
    expect(run(["VMGET", "idx", "0", "1", "x"])).toBe(err("ERR index argument must be integer"));
  });
});

describe("keys that are not bound", () => {
  test("every read on a key that is not bound: You must do MMAP first", () => {
    const notMapped = err("ERR You must do MMAP first");
    for (const args of [
      ["VGET", "nokey", "0"],
      ["VMGET", "nokey", "0", "1"],
      ["VALL", "nokey"],
      ["VCOUNT", "nokey"],
      ["VTYPE", "nokey"],
      ["VSIZE", "nokey"],
      ["VFILEPATH", "nokey"],
    ]) {
      expect(run(args)).toBe(notMapped);
      expect(run(args, 3)).toBe(notMapped);
    }
  });
});

describe("wrong number of arguments", () => {
  test("each read's arity error names it in lowercase", () => {
    const cases: [string[], string][] = [
      [["VGET", "k"], "vget"],
      [["VgEt", "k", "1", "2"], "vget"],
      [["VMGET", "k"], "vmget"],
      [["VALL"], "vall"],
      [["VALL", "k", "x"], "vall"],
      [["VCOUNT"], "vcount"],
      [["VCOUNT", "k", "x"], "vcount"],
      [["VTYPE"], "vtype"],
      [["VSIZE", "k", "x"], "vsize"],
      [["VFILEPATH"], "vfilepath"],
    ];
    for (const [args, name] of cases) expect(run(args)).toBe(err(`ERR wrong number of arguments for '${name}' command`));
  });
});

describe("a 64 GiB sparse file", () => {
  const BYTES = 64 * 2 ** 30;
  const COUNT = BYTES / 8;
  const file = h.file("huge.f64");

  afterAll(() => fs.rmSync(file, { force: true }));

  test("VSET and VGET at index 8,000,000,000", () => {
    // Sparse: ftruncate costs no disk; one double is written near the end.
    const fd = fs.openSync(file, "w");
    try {
      fs.ftruncateSync(fd, BYTES);
      fs.writeSync(fd, new Uint8Array(new Float64Array([-7.5]).buffer), 0, 8, (COUNT - 1) * 8);
    } finally {
      fs.closeSync(fd);
    }
    expect(run(["MMAP", "huge", "huge.f64"])).toBe(`:${COUNT}\r\n`);
    expect(run(["VCOUNT", "huge"])).toBe(`:${COUNT}\r\n`);
    expect(run(["VSET", "huge", "8000000000", "2.5"])).toBe(":1\r\n");
    expect(run(["VGET", "huge", "8000000000"])).toBe("$3\r\n2.5\r\n");
    expect(run(["VGET", "huge", "7999999999"])).toBe("$1\r\n0\r\n");
    expect(run(["VGET", "huge", "000008000000000"])).toBe("$3\r\n2.5\r\n");
    expect(run(["VMGET", "huge", String(COUNT - 1), "8000000000", "0"])).toBe("*3\r\n$4\r\n-7.5\r\n$3\r\n2.5\r\n$1\r\n0\r\n");
    expect(run(["VGET", "huge", String(COUNT)])).toBe("-ERR index exceeds size\r\n");
    expect(run(["VSET", "huge", String(COUNT), "1"])).toBe("-ERR index exceeds size\r\n");

    // The value is in the file, where a C program would look for it.
    const fd2 = fs.openSync(file, "r");
    try {
      const bytes = new Uint8Array(8);
      fs.readSync(fd2, bytes, 0, 8, 8_000_000_000 * 8);
      expect(new Float64Array(bytes.buffer)[0]).toBe(2.5);
    } finally {
      fs.closeSync(fd2);
    }

    // Growing and shrinking past 64 GiB.
    expect(run(["VADD", "huge", "3.25"])).toBe(":1\r\n");
    expect(run(["VCOUNT", "huge"])).toBe(`:${COUNT + 1}\r\n`);
    expect(run(["VPOP", "huge"])).toBe("$4\r\n3.25\r\n");
    expect(fs.statSync(file).size).toBe(BYTES);
    expect(run(["DEL", "huge"])).toBe(":1\r\n");
  });
});
