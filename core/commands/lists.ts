/**
 * Redis's list commands that a binding answers: TYPE calls every key a list (an ordered run of
 * values, appended and popped at the end, read by index), so tools that size keys by type, such
 * as redis-cli --bigkeys, ask LLEN.
 *
 *   LLEN key    number of values; 0 for a key that does not exist, as Redis
 */
import { KEY_AT_1 } from "../command_spec.ts";
import type { ShardCommand } from "../shard.ts";

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
];
