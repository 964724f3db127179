/**
 * Server administration: TIME, LASTSAVE, SAVE, BGSAVE, SHUTDOWN, DEBUG.
 */
import { argIs, argString } from "../../core/args.ts";
import { CommandError, Errors, ServerErrors } from "../../core/errors.ts";
import type { ServerCommand } from "./server_command.ts";
import { DEFERRED } from "./server_command.ts";

export const adminCommands: ServerCommand[] = [
  {
    name: "time",
    arity: 1,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Returns the server's time as seconds and microseconds.",
    complexity: "O(1)",
    syntax: "",
    run(_server, _conn, _a, w) {
      const micros = BigInt(Math.floor(performance.timeOrigin * 1000 + performance.now() * 1000));
      w.array(2);
      w.bulk(String(micros / 1_000_000n));
      w.bulk(String(micros % 1_000_000n));
    },
  },
  {
    name: "lastsave",
    arity: 1,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Returns the Unix time of the last successful flush of every file.",
    complexity: "O(1)",
    syntax: "",
    run(ctx, _conn, _a, w) {
      w.integer(ctx.stats.lastSave);
    },
  },
  {
    name: "save",
    arity: 1,
    route: "main",
    flags: ["admin", "no_multi"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Flushes every written file and the bindings to disk, then replies.",
    complexity: "O(N) where N is the number of written files",
    syntax: "",
    run(ctx, conn, _a, _w, seq) {
      ctx.flushEverything((error) =>
        ctx.replyTo(conn, seq, (w) => (error === null ? w.simple("OK") : w.error(ServerErrors.flushFailed(error)))),
      );
      return DEFERRED;
    },
  },
  {
    name: "bgsave",
    arity: -1,
    route: "main",
    flags: ["admin"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Starts flushing every written file and the bindings to disk.",
    complexity: "O(1)",
    syntax: "[SCHEDULE]",
    run(ctx, _conn, a, w) {
      if (a.argc > 2 || (a.argc === 2 && !argIs(a, 1, "schedule"))) throw new CommandError(Errors.syntax);
      ctx.flushEverything(() => {});
      w.simple("Background saving started");
    },
  },
  {
    name: "shutdown",
    arity: -1,
    route: "main",
    flags: ["admin", "no_multi", "loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Flushes every file and the bindings, then stops the server.",
    complexity: "O(N) where N is the number of written files",
    syntax: "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]",
    run(ctx, _conn, a, _w) {
      for (let i = 1; i < a.argc; i++) {
        if (!["nosave", "save", "now", "force", "abort"].some((word) => argIs(a, i, word))) throw new CommandError(Errors.syntax);
        if (argIs(a, i, "abort")) throw new CommandError(ServerErrors.noShutdown);
      }
      ctx.shutdown(0, "SHUTDOWN");
      // Like Redis, a successful SHUTDOWN sends no reply: the connection closes.
      return DEFERRED;
    },
  },
  {
    name: "debug",
    arity: -2,
    route: "main",
    flags: ["admin", "loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Debugging commands (CRASH-SHARD n); needs --enable-debug-command.",
    complexity: "O(1)",
    syntax: "subcommand [arg ...]",
    run(ctx, _conn, a, w) {
      if (!ctx.config.enableDebugCommand) {
        throw new CommandError(ServerErrors.debugDisabled);
      }
      if (argIs(a, 1, "crash-shard") && a.argc === 3) {
        const shard = Number(argString(a, 2));
        if (!(shard >= 0 && shard < ctx.config.workers)) throw new CommandError(ServerErrors.noSuchShard);
        ctx.crashShard(shard);
        w.simple("OK");
        return;
      }
      throw new CommandError(ServerErrors.debugUsage);
    },
  },
];
