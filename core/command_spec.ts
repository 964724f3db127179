/**
 * What every command states about itself, once, in its family's file: name, arity, flags, where
 * its keys are, and its documentation. Dispatch checks (arity, AUTH, MULTI), routing, COMMAND
 * INFO/DOCS/GETKEYS, the fuzzer and docs/commands.md all read these entries; nothing else lists
 * command names.
 *
 * Flags use Redis 7's names, so COMMAND INFO shows what clients already understand.
 */
import type { ArgList } from "./args.ts";
import { argShard } from "./slots.ts";

export type CommandFlag =
  | "write" // changes bindings or values: WATCH sees it, writes sync the registry
  | "readonly"
  | "fast" // O(1) or O(log n)
  | "admin"
  | "no_auth" // allowed before AUTH
  | "no_multi" // refused inside MULTI (the transaction is then aborted)
  | "loading"
  | "stale"
  | "movablekeys"; // keys are not at fixed positions: found by `keys.find`

/**
 * Where a command's keys are: arguments first..last (last -1: to the end) every `step`, or a
 * function for commands whose key positions depend on other arguments.
 */
export interface KeySpec {
  first: number;
  last: number;
  step: number;
  /** Key positions for commands whose keys move (COMMAND GETKEYS, routing of transactions). */
  find?: (a: ArgList) => number[];
}

/** A subcommand of a container command (CONFIG GET, CLIENT LIST ...), for COMMAND INFO/DOCS. */
export interface SubcommandSpec {
  name: string;
  arity: number;
  flags: readonly CommandFlag[];
  summary: string;
  /** The arguments after the subcommand, in the syntax described at `parseSyntax`. */
  syntax: string;
}

export interface CommandSpec {
  /** Lowercase name. */
  name: string;
  /** Redis arity: n means exactly n arguments counting the name, -n at least n. */
  arity: number;
  flags: readonly CommandFlag[];
  /** Where the keys are; null for a command without keys. */
  keys: KeySpec | null;
  /** Redis's command group (`generic`, `connection`, `server`) or mmapd's (`mmap`). */
  group: string;
  /** The mmapd (or Redis) version that first had the command. */
  since: string;
  summary: string;
  complexity?: string;
  /** The arguments after the name, in the syntax described at `parseSyntax`. */
  syntax: string;
  subcommands?: readonly SubcommandSpec[];
  /** Inside MULTI, commands are queued; "runs-now" ones run at once (EXEC, DISCARD, WATCH, QUIT, RESET ...), as in Redis. */
  inMulti?: "runs-now";
}

/** Every command clients may send, and a lookup by lowercase name (for COMMAND and GETKEYS). */
export interface CommandCatalog {
  readonly all: readonly CommandSpec[];
  find(name: string): CommandSpec | undefined;
}

/** The one key at argument 1: the usual case. */
export const KEY_AT_1: KeySpec = { first: 1, last: 1, step: 1 };
/** Every argument from 1 on is a key (DEL, EXISTS, WATCH). */
export const ALL_KEYS: KeySpec = { first: 1, last: -1, step: 1 };

/** The positions of a command's keys in `a` (empty for a command without keys). */
export function keyPositions(spec: CommandSpec, a: ArgList): number[] {
  const keys = spec.keys;
  if (keys === null) return [];
  if (keys.find !== undefined) return keys.find(a);
  const last = keys.last < 0 ? a.argc + keys.last : keys.last;
  const out: number[] = [];
  for (let i = keys.first; i <= last && i < a.argc; i += keys.step) out.push(i);
  return out;
}

/** The shard of `shards` that runs a one-key command: its key's (argument 1 unless its key spec finds another), else shard 0. */
export function commandShard(spec: CommandSpec, a: ArgList, shards: number): number {
  const find = spec.keys?.find;
  if (find === undefined) return argShard(a, 1, shards);
  const at = find(a)[0];
  return at === undefined ? 0 : argShard(a, at, shards);
}

/** One argument in COMMAND DOCS's shape. */
export interface ArgDoc {
  name: string;
  type: "key" | "string" | "integer" | "double" | "pattern" | "pure-token" | "oneof" | "block";
  token?: string;
  optional?: boolean;
  multiple?: boolean;
  arguments?: ArgDoc[];
}

/** The type of an argument by its name in a syntax line; names not listed are strings. */
const ARGUMENT_TYPES: Record<string, ArgDoc["type"]> = {
  key: "key",
  index: "integer",
  start: "integer",
  stop: "integer",
  size: "integer",
  cursor: "integer",
  count: "integer",
  shard: "integer",
  numkeys: "integer",
  protover: "integer",
  pattern: "pattern",
};

/**
 * Parses a syntax line as Redis writes them (`key index [index ...]`, `[MATCH pattern]`,
 * `[ASYNC|SYNC]`, `key index value [index value ...]`) into COMMAND DOCS arguments:
 * UPPERCASE words are tokens, `[...]` is optional, `x [x ...]` is x given one or more times,
 * `a|b` is one of them, and a token followed by a name is that argument introduced by the token.
 */
export function parseSyntax(syntax: string): ArgDoc[] {
  const tokens = syntax.match(/\[|\]|\.\.\.|[^\s[\]]+/g) ?? [];
  let at = 0;
  const sequence = (): ArgDoc[] => {
    const out: ArgDoc[] = [];
    while (at < tokens.length && tokens[at] !== "]" && tokens[at] !== "...") {
      const t = tokens[at++];
      if (t === "[") {
        const inner = sequence();
        const repeated = tokens[at] === "...";
        if (repeated) at++;
        at++; // "]"
        const previous = out.slice(-inner.length);
        if (repeated && sameShape(previous, inner)) {
          // `x [x ...]`: one argument given one or more times.
          out.splice(out.length - inner.length, inner.length, { ...group(previous, "data"), multiple: true });
        } else out.push({ ...group(inner, inner[0]?.name ?? "arg"), optional: true, ...(repeated ? { multiple: true } : {}) });
      } else out.push(word(t));
    }
    return out;
  };
  const doc = sequence();
  if (at !== tokens.length) throw new Error(`unbalanced syntax: ${syntax}`);
  return doc;
}

function word(t: string): ArgDoc {
  if (t.includes("|")) {
    const choices = t.split("|").map(word);
    return { name: choices.map((c) => c.name).join("_"), type: "oneof", arguments: choices };
  }
  if (/^[A-Z][A-Z0-9-]*$/.test(t)) return { name: t.toLowerCase(), type: "pure-token", token: t };
  return { name: t, type: ARGUMENT_TYPES[t] ?? "string" };
}

/** One argument for a run of them: itself when alone, a token and its value as one, else a block. */
function group(args: ArgDoc[], name: string): ArgDoc {
  if (args.length === 1) return { ...args[0] };
  if (args.length === 2 && args[0].type === "pure-token" && args[1].type !== "pure-token") return { ...args[1], token: args[0].token };
  return { name, type: "block", arguments: args };
}

function sameShape(a: ArgDoc[], b: ArgDoc[]): boolean {
  return a.length === b.length && a.every((x, i) => x.name === b[i].name && x.type === b[i].type);
}
