/**
 * CONFIG GET / SET / RESETSTAT / REWRITE / HELP: the server's parameters at run time, from the
 * parameter table in server/config_table.ts.
 */
import { argString } from "../../core/args.ts";
import type { ArgList } from "../../core/args.ts";
import { CommandError, Errors, ServerErrors } from "../../core/errors.ts";
import { globMatch } from "../../core/glob.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import { ConfigError } from "../config.ts";
import { rewriteConfigFile } from "../config_file.ts";
import { parameterNames, setParameters, showParameter } from "../config_table.ts";
import type { ServerContext } from "../context.ts";
import { log } from "../log.ts";
import type { ServerCommand } from "./server_command.ts";

/** CONFIG HELP, in Redis's words. */
const HELP = [
  "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "GET <pattern>",
  "    Return parameters matching the glob-like <pattern> and their values.",
  "SET <directive> <value>",
  "    Set the configuration <directive> to <value>.",
  "RESETSTAT",
  "    Reset statistics reported by the INFO command.",
  "REWRITE",
  "    Rewrite the configuration file.",
  "HELP",
  "    Prints this help.",
];

function configCommand(ctx: ServerContext, a: ArgList, w: ReplyWriter): void {
  const sub = argString(a, 1).toLowerCase();
  const arity = (ok: boolean) => {
    if (!ok) throw new CommandError(Errors.wrongArity(`config|${sub}`));
  };
  switch (sub) {
    case "get": {
      arity(a.argc >= 3);
      const found = new Map<string, string>();
      for (let i = 2; i < a.argc; i++) {
        const pattern = argString(a, i).toLowerCase();
        for (const name of parameterNames()) if (globMatch(pattern, name)) found.set(name, showParameter(name, ctx.config, ctx));
      }
      w.map(found.size);
      for (const [k, v] of found) {
        w.bulk(k);
        w.bulk(v);
      }
      return;
    }
    case "set": {
      arity(a.argc >= 4 && a.argc % 2 === 0);
      const pairs: [string, string][] = [];
      for (let i = 2; i < a.argc; i += 2) pairs.push([argString(a, i), argString(a, i + 1)]);
      setParameters(ctx.config, ctx, pairs);
      w.simple("OK");
      return;
    }
    case "resetstat":
      arity(a.argc === 2);
      ctx.resetStats();
      w.simple("OK");
      return;
    case "rewrite":
      arity(a.argc === 2);
      if (ctx.config.configFile === "") throw new CommandError(ServerErrors.noConfigFile);
      try {
        rewriteConfigFile(ctx.config);
      } catch (e) {
        const reason = e instanceof ConfigError ? e.message : ((e as NodeJS.ErrnoException).code ?? String(e));
        log("warning", `CONFIG REWRITE failed: ${reason}`);
        throw new CommandError(ServerErrors.rewriteFailed(reason));
      }
      log("notice", "CONFIG REWRITE executed with success.");
      w.simple("OK");
      return;
    case "help":
      arity(a.argc === 2);
      w.lines(HELP);
      return;
    default:
      throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "config"));
  }
}

export const configCommands: ServerCommand[] = [
  {
    name: "config",
    arity: -2,
    route: "main",
    flags: ["admin", "loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Reads and changes the server's parameters.",
    complexity: "Depends on subcommand",
    syntax: "subcommand [arg ...]",
    subcommands: [
      {
        name: "get",
        arity: -3,
        flags: ["admin", "loading", "stale"],
        summary: "Returns the parameters matching the patterns, with their values.",
        syntax: "parameter [parameter ...]",
      },
      {
        name: "set",
        arity: -4,
        flags: ["admin", "loading", "stale"],
        summary: "Sets parameters; every pair is checked before any is applied.",
        syntax: "parameter value [parameter value ...]",
      },
      {
        name: "resetstat",
        arity: 2,
        flags: ["admin", "loading", "stale"],
        summary: "Resets the counters INFO reports and the slow log's.",
        syntax: "",
      },
      {
        name: "rewrite",
        arity: 2,
        flags: ["admin", "loading", "stale"],
        summary: "Writes the running configuration back into the file the server was started with.",
        syntax: "",
      },
      { name: "help", arity: 2, flags: ["loading", "stale"], summary: "Lists the subcommands.", syntax: "" },
    ],
    run(ctx, _conn, a, w) {
      configCommand(ctx, a, w);
    },
  },
];
