/**
 * Redis's list commands that a binding answers: TYPE calls every key a list (an ordered run of
 * values, appended and popped at the end, read by index), so tools that size keys by type, such
 * as redis-cli --bigkeys, ask LLEN.
 *
 *   LLEN key                 number of values; 0 for a key that does not exist, as Redis
 *   LRANGE key start stop    values start..stop (as VRANGE); an empty array for a missing key
 *   LINDEX key index         one value, negative indices from the end; nil outside or for a missing key
 *
 * They read only: a binding's values are written with mmapd's commands (VSET, VADD, VPOP).
 * Numbers follow Redis's list rules and error texts, as list tools expect.
 */
import type { ArgList } from "../args.ts";
import { argInt } from "../args.ts";
import { KEY_AT_1 } from "../command_spec.ts";
import { CommandError, Errors } from "../errors.ts";
import type { ShardCommand } from "../shard.ts";
import { replyValue } from "./read.ts";

/** Argument i as Redis's list commands read a number. */
function listInteger(a: ArgList, i: number): number {
  const n = argInt(a, i);
  if (n !== n) throw new CommandError(Errors.notAnInteger);
  return n;
}

export const listCommands: ShardCommand[] = [
  {
    name: "llen",
    arity: 2,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "list",
    since: "0.1.0",
    summary: "Returns the number of values of a binding (as VCOUNT), or 0 when the key does not exist.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      w.integer(shard.find(a, 1) === undefined ? 0 : shard.get(a, 1).file.count);
    },
  },
  {
    name: "lrange",
    arity: 4,
    route: "key",
    flags: ["readonly"],
    keys: KEY_AT_1,
    group: "list",
    since: "0.2.0",
    summary:
      "Returns the values from start to stop inclusive, as VRANGE (LRANGE's index rules), or an empty array when the key does not exist.",
    complexity: "O(N) where N is the number of values returned",
    syntax: "key start stop",
    run(shard, a, w) {
      let start = listInteger(a, 2);
      let stop = listInteger(a, 3);
      if (shard.find(a, 1) === undefined) {
        w.array(0);
        return;
      }
      const b = shard.get(a, 1);
      const count = b.file.count;
      if (start < 0) start = Math.max(0, count + start);
      if (stop < 0) stop = count + stop;
      const end = Math.min(count, stop + 1);
      shard.replyRange(w, b, start, Math.max(start, end), "values");
    },
  },
  {
    name: "lindex",
    arity: 3,
    route: "key",
    flags: ["readonly"],
    keys: KEY_AT_1,
    group: "list",
    since: "0.2.0",
    summary: "Returns the value at an index (negative: from the end), or nil outside the values or when the key does not exist.",
    complexity: "O(1)",
    syntax: "key index",
    run(shard, a, w) {
      let index = listInteger(a, 2);
      if (shard.find(a, 1) === undefined) {
        w.nil();
        return;
      }
      const b = shard.get(a, 1);
      if (index < 0) index += b.file.count;
      if (index < 0 || index >= b.file.count) w.nil();
      else replyValue(w, b, index);
    },
  },
];
