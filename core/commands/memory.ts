/**
 * MEMORY, as redis-cli --memkeys and memory tools call it.
 *
 *   MEMORY USAGE key [SAMPLES count]   bytes of the key's file plus its bookkeeping; nil for no key
 *   MEMORY HELP
 *
 * A binding's values live in its file, mapped into memory: its size is exact, nothing is sampled
 * (SAMPLES is checked as Redis checks it, then ignored).
 */
import type { ArgList } from "../args.ts";
import { argInt, argIs, argString } from "../args.ts";
import { CommandError, Errors } from "../errors.ts";
import type { ShardCommand } from "../shard.ts";
import { Binding } from "../shard.ts";

/** What a binding costs besides its file's bytes (its key, the binding and mapping records), as an estimate. */
export const BINDING_OVERHEAD_BYTES = 256;

const HELP = [
  "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "USAGE <key> [SAMPLES <count>]",
  "    Return memory in bytes used by <key>: the bytes of its file and of its binding.",
  "    SAMPLES is accepted for compatibility; sizes are exact.",
  "HELP",
  "    Prints this help.",
];

/** Checks MEMORY USAGE's options (`SAMPLES n`, n >= 0) with Redis's errors. */
function checkUsageOptions(a: ArgList): void {
  for (let i = 3; i < a.argc; i += 2) {
    if (!argIs(a, i, "samples") || i + 1 >= a.argc) throw new CommandError(Errors.syntax);
    const samples = argInt(a, i + 1);
    if (samples !== samples) throw new CommandError(Errors.notAnInteger);
    if (samples < 0) throw new CommandError(Errors.syntax);
  }
}

export const memoryCommand: ShardCommand = {
  name: "memory",
  arity: -2,
  route: "key",
  flags: ["readonly"],
  // The key of MEMORY USAGE; the other subcommands have none (and go to shard 0).
  keys: { first: 2, last: 2, step: 1, find: (a) => (a.argc >= 3 && argIs(a, 1, "usage") ? [2] : []) },
  group: "server",
  since: "0.1.0",
  summary: "Reports the memory a key uses.",
  complexity: "Depends on subcommand",
  syntax: "subcommand [arg ...]",
  subcommands: [
    {
      name: "usage",
      arity: -3,
      flags: ["readonly"],
      summary: "Returns the bytes a key uses: its file's size plus its binding's bookkeeping.",
      syntax: "key [SAMPLES count]",
    },
    { name: "help", arity: 2, flags: ["loading", "stale"], summary: "Returns help for MEMORY.", syntax: "" },
  ],
  run(shard, a, w) {
    if (argIs(a, 1, "usage")) {
      if (a.argc < 3) throw new CommandError(Errors.wrongArity("memory|usage"));
      checkUsageOptions(a);
      const entry = shard.find(a, 2);
      if (entry === undefined) {
        w.nil();
        return;
      }
      // A binding that failed at start maps nothing: only its bookkeeping.
      const fileBytes = entry instanceof Binding && !entry.file.sizeChanged ? entry.file.byteLength : 0;
      w.integer(fileBytes + entry.key.length + BINDING_OVERHEAD_BYTES);
      return;
    }
    if (argIs(a, 1, "help")) {
      if (a.argc !== 2) throw new CommandError(Errors.wrongArity("memory|help"));
      w.lines(HELP);
      return;
    }
    throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "memory"));
  },
};
