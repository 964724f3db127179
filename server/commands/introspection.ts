/**
 * COMMAND and its subcommands: what clients and tools learn about mmapd's commands (redis-cli's
 * hints come from COMMAND DOCS, cluster clients read key positions from COMMAND INFO), all read
 * from the command table.
 */
import type { ArgList } from "../../core/args.ts";
import { Args, argIs, argString, argView } from "../../core/args.ts";
import type { ArgDoc, CommandSpec, SubcommandSpec } from "../../core/command_spec.ts";
import { keyPositions, parseSyntax } from "../../core/command_spec.ts";
import { CommandError, Errors, ServerErrors } from "../../core/errors.ts";
import { globMatch } from "../../core/glob.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

/** Redis's ACL categories for a command, from its flags and group. */
function aclCategories(spec: CommandSpec | SubcommandSpec, group: string): string[] {
  const out: string[] = [];
  if (group === "generic") out.push("@keyspace");
  if (spec.flags.includes("write")) out.push("@write");
  if (spec.flags.includes("readonly")) out.push("@read");
  if (spec.flags.includes("admin")) out.push("@admin", "@dangerous");
  out.push(spec.flags.includes("fast") ? "@fast" : "@slow");
  if (group === "connection") out.push("@connection");
  if (group === "transactions") out.push("@transaction");
  return out;
}

/** The access flags of a command's keys, as Redis's key specs spell them. */
function keyAccess(spec: CommandSpec): string[] {
  if (spec.name === "del" || spec.name === "unlink") return ["RM", "delete"];
  if (spec.flags.includes("write")) return ["RW", "update"];
  return spec.name === "exists" || spec.name === "type" || spec.name === "watch" ? ["RO"] : ["RO", "access"];
}

/** COMMAND INFO's ten fields for one command (or subcommand, named `parent|name`). */
function writeInfo(w: ReplyWriter, spec: CommandSpec): void {
  const keys = spec.keys;
  w.array(10);
  w.bulk(spec.name);
  w.integer(spec.arity);
  w.set(spec.flags.length);
  for (const f of spec.flags) w.simple(f);
  w.integer(keys?.first ?? 0);
  w.integer(keys?.last ?? 0);
  w.integer(keys?.step ?? 0);
  const acl = aclCategories(spec, spec.group);
  w.set(acl.length);
  for (const c of acl) w.simple(c);
  w.array(0); // tips
  if (keys === null) w.array(0);
  else {
    w.array(1);
    writeKeySpec(w, spec);
  }
  const subs = spec.subcommands ?? [];
  w.array(subs.length);
  for (const sub of subs) writeInfo(w, { ...spec, ...sub, name: `${spec.name}|${sub.name}`, keys: null, subcommands: undefined });
}

function writeKeySpec(w: ReplyWriter, spec: CommandSpec): void {
  const keys = spec.keys!;
  const access = keyAccess(spec);
  w.map(3);
  w.bulk("flags");
  w.set(access.length);
  for (const f of access) w.simple(f);
  w.bulk("begin_search");
  w.map(2);
  w.bulk("type");
  w.bulk("index");
  w.bulk("spec");
  w.map(1);
  w.bulk("index");
  w.integer(keys.first);
  w.bulk("find_keys");
  w.map(2);
  w.bulk("type");
  w.bulk("range");
  w.bulk("spec");
  w.map(3);
  w.bulk("lastkey");
  w.integer(keys.last < 0 ? keys.last : keys.last - keys.first);
  w.bulk("keystep");
  w.integer(keys.step);
  w.bulk("limit");
  w.integer(0);
}

/** COMMAND DOCS's map for one command or subcommand. */
function writeDocs(w: ReplyWriter, spec: CommandSpec | (SubcommandSpec & { group: string; since: string; complexity?: string })): void {
  const args = parseSyntax(spec.syntax);
  const subs = "subcommands" in spec ? (spec.subcommands ?? []) : [];
  const fields = 3 + (spec.complexity !== undefined ? 1 : 0) + (args.length > 0 ? 1 : 0) + (subs.length > 0 ? 1 : 0);
  w.map(fields);
  w.bulk("summary");
  w.bulk(spec.summary);
  w.bulk("since");
  w.bulk(spec.since);
  w.bulk("group");
  w.bulk(spec.group);
  if (spec.complexity !== undefined) {
    w.bulk("complexity");
    w.bulk(spec.complexity);
  }
  if (args.length > 0) {
    w.bulk("arguments");
    writeArguments(w, args);
  }
  if (subs.length > 0) {
    w.bulk("subcommands");
    w.map(subs.length);
    for (const sub of subs) {
      w.bulk(`${spec.name}|${sub.name}`);
      writeDocs(w, { ...sub, group: spec.group, since: spec.since, complexity: undefined });
    }
  }
}

function writeArguments(w: ReplyWriter, args: ArgDoc[]): void {
  w.array(args.length);
  for (const arg of args) {
    const flags = [...(arg.optional ? ["optional"] : []), ...(arg.multiple ? ["multiple"] : [])];
    w.map(
      2 +
        (arg.type === "key" ? 1 : 0) +
        (arg.token !== undefined ? 1 : 0) +
        (flags.length > 0 ? 1 : 0) +
        (arg.arguments !== undefined ? 1 : 0),
    );
    w.bulk("name");
    w.bulk(arg.name);
    w.bulk("type");
    w.bulk(arg.type);
    if (arg.type === "key") {
      w.bulk("key_spec_index");
      w.integer(0);
    }
    if (arg.token !== undefined) {
      w.bulk("token");
      w.bulk(arg.token);
    }
    if (flags.length > 0) {
      w.bulk("flags");
      w.array(flags.length);
      for (const f of flags) w.simple(f);
    }
    if (arg.arguments !== undefined) {
      w.bulk("arguments");
      writeArguments(w, arg.arguments);
    }
  }
}

/** The commands named by arguments from..argc, or every command when none is named. */
function named(ctx: ServerContext, a: ArgList, from: number): (CommandSpec | undefined)[] {
  if (a.argc <= from) return [...ctx.commands.all];
  return Array.from({ length: a.argc - from }, (_, k) => ctx.commands.find(argString(a, from + k).toLowerCase()));
}

/** COMMAND GETKEYS: the keys of the command in arguments 2.., checked as dispatch would check it. */
function getKeys(ctx: ServerContext, a: ArgList): number[] {
  const spec = ctx.commands.find(argString(a, 2).toLowerCase());
  if (spec === undefined) throw new CommandError(ServerErrors.invalidCommand);
  const argc = a.argc - 2;
  if (spec.arity > 0 ? argc !== spec.arity : argc < -spec.arity) throw new CommandError(ServerErrors.invalidArgumentCount);
  const inner = Args.of(...Array.from({ length: argc }, (_, k) => argView(a, k + 2)));
  const positions = keyPositions(spec, inner);
  if (positions.length === 0) throw new CommandError(ServerErrors.noKeyArguments);
  return positions.map((p) => p + 2);
}

const HELP = [
  "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "(no subcommand)",
  "    Return details about all mmapd commands.",
  "COUNT",
  "    Return the total number of commands in this mmapd server.",
  "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
  "    Return a list of all commands in this mmapd server.",
  "INFO [<command-name> ...]",
  "    Return details about multiple mmapd commands.",
  "    If no command names are given, details for all commands are returned.",
  "DOCS [<command-name> ...]",
  "    Return documentation details about multiple mmapd commands.",
  "    If no command names are given, documentation details for all",
  "    commands are returned.",
  "GETKEYS <full-command>",
  "    Return the keys from a full mmapd command.",
  "GETKEYSANDFLAGS <full-command>",
  "    Return the keys and the access flags from a full mmapd command.",
  "HELP",
  "    Prints this help.",
];

const SUBCOMMANDS: SubcommandSpec[] = [
  { name: "count", arity: 2, flags: ["loading", "stale"], summary: "Returns the number of commands.", syntax: "" },
  {
    name: "list",
    arity: -2,
    flags: ["loading", "stale"],
    summary: "Returns the command names, optionally filtered.",
    syntax: "[FILTERBY MODULE|ACLCAT|PATTERN filter]",
  },
  {
    name: "info",
    arity: -2,
    flags: ["loading", "stale"],
    summary: "Returns details about commands.",
    syntax: "[command-name [command-name ...]]",
  },
  {
    name: "docs",
    arity: -2,
    flags: ["loading", "stale"],
    summary: "Returns documentation about commands.",
    syntax: "[command-name [command-name ...]]",
  },
  {
    name: "getkeys",
    arity: -4,
    flags: ["loading", "stale"],
    summary: "Returns the keys of a full command.",
    syntax: "command [arg [arg ...]]",
  },
  {
    name: "getkeysandflags",
    arity: -4,
    flags: ["loading", "stale"],
    summary: "Returns the keys of a full command and how it accesses them.",
    syntax: "command [arg [arg ...]]",
  },
  { name: "help", arity: 2, flags: ["loading", "stale"], summary: "Lists the subcommands.", syntax: "" },
];

export const introspectionCommands: ServerCommand[] = [
  {
    name: "command",
    arity: -1,
    route: "main",
    flags: ["loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Returns details about mmapd's commands.",
    complexity: "O(N) where N is the number of commands",
    syntax: "[subcommand [arg ...]]",
    subcommands: SUBCOMMANDS,
    run(ctx, _conn, a, w) {
      if (a.argc === 1) {
        w.array(ctx.commands.all.length);
        for (const c of ctx.commands.all) writeInfo(w, c);
        return;
      }
      const sub = argString(a, 1).toLowerCase();
      const spec = SUBCOMMANDS.find((s) => s.name === sub);
      if (spec === undefined) throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "command"));
      if (spec.arity > 0 ? a.argc !== spec.arity : a.argc < -spec.arity) throw new CommandError(Errors.wrongArity(`command|${sub}`));
      switch (sub) {
        case "count":
          w.integer(ctx.commands.all.length);
          return;
        case "list": {
          let names = ctx.commands.all.map((c) => c.name);
          if (a.argc > 2) {
            if (a.argc !== 5 || !argIs(a, 2, "filterby")) throw new CommandError(Errors.syntax);
            const filter = argString(a, 4);
            if (argIs(a, 3, "pattern")) names = names.filter((n) => globMatch(filter.toLowerCase(), n));
            else if (argIs(a, 3, "aclcat"))
              names = ctx.commands.all.filter((c) => aclCategories(c, c.group).includes("@" + filter.toLowerCase())).map((c) => c.name);
            else if (argIs(a, 3, "module")) names = [];
            else throw new CommandError(Errors.syntax);
          }
          w.array(names.length);
          for (const n of names) w.bulk(n);
          return;
        }
        case "info": {
          const list = named(ctx, a, 2);
          w.array(list.length);
          for (const c of list) {
            if (c === undefined) w.nilArray();
            else writeInfo(w, c);
          }
          return;
        }
        case "docs": {
          const list = named(ctx, a, 2).filter((c) => c !== undefined);
          w.map(list.length);
          for (const c of list) {
            w.bulk(c.name);
            writeDocs(w, c);
          }
          return;
        }
        case "getkeys": {
          const keys = getKeys(ctx, a);
          w.array(keys.length);
          for (const i of keys) w.bulkBytes(a.buf, a.argStart[i], a.argEnd[i]);
          return;
        }
        case "getkeysandflags": {
          const keys = getKeys(ctx, a);
          const access = keyAccess(ctx.commands.find(argString(a, 2).toLowerCase())!);
          w.array(keys.length);
          for (const i of keys) {
            w.array(2);
            w.bulkBytes(a.buf, a.argStart[i], a.argEnd[i]);
            w.set(access.length);
            for (const f of access) w.simple(f);
          }
          return;
        }
        default:
          w.lines(HELP);
      }
    },
  },
];
