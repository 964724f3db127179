/**
 * SLOWLOG and MONITOR: what the server ran, for an operator watching it.
 */
import type { ArgList } from "../../core/args.ts";
import { argString } from "../../core/args.ts";
import { CommandError, Errors, ServerErrors } from "../../core/errors.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

/** SLOWLOG HELP, in Redis's words. */
const SLOWLOG_HELP = [
  "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "GET [<count>]",
  "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
  "    Entries are made of:",
  "    id, timestamp, time in microseconds, arguments array, client IP and port,",
  "    client name",
  "LEN",
  "    Return the length of the slowlog.",
  "RESET",
  "    Reset the slowlog.",
  "HELP",
  "    Prints this help.",
];

/** Entries SLOWLOG GET returns without a count. */
const SLOWLOG_DEFAULT_COUNT = 10;

function slowlogCommand(ctx: ServerContext, a: ArgList, w: ReplyWriter): void {
  const sub = argString(a, 1).toLowerCase();
  const arity = (ok: boolean) => {
    if (!ok) throw new CommandError(Errors.wrongArity(`slowlog|${sub}`));
  };
  switch (sub) {
    case "get": {
      if (a.argc > 3) throw new CommandError(Errors.unknownSubcommandOrArity(argString(a, 1), "SLOWLOG"));
      let count = SLOWLOG_DEFAULT_COUNT;
      if (a.argc === 3) {
        const text = argString(a, 2);
        count = /^-?[0-9]+$/.test(text) ? Number(text) : Number.NaN;
        if (!(count >= -1) || !Number.isSafeInteger(count)) throw new CommandError(ServerErrors.slowlogCount);
      }
      ctx.slowlog.write(w, count);
      return;
    }
    case "len":
      arity(a.argc === 2);
      w.integer(ctx.slowlog.length);
      return;
    case "reset":
      arity(a.argc === 2);
      ctx.slowlog.reset();
      w.simple("OK");
      return;
    case "help":
      arity(a.argc === 2);
      w.lines(SLOWLOG_HELP);
      return;
    default:
      throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "slowlog"));
  }
}

export const diagnosticsCommands: ServerCommand[] = [
  {
    name: "slowlog",
    arity: -2,
    route: "main",
    flags: ["admin", "loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Reads or resets the slow log: the commands that took at least slowlog-log-slower-than microseconds.",
    complexity: "Depends on subcommand",
    syntax: "subcommand [arg ...]",
    subcommands: [
      {
        name: "get",
        arity: -2,
        flags: ["admin", "loading", "stale"],
        summary: "Returns the newest entries (default 10; -1: all).",
        syntax: "[count]",
      },
      { name: "len", arity: 2, flags: ["admin", "loading", "stale"], summary: "Returns the number of entries.", syntax: "" },
      { name: "reset", arity: 2, flags: ["admin", "loading", "stale"], summary: "Empties the slow log.", syntax: "" },
      { name: "help", arity: 2, flags: ["loading", "stale"], summary: "Lists the subcommands.", syntax: "" },
    ],
    run(ctx, _conn, a, w) {
      slowlogCommand(ctx, a, w);
    },
  },
  {
    name: "monitor",
    arity: 1,
    route: "main",
    flags: ["admin", "no_multi", "loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Streams every command the server runs, from every client and shard, to this connection.",
    complexity: "O(1)",
    syntax: "",
    run(ctx, conn, _a, w) {
      // As Redis: a second MONITOR on a monitoring connection is ignored, without a reply.
      if (conn.monitoring) return;
      conn.monitoring = true;
      ctx.monitors.conns.add(conn);
      w.simple("OK");
    },
  },
];
