/**
 * Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH, with Redis 7's replies and errors.
 * What runs where is server/transactions.ts (main thread) and core/commands/transaction.ts (shards).
 */
import { CommandError } from "../../core/errors.ts";
import type { ServerCommand } from "./server_command.ts";
import { DEFERRED } from "./server_command.ts";

/** Throws `refusal` as the command's error reply, if there is one. */
function refuse(refusal: string | null): void {
  if (refusal !== null) throw new CommandError(refusal);
}

export const transactionCommands: ServerCommand[] = [
  {
    name: "multi",
    arity: 1,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "transactions",
    since: "0.2.0",
    summary: "Starts a transaction: later commands are queued until EXEC.",
    complexity: "O(1)",
    syntax: "",
    inMulti: "runs-now",
    run(ctx, conn, _a, w) {
      refuse(ctx.transactions.multi(conn));
      w.simple("OK");
    },
  },
  {
    name: "exec",
    arity: 1,
    route: "main",
    flags: ["loading", "stale"],
    keys: null,
    group: "transactions",
    since: "0.2.0",
    summary: "Runs the queued commands as one step, across every shard they touch; a null reply if a WATCHed key changed.",
    complexity: "Depends on the commands in the transaction",
    syntax: "",
    inMulti: "runs-now",
    run(ctx, conn, _a, w, seq) {
      const result = ctx.transactions.exec(conn, w, seq);
      if (result === false) return DEFERRED;
      if (result !== true) throw new CommandError(result);
    },
  },
  {
    name: "discard",
    arity: 1,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "transactions",
    since: "0.2.0",
    summary: "Drops the queued commands and every WATCH.",
    complexity: "O(N) where N is the number of queued commands",
    syntax: "",
    inMulti: "runs-now",
    run(ctx, conn, _a, w) {
      refuse(ctx.transactions.discard(conn));
      w.simple("OK");
    },
  },
  {
    name: "watch",
    arity: -2,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: { first: 1, last: -1, step: 1 },
    group: "transactions",
    since: "0.2.0",
    summary: "Makes the next EXEC fail if any of these keys is written (or its binding changes) before it.",
    complexity: "O(1) for every key",
    syntax: "key [key ...]",
    inMulti: "runs-now",
    run(ctx, conn, a, w) {
      refuse(ctx.transactions.watch(conn, a));
      w.simple("OK");
    },
  },
  {
    name: "unwatch",
    arity: 1,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "transactions",
    since: "0.2.0",
    summary: "Forgets every WATCHed key.",
    complexity: "O(1)",
    syntax: "",
    run(ctx, conn, _a, w) {
      ctx.transactions.unwatch(conn);
      w.simple("OK");
    },
  },
];
