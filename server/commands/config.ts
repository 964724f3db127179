/**
 * CONFIG GET / SET / RESETSTAT / REWRITE: the server's parameters at run time.
 */
import { argString } from "../../core/args.ts";
import type { ArgList } from "../../core/args.ts";
import { CommandError, Errors } from "../../core/errors.ts";
import { globMatch } from "../../core/glob.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import { applySetting, ConfigError } from "../config.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

/** CONFIG parameters: how to read each, and how to set it (absent: immutable while running). */
interface Parameter {
  get(ctx: ServerContext): string;
  set?(ctx: ServerContext, value: string): void;
}

const PARAMETERS: Record<string, Parameter> = {
  port: { get: (s) => String(s.port) },
  bind: { get: (s) => s.config.bind },
  dir: { get: (s) => s.dataDir },
  workers: { get: (s) => String(s.config.workers) },
  databases: { get: () => "1" },
  requirepass: { get: (s) => s.config.requirepass, set: (s, v) => applySetting(s.config, "requirepass", v) },
  maxclients: { get: (s) => String(s.config.maxclients), set: (s, v) => applySetting(s.config, "maxclients", v) },
  timeout: {
    get: (s) => String(s.config.timeout),
    set: (s, v) => {
      applySetting(s.config, "timeout", v);
      s.setTimeoutSeconds(s.config.timeout);
    },
  },
  fsync: {
    get: (s) => s.config.fsync,
    set: (s, v) => {
      applySetting(s.config, "fsync", v);
      s.setFsync(s.config.fsync);
    },
  },
  // Redis's names for the same policy, so tools that set appendfsync work.
  appendfsync: { get: (s) => s.config.fsync, set: (s, v) => PARAMETERS.fsync.set!(s, v) },
  "allow-any-path": { get: (s) => (s.config.allowAnyPath ? "yes" : "no") },
  "protected-mode": { get: (s) => (s.config.protectedMode ? "yes" : "no"), set: (s, v) => applySetting(s.config, "protected-mode", v) },
  loglevel: { get: (s) => s.config.loglevel, set: (s, v) => applySetting(s.config, "loglevel", v) },
  "client-query-buffer-limit": { get: (s) => String(s.config.clientQueryBufferLimit), set: (s, v) => applySetting(s.config, "client-query-buffer-limit", v) },
  "client-output-buffer-limit": { get: (s) => String(s.config.clientOutputBufferLimit), set: (s, v) => applySetting(s.config, "client-output-buffer-limit", v) },
  "proto-max-bulk-len": { get: (s) => String(s.config.protoMaxBulkLen) },
  // Files are the data: there is no snapshot or AOF. Accepted so that tools which set them work.
  save: { get: () => "", set: () => {} },
  appendonly: { get: () => "no", set: () => {} },
};

function configCommand(ctx: ServerContext, a: ArgList, w: ReplyWriter): void {
  const sub = argString(a, 1).toLowerCase();
  if (sub === "get") {
    if (a.argc < 3) throw new CommandError(Errors.wrongArity("config|get"));
    const found = new Map<string, string>();
    for (let i = 2; i < a.argc; i++) {
      const pattern = argString(a, i).toLowerCase();
      for (const name of Object.keys(PARAMETERS)) if (globMatch(pattern, name)) found.set(name, PARAMETERS[name].get(ctx));
    }
    w.map(found.size);
    for (const [k, v] of found) {
      w.bulk(k);
      w.bulk(v);
    }
    return;
  }
  if (sub === "set") {
    if (a.argc < 4 || a.argc % 2 !== 0) throw new CommandError(Errors.wrongArity("config|set"));
    // Check every pair before applying any, as Redis does.
    const pairs: [Parameter, string, string][] = [];
    for (let i = 2; i < a.argc; i += 2) {
      const name = argString(a, i).toLowerCase();
      const p = PARAMETERS[name];
      if (p === undefined) throw new CommandError(`ERR Unknown option or number of arguments for CONFIG SET - '${argString(a, i)}'`);
      if (p.set === undefined) throw new CommandError(`ERR CONFIG SET failed (possibly related to argument '${name}') - can't set immutable config`);
      pairs.push([p, name, argString(a, i + 1)]);
    }
    const trial = structuredClone(ctx.config);
    for (const [, name, value] of pairs) {
      try {
        if (name !== "save" && name !== "appendonly") applySetting(trial, name === "appendfsync" ? "fsync" : name, value);
      } catch (e) {
        if (e instanceof ConfigError) throw new CommandError(`ERR CONFIG SET failed (possibly related to argument '${name}') - ${e.message}`);
        throw e;
      }
    }
    for (const [p, , value] of pairs) p.set!(ctx, value);
    w.simple("OK");
    return;
  }
  if (sub === "resetstat") {
    ctx.stats.commandsProcessed = 0;
    ctx.stats.connectionsReceived = 0;
    w.simple("OK");
    return;
  }
  if (sub === "rewrite") throw new CommandError("ERR The server is running without a config file");
  throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "config"));
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
      { name: "get", arity: -3, flags: ["admin", "loading", "stale"], summary: "Returns the parameters matching the patterns, with their values.", syntax: "parameter [parameter ...]" },
      { name: "set", arity: -4, flags: ["admin", "loading", "stale"], summary: "Sets parameters; every pair is checked before any is applied.", syntax: "parameter value [parameter value ...]" },
      { name: "resetstat", arity: 2, flags: ["admin", "loading", "stale"], summary: "Resets the counters INFO reports.", syntax: "" },
      { name: "rewrite", arity: 2, flags: ["admin", "loading", "stale"], summary: "Rewrites the configuration file.", syntax: "" },
    ],
    run(ctx, _conn, a, w) {
      configCommand(ctx, a, w);
    },
  },
];
