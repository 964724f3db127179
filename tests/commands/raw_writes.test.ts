/**
 * The raw writes, in-process and byte for byte: VADDRAW appends and VSETRAW overwrites values
 * given as bytes in the file's own layout; a length that is not a multiple of the value size, a
 * range past the end, a negative index, a read-only binding or a key that is not bound changes
 * nothing.
 */
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import { err, shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const run = h.run;

const f64 = (values: number[]) => {
  const b = Buffer.alloc(values.length * 8);
  for (const [i, v] of values.entries()) b.writeDoubleLE(v, i * 8);
  return b;
};
const fileOf = (name: string) => fs.readFileSync(h.file(name));

describe("raw writes", () => {
  test("VADDRAW appends values in the file's layout; VSETRAW overwrites from an index", () => {
    expect(run(["MMAP", "w", "w.f64"])).toBe(":0\r\n");
    expect(run(["VADDRAW", "w", f64([1, 2, 3])])).toBe(":3\r\n");
    expect(run(["VSETRAW", "w", "1", f64([20, 30])], 3)).toBe(":2\r\n");
    expect(fileOf("w.f64").equals(f64([1, 20, 30]))).toBe(true);
  });

  test("any bytes go in as they are: an int16 file from raw little-endian words", () => {
    expect(run(["MMAP", "h", "h.i16", "int16", "WRITABLE"])).toBe(":0\r\n");
    expect(run(["VADDRAW", "h", new Uint8Array([0x0d, 0x0a, 0xff, 0xff, 0x00, 0x80])])).toBe(":3\r\n");
    expect(run(["VALL", "h"])).toBe("*3\r\n:2573\r\n:-1\r\n:-32768\r\n");
    expect(run(["VADDRAW", "h", new Uint8Array(0)])).toBe(":0\r\n");
    expect(run(["VSETRAW", "h", "2", new Uint8Array(0)])).toBe(":0\r\n");
    expect(fileOf("h.i16").length).toBe(6);
  });

  test("a length that is not a multiple of the value size, or a range past the end, changes nothing", () => {
    const before = fileOf("w.f64");
    expect(run(["VADDRAW", "w", Buffer.alloc(12)])).toBe("-ERR raw length 12 is not a multiple of value size 8\r\n");
    expect(run(["VSETRAW", "w", "2", f64([7, 8])])).toBe("-ERR index exceeds size\r\n");
    expect(run(["VSETRAW", "w", "3", f64([7])])).toBe("-ERR index exceeds size\r\n");
    expect(run(["VSETRAW", "w", "x", f64([7])])).toBe("-ERR index argument must be integer\r\n");
    expect(fileOf("w.f64").equals(before)).toBe(true);
  });

  test("a negative index: only the range commands count from the end", () => {
    const before = fileOf("w.f64");
    for (const index of ["-1", "-0000001", "-99999999999999999999"]) {
      expect(run(["VSETRAW", "w", index, new Uint8Array(8)])).toBe(
        err("ERR index must not be negative (only VRANGE and VSTATS count negative indices from the end)"),
      );
    }
    expect(fileOf("w.f64").equals(before)).toBe(true);
  });

  test("read-only bindings and keys that are not bound refuse raw writes", () => {
    fs.writeFileSync(h.file("r.f64"), f64([0, 1.5]));
    expect(run(["MMAP", "r", "r.f64", "double"])).toBe(":2\r\n");
    expect(run(["VADDRAW", "r", f64([1])])).toBe("-ERR The file is not writable\r\n");
    expect(run(["VSETRAW", "r", "0", f64([1])])).toBe("-ERR The file is not writable\r\n");
    expect(fileOf("r.f64").equals(f64([0, 1.5]))).toBe(true);
    expect(run(["VADDRAW", "nope", f64([1])])).toBe(err("ERR You must do MMAP first"));
    expect(run(["VSETRAW", "nope", "0", f64([1])])).toBe(err("ERR You must do MMAP first"));
  });

  test("wrong number of arguments", () => {
    expect(run(["VADDRAW", "w"])).toBe(err("ERR wrong number of arguments for 'vaddraw' command"));
    expect(run(["VADDRAW", "w", "a", "b"])).toBe(err("ERR wrong number of arguments for 'vaddraw' command"));
    expect(run(["VSETRAW", "w", "0"])).toBe(err("ERR wrong number of arguments for 'vsetraw' command"));
  });
});
