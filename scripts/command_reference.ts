/**
 * Writes docs/commands.md, the command reference, from the command table and the error tables:
 * `bun scripts/command_reference.ts` (npm run docs). tests/docs/command_reference.test.ts fails
 * when the file in the repository is not what this script writes.
 */
import fs from "node:fs";
import path from "node:path";
import type { CommandSpec } from "../core/command_spec.ts";
import * as errorTables from "../core/errors.ts";
import { VALUE_TYPES } from "../core/value_types.ts";
import { COMMANDS } from "../server/command_table.ts";

const GROUPS: [string, string][] = [
  ["mmap", "Binding, reading and writing files"],
  ["generic", "Keys"],
  ["transactions", "Transactions"],
  ["connection", "Connection"],
  ["server", "Server"],
  ["cluster", "Cluster"],
];

/** The reference as Markdown. */
export function commandReference(): string {
  const out: string[] = [
    "# mmapd command reference",
    "",
    "Generated from the command table by `npm run docs` (scripts/command_reference.ts); do not edit by hand.",
    "Every command also answers `COMMAND DOCS <name>` and `COMMAND INFO <name>` with what is written here.",
    "",
    "Syntax: UPPERCASE words are typed as they are, `[...]` is optional, `x [x ...]` is one or more x, `a|b` is one of them.",
    "",
  ];
  const grouped = new Map<string, CommandSpec[]>();
  for (const c of COMMANDS) {
    let list = grouped.get(c.group);
    if (list === undefined) grouped.set(c.group, (list = []));
    list.push(c);
  }
  const known = new Set(GROUPS.map(([g]) => g));
  const order = [...GROUPS, ...[...grouped.keys()].filter((g) => !known.has(g)).map((g): [string, string] => [g, g])];
  for (const [group, title] of order) {
    const list = grouped.get(group);
    if (list === undefined) continue;
    out.push(`## ${title}`, "");
    for (const c of list) out.push(...commandSection(c));
  }
  out.push("## Value types", "", "| type | bytes per value |", "|---|---|");
  const seen = new Set<string>();
  for (const [name, t] of VALUE_TYPES) {
    if (seen.has(t.name)) out.push(`| ${name} (alias of ${t.name}) | ${t.width === 0 ? "given to MMAP (1..255)" : t.width} |`);
    else out.push(`| ${name} | ${t.width === 0 ? "given to MMAP (1..255)" : t.width} |`);
    seen.add(t.name);
  }
  out.push("", "## Error replies", "", "The texts the server sends, as the code spells them (`<...>` is filled in).", "");
  for (const [table, texts] of Object.entries(errorTables)) {
    if (typeof texts !== "object" || texts === null) continue;
    out.push(`### ${table}`, "");
    for (const value of Object.values(texts as Record<string, unknown>)) {
      const text = typeof value === "function" ? fillIn(value as (...args: string[]) => string) : String(value);
      out.push(`- \`-${text}\``);
    }
    out.push("");
  }
  return out.join("\n");
}

function commandSection(c: CommandSpec): string[] {
  const lines = [
    `### ${c.name.toUpperCase()}`,
    "",
    "```",
    `${c.name.toUpperCase()}${c.syntax === "" ? "" : " " + c.syntax}`,
    "```",
    "",
    c.summary,
    "",
  ];
  const facts = [`since ${c.since}`];
  if (c.complexity !== undefined) facts.push(`complexity ${c.complexity}`);
  facts.push(`arity ${c.arity}`);
  if (c.flags.length > 0) facts.push(`flags ${c.flags.join(", ")}`);
  if (c.keys !== null) facts.push(`keys at ${c.keys.first}..${c.keys.last} step ${c.keys.step}`);
  if (c.inMulti === "runs-now") facts.push("inside MULTI it runs at once instead of being queued");
  lines.push(facts.map((f) => `*${f}*`).join(" · "), "");
  for (const sub of c.subcommands ?? [])
    lines.push(`- \`${c.name.toUpperCase()} ${sub.name.toUpperCase()}${sub.syntax === "" ? "" : " " + sub.syntax}\`: ${sub.summary}`);
  if ((c.subcommands ?? []).length > 0) lines.push("");
  return lines;
}

/** An error text with its parameters shown as `<name>`. */
function fillIn(f: (...args: string[]) => string): string {
  const params = /^\(?([^)=]*)\)?\s*=>/.exec(f.toString())?.[1] ?? "";
  const names = params
    .split(",")
    .map((p) => p.split(":")[0].trim())
    .filter((p) => p !== "");
  return f(...names.map((n) => `<${n}>`));
}

if (import.meta.main) {
  const file = path.join(import.meta.dir, "..", "docs", "commands.md");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, commandReference());
  console.log(`wrote ${file}`);
}
