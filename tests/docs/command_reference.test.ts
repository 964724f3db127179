/**
 * docs/commands.md is what scripts/command_reference.ts writes from the command table: a change
 * to a command's description that was not followed by `npm run docs` fails here.
 */
import { expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { commandReference } from "../../scripts/command_reference.ts";
import { COMMANDS } from "../../server/command_table.ts";

const file = path.join(import.meta.dir, "..", "..", "docs", "commands.md");

test("docs/commands.md is current (run `npm run docs` after changing a command)", () => {
  expect(fs.readFileSync(file, "utf8")).toBe(commandReference());
});

test("every client command has its section, and internal ones have none", () => {
  const text = fs.readFileSync(file, "utf8");
  for (const c of COMMANDS) expect(text).toContain(`### ${c.name.toUpperCase()}\n`);
  expect(text).not.toContain("### _");
});
