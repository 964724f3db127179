/**
 * The writing commands, in-process and byte for byte in RESP2 and RESP3: VSET, VADD, VPOP and
 * VCLEAR on every value type (the bytes written checked against the test's own encoder, every
 * refused value leaving the file as it was), the x87 and string layouts, exact 64-bit integers,
 * index rules for VSET, writes refused as a whole and errors that say why (a string's limit, NaN),
 * Redis 8's VADD syntax, read-only bindings, keys that are not bound, wrong arity, and the README
 * walkthrough.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { bulk, err, int, latin1, nil, shardHarness } from "../helpers/harness.ts";
import { encodeFile, respOf, TYPE_CASES, type TypeCase } from "./type_cases.ts";

const h = shardHarness();
const run = h.run;

/** The bytes of a file in the data directory (empty when it does not exist). */
const bytesOf = (name: string): Uint8Array =>
  fs.existsSync(h.file(name)) ? new Uint8Array(fs.readFileSync(h.file(name))) : new Uint8Array(0);
const sizeOf = (name: string): number => fs.statSync(h.file(name)).size;

/** MMAP, VADD, the reads, VSET, every refusal, VPOP and VCLEAR on one type in one protocol. */
function everyCommand(t: TypeCase, proto: 2 | 3): void {
  const key = `${t.name}:resp${proto}`;
  const file = `${t.name}-resp${proto}.bin`;
  const inputs = t.samples.map((s) => s.input);
  const n = inputs.length;
  const spelled = (i: number) => latin1(respOf(t.samples[i]!, proto));
  const cmd = (...args: string[]) => run(args, proto);

  expect(cmd("MMAP", key, file, ...t.mmapArgs, "WRITABLE")).toBe(int(0));
  expect(fs.existsSync(h.file(file))).toBe(true);
  expect(sizeOf(file)).toBe(0);

  expect(cmd("VADD", key, ...inputs)).toBe(int(n));
  expect(bytesOf(file)).toEqual(encodeFile(t, inputs));
  expect(cmd("VCOUNT", key)).toBe(int(n));
  expect(cmd("VTYPE", key)).toBe(bulk(t.name));
  expect(cmd("VSIZE", key)).toBe(int(t.width));
  expect(cmd("VFILEPATH", key)).toBe(bulk(file));

  expect(cmd("VALL", key)).toBe(`*${n}\r\n` + t.samples.map((_, i) => spelled(i)).join(""));
  for (let i = 0; i < n; i++) expect(cmd("VGET", key, String(i))).toBe(spelled(i));
  const reversed = [...t.samples.keys()].reverse();
  expect(cmd("VMGET", key, ...reversed.map(String))).toBe(`*${n}\r\n` + reversed.map(spelled).join(""));

  // Swap the first and last values.
  expect(cmd("VSET", key, "0", inputs[n - 1]!, String(n - 1), inputs[0]!)).toBe(int(2));
  const swapped = [inputs[n - 1]!, ...inputs.slice(1, n - 1), inputs[0]!];
  expect(bytesOf(file)).toEqual(encodeFile(t, swapped));
  expect(cmd("VMGET", key, "0", String(n - 1))).toBe(`*2\r\n${spelled(n - 1)}${spelled(0)}`);

  // A refused value anywhere in a write means no change at all.
  const before = bytesOf(file);
  for (const [input, error] of t.refused) {
    expect(cmd("VADD", key, inputs[1]!, input)).toBe(err(error));
    expect(cmd("VSET", key, "1", inputs[0]!, "0", input)).toBe(err(error));
    expect(cmd("VSET", key, "0", input)).toBe(err(error));
  }
  expect(bytesOf(file)).toEqual(before);
  expect(cmd("VCOUNT", key)).toBe(int(n));

  expect(cmd("VPOP", key)).toBe(spelled(0));
  expect(cmd("VCOUNT", key)).toBe(int(n - 1));
  expect(bytesOf(file)).toEqual(encodeFile(t, swapped.slice(0, n - 1)));

  expect(cmd("VCLEAR", key)).toBe(int(n - 1));
  expect(sizeOf(file)).toBe(0);
  expect(cmd("VCOUNT", key)).toBe(int(0));
  expect(cmd("VALL", key)).toBe("*0\r\n");
  expect(cmd("VPOP", key)).toBe(nil(proto));

  // The file grows again after a clear.
  expect(cmd("VADD", key, inputs[2]!)).toBe(int(1));
  expect(bytesOf(file)).toEqual(encodeFile(t, [inputs[2]!]));
}

for (const t of TYPE_CASES) {
  describe(t.name, () => {
    test("every command, RESP2", () => everyCommand(t, 2));
    test("every command, RESP3", () => everyCommand(t, 3));
  });
}

describe("layouts", () => {
  test("long_double: 1.5 is written in the x87 80-bit layout", () => {
    expect(run(["MMAP", "ld", "ld.f80", "long_double", "16", "WRITABLE"])).toBe(int(0));
    expect(run(["VADD", "ld", "1.5", "-2", "0.1"])).toBe(int(3));
    // 1.5: mantissa 0xC000000000000000 (explicit integer bit), exponent 0x3FFF, then 6 zero bytes.
    const onePointFive = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0x3f, 0, 0, 0, 0, 0, 0];
    // -2: mantissa 0x8000000000000000, sign and exponent 0xC000.
    const minusTwo = [0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0xc0, 0, 0, 0, 0, 0, 0];
    // 0.1 as a double (0x3FB999999999999A) widened: mantissa 0xCCCCCCCCCCCCD000, exponent 0x3FFB.
    const pointOne = [0x00, 0xd0, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xfb, 0x3f, 0, 0, 0, 0, 0, 0];
    expect([...bytesOf("ld.f80")]).toEqual([...onePointFive, ...minusTwo, ...pointOne]);
    expect(run(["VALL", "ld"])).toBe(`*3\r\n${bulk("1.5")}${bulk("-2")}${bulk("0.1")}`);
  });

  test("uint64 2^64-1 and int64 -2^63 are exact: a bulk string / an integer in both protocols", () => {
    expect(run(["MMAP", "u64x", "u64x.bin", "uint64", "WRITABLE"])).toBe(":0\r\n");
    expect(run(["MMAP", "i64x", "i64x.bin", "int64", "WRITABLE"])).toBe(":0\r\n");
    expect(run(["VADD", "u64x", "18446744073709551615"])).toBe(":1\r\n");
    expect(run(["VADD", "i64x", "-9223372036854775808"])).toBe(":1\r\n");
    expect(run(["VGET", "u64x", "0"], 2)).toBe("$20\r\n18446744073709551615\r\n");
    expect(run(["VGET", "u64x", "0"], 3)).toBe("$20\r\n18446744073709551615\r\n");
    expect(run(["VGET", "i64x", "0"], 2)).toBe(":-9223372036854775808\r\n");
    expect(run(["VGET", "i64x", "0"], 3)).toBe(":-9223372036854775808\r\n");
    expect([...bytesOf("u64x.bin")]).toEqual([255, 255, 255, 255, 255, 255, 255, 255]);
    expect([...bytesOf("i64x.bin")]).toEqual([0, 0, 0, 0, 0, 0, 0, 0x80]);
  });

  test("VPOP of a uint64 above 2^63-1: its exact decimal in a bulk string; below, an integer", () => {
    expect(run(["MMAP", "u", "u.u64", "uint64", "WRITABLE"])).toBe(int(0));
    expect(run(["VADD", "u", "18446744073709551614", "9223372036854775807", "9223372036854775808", "5", "18446744073709551615"])).toBe(
      int(5),
    );
    // Two pops: 2^64-1 (a bulk string, in RESP2), then 5 (an integer, in RESP3).
    expect([run(["VPOP", "u"], 2), run(["VPOP", "u"], 3)]).toEqual([bulk("18446744073709551615"), int(5)]);
    expect(run(["VCOUNT", "u"])).toBe(int(3));
    expect(run(["VGET", "u", "3"])).toBe(err("ERR index exceeds size"));
  });

  test("string N: stored NUL-padded, read up to the first NUL, any bytes", () => {
    expect(run(["MMAP", "s4", "s4.bin", "string", "4", "WRITABLE"], 3)).toBe(":0\r\n");
    expect(run(["VADD", "s4", "ab", "a\0b", "\r\n\xff", "abcd"], 3)).toBe(":4\r\n");
    expect([...bytesOf("s4.bin")]).toEqual([97, 98, 0, 0, 97, 0, 98, 0, 13, 10, 0xc3, 0xbf, 97, 98, 99, 100]);
    expect(run(["VALL", "s4"], 3)).toBe(latin1("*4\r\n$2\r\nab\r\n$1\r\na\r\n$4\r\n\r\n\xff\r\n$4\r\nabcd\r\n"));
    expect(run(["VADD", "s4", "abcde"], 3)).toBe(err("ERR value is too long (at most 4 bytes)"));
    expect(run(["VSIZE", "s4"], 3)).toBe(":4\r\n");
  });
});

describe("VSET's indices", () => {
  beforeAll(() => {
    const values = new Int32Array(5000).map((_, i) => i);
    fs.writeFileSync(h.file("idx.i32"), new Uint8Array(values.buffer));
    expect(run(["MMAP", "idx", "idx.i32", "int32", "WRITABLE"])).toBe(int(5000));
  });

  test("leading zeros (redis-benchmark's __rand_int__)", () => {
    expect(run(["VSET", "idx", "000000004711", "-4711"])).toBe(int(1));
    expect(run(["VGET", "idx", "4711"])).toBe(int(-4711));
    expect(new DataView(bytesOf("idx.i32").buffer).getInt32(4711 * 4, true)).toBe(-4711);
    expect(run(["VSET", "idx", "4711", "4711"])).toBe(int(1));
  });

  test("out of range: index exceeds size; negative: only the range commands count from the end", () => {
    for (const index of ["5000", "000000005000", "9007199254740991", "9007199254740993", "99999999999999999999", "+99999999999999999999"]) {
      expect(run(["VSET", "idx", index, "1"])).toBe(err("ERR index exceeds size"));
    }
    for (const index of ["-1", "-0000001", "-99999999999999999999"]) {
      expect(run(["VSET", "idx", index, "1"])).toBe(
        err("ERR index must not be negative (only VRANGE and VSTATS count negative indices from the end)"),
      );
    }
  });

  test("not an integer: index argument must be integer", () => {
    for (const index of ["", "abc", "1.5", "1e3", " 1", "1 ", "0x10", "-", "+", "４"]) {
      expect(run(["VSET", "idx", index, "1"])).toBe(err("ERR index argument must be integer"));
    }
  });

  test("VSET checks every index and value before it writes: the file is unchanged", () => {
    const before = bytesOf("idx.i32");
    expect(run(["VSET", "idx", "0", "-5", "5000", "1"])).toBe(err("ERR index exceeds size"));
    expect(run(["VSET", "idx", "0", "-5", "1", "1.5"])).toBe(err("ERR value must be integer"));
    expect(run(["VSET", "idx", "0", "-5", "1", "2147483648"])).toBe(err("ERR value must be between -2147483648 and 2147483647"));
    expect(run(["VSET", "idx", "0", "-5", "x", "1"])).toBe(err("ERR index argument must be integer"));
    expect(bytesOf("idx.i32")).toEqual(before);
    expect(run(["VGET", "idx", "0"])).toBe(int(0));
  });
});

describe("errors that say why", () => {
  beforeAll(() => {
    expect(run(["MMAP", "d", "d.f64"])).toBe(int(0));
    expect(run(["VADD", "d", "1", "2", "3"])).toBe(int(3));
    expect(run(["MMAP", "f", "f.f32", "float", "WRITABLE"])).toBe(int(0));
    expect(run(["MMAP", "x", "x.f80", "long_double", "WRITABLE"])).toBe(int(0));
    expect(run(["MMAP", "s", "s.bin", "string", "4", "WRITABLE"])).toBe(int(0));
  });

  test("a string value too long gives the limit, in bytes", () => {
    expect(run(["VADD", "s", "abcde"])).toBe(err("ERR value is too long (at most 4 bytes)"));
    expect(run(["VADD", "s", "héllo"])).toBe(err("ERR value is too long (at most 4 bytes)"));
    expect(run(["VADD", "s", "abcd"])).toBe(int(1));
  });

  test("NaN, in any spelling, is not stored; other non-numbers keep their text", () => {
    for (const nan of ["nan", "NaN", "-nan", "+NAN"]) {
      expect(run(["VADD", "d", nan])).toBe(err("ERR value must be double; NaN is not stored"));
      expect(run(["VSET", "d", "0", nan])).toBe(err("ERR value must be double; NaN is not stored"));
      expect(run(["VADD", "f", nan])).toBe(err("ERR value must be float; NaN is not stored"));
      expect(run(["VADD", "x", nan])).toBe(err("ERR value must be double; NaN is not stored"));
    }
    expect(run(["VADD", "d", "nano"])).toBe(err("ERR value must be double"));
    expect(run(["VADD", "f", "x"])).toBe(err("ERR value must be float"));
    expect(run(["VALL", "d"])).toBe(`*3\r\n${bulk("1")}${bulk("2")}${bulk("3")}`);
  });
});

describe("writes refused as a whole", () => {
  test("VADD with one bad value among many appends nothing", () => {
    expect(run(["MMAP", "whole", "whole.f64"])).toBe(int(0));
    expect(run(["VADD", "whole", "1", "2"])).toBe(int(2));
    const before = bytesOf("whole.f64");
    expect(run(["VADD", "whole", "3", "4", "5", "x", "6"])).toBe(err("ERR value must be double"));
    expect(run(["VADD", "whole", "3", "1e400"])).toBe(err("ERR value is out of range for double"));
    expect(run(["VADD", "whole", "3", "NaN"])).toBe(err("ERR value must be double; NaN is not stored"));
    expect(bytesOf("whole.f64")).toEqual(before);
    expect(run(["VCOUNT", "whole"])).toBe(int(2));
  });

  test("integer values: leading zeros and many digits are still integers", () => {
    expect(run(["MMAP", "zeros8", "zeros.i8", "int8", "WRITABLE"])).toBe(int(0));
    expect(run(["VADD", "zeros8", "007", "-000000000000000000000001", "000000000000000000000127"])).toBe(int(3));
    expect(run(["VALL", "zeros8"])).toBe(`*3\r\n${int(7)}${int(-1)}${int(127)}`);
    expect(run(["VADD", "zeros8", "000000000000000000000128"])).toBe(err("ERR value must be between -128 and 127"));
    expect(run(["VADD", "zeros8", "123456789012345678901234567890"])).toBe(err("ERR value must be between -128 and 127"));
    expect(run(["VCOUNT", "zeros8"])).toBe(int(3));
  });
});

describe("Redis 8's VADD", () => {
  test("REDUCE, FP32 or VALUES first on a numeric type: the clash error, nothing appended", () => {
    const clash = err("ERR this is mmapd's VADD (append values); Redis 8 vector-set syntax is not supported");
    const types = [["double"], ["float"], ["int8"], ["uint64"], ["long_double"]];
    for (const [i, type] of types.entries()) {
      const key = `vec${i}`;
      expect(run(["MMAP", key, `${key}.bin`, ...type, "WRITABLE"])).toBe(int(0));
      expect(run(["VADD", key, "REDUCE", "3", "VALUES", "3", "0.1", "0.2", "0.3", "element"])).toBe(clash);
      expect(run(["VADD", key, "FP32", "\x00\x00\x80\x3f", "element"])).toBe(clash);
      expect(run(["VADD", key, "values", "1", "1", "element"])).toBe(clash);
      expect(run(["VADD", key, "Reduce", "2"])).toBe(clash);
      expect(run(["VCOUNT", key])).toBe(int(0));
      expect(sizeOf(`${key}.bin`)).toBe(0);
    }
    // Only the first value is looked at: later ones are plain values.
    expect(run(["VADD", "vec0", "1", "REDUCE"])).toBe(err("ERR value must be double"));
  });

  test("a string type stores those words as values", () => {
    expect(run(["MMAP", "vecs", "vecs.bin", "string", "8", "WRITABLE"])).toBe(int(0));
    expect(run(["VADD", "vecs", "REDUCE", "FP32", "VALUES"])).toBe(int(3));
    expect(run(["VALL", "vecs"])).toBe(`*3\r\n${bulk("REDUCE")}${bulk("FP32")}${bulk("VALUES")}`);
  });
});

describe("keys that are not bound, and read-only bindings", () => {
  test("every write on a key that is not bound: You must do MMAP first", () => {
    const notMapped = err("ERR You must do MMAP first");
    for (const args of [
      ["VSET", "nokey", "0", "1"],
      ["VADD", "nokey", "1"],
      ["VPOP", "nokey"],
      ["VCLEAR", "nokey"],
    ]) {
      expect(run(args)).toBe(notMapped);
      expect(run(args, 3)).toBe(notMapped);
    }
  });

  test("writes on a read-only binding: The file is not writable, and the file is unchanged", () => {
    const bytes = new Uint8Array(new Float64Array([1, 2, 3]).buffer);
    fs.writeFileSync(h.file("ro.f64"), bytes);
    expect(run(["MMAP", "ro", "ro.f64", "double"])).toBe(int(3));
    const notWritable = err("ERR The file is not writable");
    expect(run(["VSET", "ro", "0", "9"])).toBe(notWritable);
    expect(run(["VADD", "ro", "9"])).toBe(notWritable);
    expect(run(["VPOP", "ro"])).toBe(notWritable);
    expect(run(["VCLEAR", "ro"])).toBe(notWritable);
    expect(bytesOf("ro.f64")).toEqual(bytes);
    expect(run(["VCOUNT", "ro"])).toBe(int(3));
    expect(run(["VMGET", "ro", "2", "0"])).toBe("*2\r\n$1\r\n3\r\n$1\r\n1\r\n");
  });
});

describe("wrong number of arguments", () => {
  test("each write's arity error names it in lowercase", () => {
    const cases: [string[], string][] = [
      [["VSET", "k", "1"], "vset"],
      [["VSET", "k", "1", "2", "3"], "vset"],
      [["vset", "k"], "vset"],
      [["VADD", "k"], "vadd"],
      [["VPOP"], "vpop"],
      [["VPOP", "k", "x"], "vpop"],
      [["VCLEAR"], "vclear"],
      [["VCLEAR", "k", "x"], "vclear"],
    ];
    for (const [args, name] of cases) expect(run(args)).toBe(err(`ERR wrong number of arguments for '${name}' command`));
  });

  test("arity is checked before the key: even a bound key", () => {
    expect(run(["MMAP", "arity", "arity.f64"])).toBe(int(0));
    expect(run(["VADD", "arity", "1"])).toBe(int(1));
    expect(run(["VSET", "arity", "0", "5", "0"])).toBe(err("ERR wrong number of arguments for 'vset' command"));
    expect(run(["VGET", "arity", "0"])).toBe(bulk("1"));
  });
});

/** A shard of its own for the walkthrough, so that its restart concerns that test only. */
const walkthrough = shardHarness();

test("the README walkthrough: a double file grows, is read and written, outlives its key, is bound again and cleared", () => {
  const w = walkthrough;
  const run = w.run;
  const bytesOf = (name: string) => new Uint8Array(fs.readFileSync(w.file(name)));
  const sizeOf = (name: string) => fs.statSync(w.file(name)).size;
  const doubles = (name: string) => [...new Float64Array(bytesOf(name).buffer)];
  const bulks = (texts: string[]) => `*${texts.length}\r\n` + texts.map(bulk).join("");
  expect(run(["MMAP", "db", "file.mmap"])).toBe(int(0));
  expect(sizeOf("file.mmap")).toBe(0);
  expect(run(["VADD", "db", "0.0"])).toBe(int(1));
  expect(sizeOf("file.mmap")).toBe(8);
  for (const v of ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]) expect(run(["VADD", "db", v])).toBe(int(1));
  expect(run(["VCOUNT", "db"])).toBe(int(10));
  expect(sizeOf("file.mmap")).toBe(80);
  expect(run(["VADD", "db", "1.0", "1.1", "1.2", "1.3", "1.4", "1.5"])).toBe(int(6));
  expect(run(["VCOUNT", "db"])).toBe(int(16));
  expect(run(["VGET", "db", "5"])).toBe(bulk("0.5"));
  expect(run(["VMGET", "db", "1", "2", "3", "4", "5"])).toBe(bulks(["0.1", "0.2", "0.3", "0.4", "0.5"]));
  expect(run(["VSET", "db", "5", "50", "10", "100"])).toBe(int(2));
  expect(run(["VPOP", "db"])).toBe(bulk("1.5"));
  expect(run(["VCOUNT", "db"])).toBe(int(15));
  const values = [0, 0.1, 0.2, 0.3, 0.4, 50, 0.6, 0.7, 0.8, 0.9, 100, 1.1, 1.2, 1.3, 1.4];
  expect(sizeOf("file.mmap")).toBe(120);
  expect(doubles("file.mmap")).toEqual(values);

  // A restart restores the binding from the registry: the shard side of it is `_BIND`.
  w.shard.closeAll();
  expect(run(["_BIND", "db", "file.mmap", "double", "8", "rw"])).toBe(int(15));
  expect(run(["VCOUNT", "db"])).toBe(int(15));
  expect(run(["VALL", "db"])).toBe(bulks(values.map(String)));

  // DEL unbinds; the file stays as it was.
  expect(run(["DEL", "db"])).toBe(int(1));
  expect(run(["KEYS", "*"])).toBe("*0\r\n");
  expect(run(["DBSIZE"])).toBe(int(0));
  expect(sizeOf("file.mmap")).toBe(120);
  expect(doubles("file.mmap")).toEqual(values);

  expect(run(["MMAP", "dba", "file.mmap"])).toBe(int(15));
  expect(run(["VGET", "dba", "5"])).toBe(bulk("50"));
  expect(run(["VCLEAR", "dba"])).toBe(int(15));
  expect(sizeOf("file.mmap")).toBe(0);
  expect(run(["VCOUNT", "dba"])).toBe(int(0));

  // A file of 100 doubles made outside mmapd.
  fs.writeFileSync(w.file("file2.mmap"), new Uint8Array(Float64Array.from({ length: 100 }, (_, i) => i).buffer));
  expect(run(["MMAP", "db", "file2.mmap"])).toBe(int(100));
  expect(run(["VMGET", "db", "1", "3", "5", "7", "9"])).toBe(bulks(["1", "3", "5", "7", "9"]));
  expect(run(["VGET", "db", "99"])).toBe(bulk("99"));
  expect(run(["KEYS", "*"])).toBe(`*2\r\n${bulk("dba")}${bulk("db")}`);
});
