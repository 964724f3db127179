/**
 * core/args.ts: a command kept after its input buffer is reused (a held MMAP, a queued
 * transaction) is a real copy, even when that buffer is a Node Buffer, whose slice() is a view.
 */
import { expect, test } from "bun:test";
import { type ArgList, argString, copyArgs } from "../../core/args.ts";

test("copyArgs copies the bytes: reusing a Buffer source afterwards does not change the copy", () => {
  const source = Buffer.from("xxMMAP key file.f64yy");
  const a: ArgList = { buf: source, argc: 3, argStart: new Int32Array([2, 7, 11]), argEnd: new Int32Array([6, 10, 19]) };
  const copy = copyArgs(a);
  source.fill(0x21);
  expect([0, 1, 2].map((i) => argString(copy, i))).toEqual(["MMAP", "key", "file.f64"]);
  expect(copy.buf).not.toBeInstanceOf(Buffer);
});
