/**
 * Raw writes (mmapd's own): values given as bytes in the file's own layout, for bulk loads from
 * numpy (`arr.astype('<f8').tobytes()`) without formatting numbers as text.
 *
 *   VADDRAW key bytes            -> number of values appended
 *   VSETRAW key index bytes      -> number of values written from index on
 */
import { argLength } from "../args.ts";
import { KEY_AT_1 } from "../command_spec.ts";
import { CommandError, Errors } from "../errors.ts";
import type { Binding, ShardCommand } from "../shard.ts";
import { indexArg } from "./index_args.ts";
import { appendBytes } from "./write.ts";

/** The number of values in argument i, whose length must be a multiple of the value size. */
function rawValueCount(b: Binding, length: number): number {
  if (length % b.width !== 0) throw new CommandError(Errors.rawLength(length, b.width));
  return length / b.width;
}

export const rawWriteCommands: ShardCommand[] = [
  {
    name: "vaddraw",
    arity: 3,
    route: "key",
    flags: ["write"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Appends values given as raw bytes in the file's layout.",
    complexity: "O(N) where N is the number of bytes",
    syntax: "key bytes",
    run(shard, a, w) {
      const b = shard.getWritable(a, 1);
      const n = rawValueCount(b, argLength(a, 2));
      appendBytes(shard, b, a.buf, a.argStart[2], a.argEnd[2]);
      w.integer(n);
    },
  },
  {
    name: "vsetraw",
    arity: 4,
    route: "key",
    flags: ["write"],
    keys: KEY_AT_1,
    group: "mmap",
    since: "0.1.0",
    summary: "Writes values given as raw bytes in the file's layout, from an index on.",
    complexity: "O(N) where N is the number of bytes",
    syntax: "key index bytes",
    run(shard, a, w) {
      const b = shard.getWritable(a, 1);
      const n = rawValueCount(b, argLength(a, 3));
      const index = indexArg(a, 2, b.file.count);
      if (index + n > b.file.count) throw new CommandError(Errors.indexOutOfRange);
      if (n > 0) {
        b.file.writeFrom(index * b.width, a.buf, a.argStart[3], a.argEnd[3]);
        shard.dirty.add(b);
      }
      w.integer(n);
    },
  },
];
