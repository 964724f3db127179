/**
 * The writing commands. Each one checks every argument (encoding the values into the shard's
 * scratch buffer) before it changes a byte of the file.
 *
 *   VSET key index value [index value ...]   -> number of pairs written
 *   VADD key value [value ...]               -> number of values appended
 *   VPOP key                                 -> the last value, removed; nil when empty
 *   VCLEAR key                               -> the count before; the file becomes empty
 */
import type { ArgList } from "../args.ts";
import { KEY_AT_1 } from "../command_spec.ts";
import { argIs } from "../args.ts";
import { CommandError, Errors } from "../errors.ts";
import type { Binding, Shard, ShardCommand } from "../shard.ts";
import { indexArg } from "./index_args.ts";
import { replyValue } from "./read.ts";

/** Encodes arguments from, from+step, ... into the scratch buffer, one value each; throws on the first bad one. */
function encodeValues(shard: Shard, b: Binding, a: ArgList, from: number, step: number): number {
  const n = Math.ceil((a.argc - from) / step);
  shard.reserveScratch(n * b.width);
  const view = shard.scratchView;
  for (let k = 0, i = from; i < a.argc; k++, i += step) {
    const error = b.type.encode(a, i, view, k * b.width, b.width);
    if (error !== null) throw new CommandError(error);
  }
  return n;
}

/** Appends src[start, end), whole values in the file's layout, to the file of `b`. */
export function appendBytes(shard: Shard, b: Binding, src: Uint8Array, start: number, end: number): void {
  if (end === start) return;
  const count = b.file.count;
  b.file.resize(count + (end - start) / b.width);
  b.file.writeFrom(count * b.width, src, start, end);
  shard.dirty.add(b);
}

/** Redis 8's VADD for vector sets starts with one of these words; ours appends values. */
function refuseVectorSetSyntax(b: Binding, a: ArgList): void {
  if (b.type.numeric && (argIs(a, 2, "reduce") || argIs(a, 2, "fp32") || argIs(a, 2, "values"))) {
    throw new CommandError(Errors.vectorSetSyntax);
  }
}

export const writeCommands: ShardCommand[] = [
  {
    name: "vset",
    arity: -4,
    route: "key",
    flags: ["write"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Writes values at indices; every pair is checked before any is written.",
    complexity: "O(N) where N is the number of pairs",
    syntax: "key index value [index value ...]",
    run(shard, a, w) {
      if ((a.argc - 2) % 2 !== 0) throw new CommandError(Errors.wrongArity("vset"));
      const b = shard.getWritable(a, 1);
      const count = b.file.count;
      for (let i = 2; i < a.argc; i += 2) indexArg(a, i, count);
      const pairs = encodeValues(shard, b, a, 3, 2);
      const width = b.width;
      for (let k = 0; k < pairs; k++) {
        b.file.writeFrom(indexArg(a, 2 + 2 * k, count) * width, shard.scratch, k * width, (k + 1) * width);
      }
      shard.dirty.add(b);
      w.integer(pairs);
    },
  },
  {
    name: "vadd",
    arity: -3,
    route: "key",
    flags: ["write"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Appends values to the file and returns how many were appended.",
    complexity: "O(N) where N is the number of values",
    syntax: "key value [value ...]",
    run(shard, a, w) {
      const b = shard.getWritable(a, 1);
      refuseVectorSetSyntax(b, a);
      const n = encodeValues(shard, b, a, 2, 1);
      appendBytes(shard, b, shard.scratch, 0, n * b.width);
      w.integer(n);
    },
  },
  {
    name: "vpop",
    arity: 2,
    route: "key",
    flags: ["write", "fast"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Removes and returns the last value; nil when the file is empty.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      const b = shard.getWritable(a, 1);
      const count = b.file.count;
      if (count === 0) {
        w.nil();
        return;
      }
      replyValue(w, b, count - 1);
      b.file.resize(count - 1);
      shard.dirty.add(b);
    },
  },
  {
    name: "vclear",
    arity: 2,
    route: "key",
    flags: ["write"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Truncates the file to 0 bytes and returns the count before.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      const b = shard.getWritable(a, 1);
      const count = b.file.count;
      b.file.resize(0);
      shard.dirty.add(b);
      w.integer(count);
    },
  },
];
