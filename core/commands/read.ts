/**
 * The reading commands.
 *
 *   VGET key index              one value
 *   VMGET key index [index ...] the values, in argument order; every index checked first
 *   VALL key                    every value
 *   VCOUNT key                  number of values
 *   VTYPE key                   the type name
 *   VSIZE key                   bytes per value
 *   VFILEPATH key               the path as given to MMAP
 */
import type { ShardCommand } from "../shard.ts";
import { KEY_AT_1 } from "../command_spec.ts";
import { argIs } from "../args.ts";
import { CommandError, Errors } from "../errors.ts";
import { indexArg } from "./index_args.ts";
import type { Binding } from "../shard.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";

/** Appends the value at `index` of `b` as one reply. */
export function replyValue(w: ReplyWriter, b: Binding, index: number): void {
  const file = b.file;
  file.locate(index * b.width);
  b.type.reply(w, file.view, file.bytes, file.at, b.width);
}

/** Appends the bytes of the values at indices[0, n) of `b`, in that order, as one bulk string. */
function replyRawValues(w: ReplyWriter, b: Binding, indices: Float64Array, n: number): void {
  const width = b.width;
  const length = n * width;
  w.bulkHeader(length);
  w.ensure(length + 2);
  for (let k = 0; k < n; k++) b.file.readInto(indices[k] * width, width, w.buf, w.length + k * width);
  w.length += length;
  w.buf[w.length++] = 13;
  w.buf[w.length++] = 10;
}

export const readCommands: ShardCommand[] = [
  {
    name: "vget",
    arity: 3,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns the value at an index.",
    complexity: "O(1)",
    syntax: "key index",
    run(shard, a, w) {
      const b = shard.get(a, 1);
      replyValue(w, b, indexArg(a, 2, b.file.count));
    },
  },
  {
    name: "vmget",
    arity: -3,
    route: "key",
    flags: ["readonly"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns the values at the given indices, in argument order; with RAW, their bytes in the file's layout as one bulk string.",
    complexity: "O(N) where N is the number of indices",
    syntax: "key [RAW] index [index ...]",
    run(shard, a, w) {
      const b = shard.get(a, 1);
      const count = b.file.count;
      // RAW is never an index, so the two forms cannot be confused.
      const raw = argIs(a, 2, "raw");
      const first = raw ? 3 : 2;
      const n = a.argc - first;
      if (n === 0) throw new CommandError(Errors.wrongArity("vmget"));
      // Every index is checked before any value is written, and parsed only once.
      const indices = shard.indexScratch(n);
      for (let k = 0; k < n; k++) indices[k] = indexArg(a, k + first, count);
      if (raw) replyRawValues(w, b, indices, n);
      else shard.replyRange(w, b, 0, n, "values", indices);
    },
  },
  {
    name: "vall",
    arity: 2,
    route: "key",
    flags: ["readonly"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns every value of the file.",
    complexity: "O(N) where N is the number of values",
    syntax: "key",
    run(shard, a, w) {
      const b = shard.get(a, 1);
      shard.replyRange(w, b, 0, b.file.count, "values");
    },
  },
  {
    name: "vcount",
    arity: 2,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns the number of values in the file.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      w.integer(shard.get(a, 1).file.count);
    },
  },
  {
    name: "vtype",
    arity: 2,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns the value type of a binding.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      w.bulk(shard.get(a, 1).type.name);
    },
  },
  {
    name: "vsize",
    arity: 2,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns the number of bytes per value.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      w.integer(shard.get(a, 1).width);
    },
  },
  {
    name: "vfilepath",
    arity: 2,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns the path of the bound file as given to MMAP.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      w.bulk(shard.get(a, 1).displayPath);
    },
  },
];
