/**
 * Range and analytics commands (mmapd's own).
 *
 *   VRANGE key start stop [RAW]   values start..stop inclusive (LRANGE rules); RAW: one bulk of the raw bytes
 *   VSTATS key [start stop]       count, sum, min, max, mean, nan_count (NaN skipped; integer sums exact)
 *   VINFO key                     path, type, size, count, writable, bytes, shard (and failed, for a binding that failed at start)
 */
import { argIs } from "../args.ts";
import { KEY_AT_1 } from "../command_spec.ts";
import { CommandError, Errors, fail } from "../errors.ts";
import type { Binding, ShardCommand } from "../shard.ts";
import { FailedBinding } from "../shard.ts";
import { rangeArgs } from "./range_args.ts";
import { replyValue } from "./read.ts";

const INTEGER_TYPES = new Set(["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]);

/** Sums values [start, end) of an integer binding exactly: in a double while it is exact, then in BigInt. */
function exactIntegerSum(b: Binding, start: number, end: number): number | bigint {
  const file = b.file;
  const width = b.width;
  let sum = 0;
  let i = start;
  if (width < 8) {
    for (; i < end && Math.abs(sum) < 2 ** 52; i++) {
      file.locate(i * width);
      sum += b.type.toNumber(file.view, file.at);
    }
    if (i === end) return sum;
  }
  let big = BigInt(sum);
  const signed = b.type.name !== "uint64";
  for (; i < end; i++) {
    file.locate(i * width);
    if (width === 8) big += signed ? file.view.getBigInt64(file.at, true) : file.view.getBigUint64(file.at, true);
    else big += BigInt(b.type.toNumber(file.view, file.at));
  }
  return big;
}

/** The 64-bit integer at index i of `b` (int64 or uint64), exactly. */
function exactAt(b: Binding, i: number): bigint {
  b.file.locate(i * 8);
  return b.type.name === "uint64" ? b.file.view.getBigUint64(b.file.at, true) : b.file.view.getBigInt64(b.file.at, true);
}

export const analyticsCommands: ShardCommand[] = [
  {
    name: "vrange",
    arity: -4,
    route: "key",
    flags: ["readonly"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns the values from start to stop inclusive (negative indices count from the end), or their raw bytes with RAW.",
    complexity: "O(N) where N is the number of values returned",
    syntax: "key start stop [RAW]",
    run(shard, a, w) {
      if (a.argc > 5 || (a.argc === 5 && !argIs(a, 4, "raw"))) throw new CommandError(Errors.syntax);
      const b = shard.get(a, 1);
      const { start, end } = rangeArgs(a, 2, b.file.count);
      shard.replyRange(w, b, start, end, a.argc === 5 ? "raw" : "values");
    },
  },
  {
    name: "vstats",
    arity: -2,
    route: "key",
    flags: ["readonly"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns count, sum, min, max, mean and nan_count over a range of values.",
    complexity: "O(N) where N is the number of values in the range",
    syntax: "key [start stop]",
    run(shard, a, w) {
      if (a.argc !== 2 && a.argc !== 4) throw new CommandError(Errors.wrongArity("vstats"));
      const b = shard.get(a, 1);
      if (!b.type.numeric) fail("VSTATS needs a numeric type");
      const { start, end } = a.argc === 4 ? rangeArgs(a, 2, b.file.count) : { start: 0, end: b.file.count };
      const file = b.file;
      let count = 0;
      let nanCount = 0;
      let sum = 0;
      let minAt = -1;
      let maxAt = -1;
      let min = Infinity;
      let max = -Infinity;
      const isInteger = INTEGER_TYPES.has(b.type.name);
      // 64-bit integers beyond 2^53 can round to the same number: such ties are settled exactly.
      const wide = isInteger && b.width === 8;
      for (let i = start; i < end; i++) {
        file.locate(i * b.width);
        const x = b.type.toNumber(file.view, file.at);
        if (x !== x) {
          nanCount++;
          continue;
        }
        count++;
        if (!isInteger) sum += x;
        if (minAt < 0 || x < min || (x === min && wide && exactAt(b, i) < exactAt(b, minAt))) {
          min = x;
          minAt = i;
        }
        if (maxAt < 0 || x > max || (x === max && wide && exactAt(b, i) > exactAt(b, maxAt))) {
          max = x;
          maxAt = i;
        }
      }
      const exact = isInteger ? exactIntegerSum(b, start, end) : sum;
      w.map(6);
      w.bulk("count");
      w.integer(count);
      w.bulk("sum");
      // A sum beyond 64-bit signed range goes out as its exact decimal in a bulk string (see bigint).
      if (typeof exact === "bigint") w.bigint(exact);
      else if (isInteger) w.integer(exact);
      else w.double(exact);
      w.bulk("min");
      if (minAt < 0) w.nil();
      else replyValue(w, b, minAt);
      w.bulk("max");
      if (maxAt < 0) w.nil();
      else replyValue(w, b, maxAt);
      w.bulk("mean");
      if (count === 0) w.nil();
      else w.double(typeof exact === "bigint" ? Number(exact) / count : exact / count);
      w.bulk("nan_count");
      w.integer(nanCount);
    },
  },
  {
    name: "vinfo",
    arity: 2,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Returns a binding's path, type, size, count, mode, bytes and shard; for a binding that failed at start, why.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      const entry = shard.find(a, 1);
      if (entry instanceof FailedBinding) {
        // The same fields (count and bytes unknown), and why the binding failed.
        w.map(8);
        w.bulk("path");
        w.bulk(entry.displayPath);
        w.bulk("type");
        w.bulk(entry.typeName);
        w.bulk("size");
        w.integer(entry.width);
        w.bulk("count");
        w.nil();
        w.bulk("writable");
        w.integer(entry.writable ? 1 : 0);
        w.bulk("bytes");
        w.nil();
        w.bulk("shard");
        w.integer(shard.options.index);
        w.bulk("failed");
        w.bulk(entry.reason);
        return;
      }
      const b = shard.get(a, 1);
      w.map(7);
      w.bulk("path");
      w.bulk(b.displayPath);
      w.bulk("type");
      w.bulk(b.type.name);
      w.bulk("size");
      w.integer(b.width);
      w.bulk("count");
      w.integer(b.file.count);
      w.bulk("writable");
      w.integer(b.writable ? 1 : 0);
      w.bulk("bytes");
      w.integer(b.file.byteLength);
      w.bulk("shard");
      w.integer(shard.options.index);
    },
  },
];
