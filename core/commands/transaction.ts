/**
 * The shard's side of transactions (MULTI/EXEC/WATCH); the server sends these, clients cannot.
 *
 *   _WATCH client key [key ...]   the client watches these keys of this shard
 *   _UNWATCH client               the client watches nothing here any more
 *   _EXEC client slot checkers finishers form [id argc arg ...]...
 *                                 runs the client's queued commands that belong to this shard
 *
 * A shard runs its part of a transaction without interruption, so no other client's command
 * runs between the transaction's commands there. A transaction that spans shards adds up to two
 * barriers (a slot of words shared by the workers):
 * - when the client WATCHes keys, every shard checks its watched keys and waits until all
 *   `checkers` have checked; if any saw a change, none runs anything;
 * - when writes land on two shards or more, each of those `finishers` waits after its part until
 *   all have run theirs, before it takes its next command: no reader sees one shard after the
 *   transaction and another before it.
 * A transaction that only reads on other shards needs no barrier: every shard meets it at its
 * place in the one order in which the main thread (the only producer on every ring) sent
 * commands, and for the same reason barriers cannot deadlock.
 */
import type { ArgList } from "../args.ts";
import { argInt, argIs, keyString } from "../args.ts";
import { Binding } from "../shard.ts";
import type { Shard, ShardCommand } from "../shard.ts";

/** Words of one barrier slot: shards that checked, any saw a change, shards that ran, cancelled. */
export const BARRIER_WORDS = 4;
const ARRIVED = 0;
const ABORTED = 1;
const FINISHED = 2;
/** Set by the main thread when a participant's worker died: nobody waits for it any more. */
export const CANCELLED = 3;
/** Looks at a barrier before sleeping on it (a few microseconds). */
const BARRIER_SPINS = 2000;
/** How long one wait at a barrier lasts before it looks at CANCELLED again. */
const BARRIER_POLL_MS = 100;

/** Where `_EXEC`'s queued commands start, after client, slot, checkers, finishers and form. */
const FIRST_COMMAND = 6;
/**
 * `_EXEC`'s form: "d", the whole transaction is on this shard and its reply is EXEC's own
 * (an array of the replies, or a null array when a watched key changed); "p", a part, replied
 * as [shard, status, replies...] for the main thread to put together.
 */
export const EXEC_DIRECT = "d";
export const EXEC_PARTS = "p";

/** How `_EXEC`'s reply says the part went: [shard, status, replies...]. */
export const EXEC_RAN = 1;
export const EXEC_ABORTED = 0;
export const EXEC_CANCELLED = 2;

/** Arrives at barrier word `word` of `slot` and waits for all `participants`; false if cancelled. */
function arriveAndWait(barriers: Int32Array, slot: number, word: number, participants: number): boolean {
  const at = slot * BARRIER_WORDS + word;
  Atomics.add(barriers, at, 1);
  Atomics.notify(barriers, at);
  // The other shards were handed the transaction in the same turn: most often they arrive within
  // microseconds, much sooner than a futex sleep and wake-up would take.
  for (let spin = 0; spin < BARRIER_SPINS; spin++) if (Atomics.load(barriers, at) >= participants) return true;
  for (;;) {
    const arrived = Atomics.load(barriers, at);
    if (arrived >= participants) return true;
    if (Atomics.load(barriers, slot * BARRIER_WORDS + CANCELLED) !== 0) return false;
    Atomics.wait(barriers, at, arrived, BARRIER_POLL_MS);
  }
}

/** True if a key `client` watches here changed, or its file changed size outside mmapd. */
function watchedChanged(shard: Shard, client: number): boolean {
  if (shard.watches.isDirty(client)) return true;
  for (const key of shard.watches.keysOf(client)) {
    const b = shard.bindings.get(key);
    if (b instanceof Binding && (b.file.sizeChanged || b.file.changedOutside())) return true;
  }
  return false;
}

/** The shard commands of transactions; `table` gives the commands by wire id (core/commands.ts). */
export function transactionCommands(table: () => readonly ShardCommand[]): ShardCommand[] {
  const sub: ArgList = { buf: new Uint8Array(0), argc: 0, argStart: new Int32Array(0), argEnd: new Int32Array(0) };
  return [
    {
      name: "_watch",
      arity: -3,
      route: "key",
      internal: true,
      flags: [],
      keys: { first: 2, last: -1, step: 1 },
      group: "internal",
      since: "0.2.0",
      summary: "Starts watching keys of this shard for a client (sent by the server only).",
      syntax: "client key [key ...]",
      run(shard, a, w) {
        const client = argInt(a, 1);
        for (let i = 2; i < a.argc; i++) shard.watches.watch(client, keyString(a, i));
        w.simple("OK");
      },
    },
    {
      name: "_unwatch",
      arity: 2,
      route: "key",
      internal: true,
      flags: [],
      keys: null,
      group: "internal",
      since: "0.2.0",
      summary: "Forgets a client's watched keys on this shard (sent by the server only).",
      syntax: "client",
      run(shard, a, w) {
        shard.watches.clear(argInt(a, 1));
        w.simple("OK");
      },
    },
    {
      name: "_exec",
      arity: -6,
      route: "key",
      internal: true,
      flags: [],
      keys: null,
      group: "internal",
      since: "0.2.0",
      summary: "Runs this shard's part of a client's transaction (sent by the server only).",
      syntax: "client slot checkers finishers form [command]",
      run(shard, a, w) {
        const client = argInt(a, 1);
        const slot = argInt(a, 2);
        const checkers = argInt(a, 3);
        const finishers = argInt(a, 4);
        const barriers = shard.options.barriers;
        if ((checkers > 1 || finishers > 1) && barriers === undefined)
          throw new Error("a transaction across shards needs the workers' barriers");
        let status = watchedChanged(shard, client) ? EXEC_ABORTED : EXEC_RAN;
        shard.watches.clear(client);
        if (checkers > 1) {
          if (status === EXEC_ABORTED) Atomics.store(barriers!, slot * BARRIER_WORDS + ABORTED, 1);
          if (!arriveAndWait(barriers!, slot, ARRIVED, checkers)) status = EXEC_CANCELLED;
          else if (Atomics.load(barriers!, slot * BARRIER_WORDS + ABORTED) !== 0) status = EXEC_ABORTED;
        }
        let count = 0;
        for (let p = FIRST_COMMAND; p < a.argc; p += 2 + argInt(a, p + 1)) count++;
        const ran = status === EXEC_RAN;
        if (argIs(a, 5, EXEC_DIRECT)) {
          if (!ran) {
            w.nilArray();
            return;
          }
          w.array(count);
        } else {
          w.array(2 + (ran ? count : 0));
          w.integer(shard.options.index);
          w.integer(status);
          if (!ran) return;
        }
        const commands = table();
        for (let p = FIRST_COMMAND; p < a.argc; ) {
          const command = commands[argInt(a, p)];
          const argc = argInt(a, p + 1);
          sub.buf = a.buf;
          sub.argc = argc;
          sub.argStart = a.argStart.subarray(p + 2, p + 2 + argc);
          sub.argEnd = a.argEnd.subarray(p + 2, p + 2 + argc);
          const mark = w.length;
          shard.execute(command, sub, w);
          shard.options.onTransactionCommand?.(command, w, mark);
          p += 2 + argc;
        }
        // Nothing else runs here until every shard has run its part.
        if (finishers > 1) arriveAndWait(barriers!, slot, FINISHED, finishers);
      },
    },
  ];
}
