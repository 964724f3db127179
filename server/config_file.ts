/**
 * redis.conf-style config files: reading them into a Config (with redis.conf's quoting) and
 * CONFIG REWRITE. One setting, from a file line or a flag, is applied here for both.
 */
import fs from "node:fs";
import path from "node:path";
import { type Config, ConfigError, defaultConfig } from "./config.ts";
import { Invalid, type Parameter } from "./config_kinds.ts";
import { findParameter, PARAMETERS } from "./config_table.ts";
import type { LogLevel } from "./log.ts";

/** Something the configuration asked for that the log should explain at start (save, appendonly). */
export interface ConfigNote {
  level: LogLevel;
  text: string;
}

/** Applies one setting from a flag or a file line; notes explain settings mmapd has no use for. */
export function applySetting(c: Config, name: string, value: string, notes: ConfigNote[]): void {
  const p = findParameter(name);
  if (p === undefined) throw new ConfigError(`unknown option '${name}'`);
  if (p.explain !== undefined) {
    let verdict: { matches: boolean; text: string };
    try {
      verdict = p.explain(value);
    } catch (e) {
      if (e instanceof Invalid) throw new ConfigError(`${p.name}: ${e.text}`, e.reason);
      throw e;
    }
    const shown = `${p.name} ${quoteValue(value)}`;
    notes.push(
      verdict.matches
        ? { level: "notice", text: `${shown}: as always here; ${verdict.text}` }
        : { level: "warning", text: `${shown} ignored: ${verdict.text}` },
    );
    return;
  }
  p.set(c, value);
}

/**
 * Splits a config line into words as Redis does (sdssplitargs): spaces separate words; "double
 * quotes" take \n \r \t \b \a \\ \" and \xHH escapes; 'single quotes' take \'. Null if a quote
 * is not closed or is followed by something other than a space.
 */
function splitWords(line: string): string[] | null {
  const words: string[] = [];
  let i = 0;
  const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", b: "\b", a: "\x07" };
  for (;;) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) return words;
    let word = "";
    const quote = line[i] === '"' || line[i] === "'" ? line[i++] : "";
    for (;;) {
      if (i >= line.length) {
        if (quote !== "") return null;
        break;
      }
      const ch = line[i];
      if (quote === "" && /\s/.test(ch)) break;
      if (quote !== "" && ch === quote) {
        i++;
        if (i < line.length && !/\s/.test(line[i])) return null;
        break;
      }
      if (quote === '"' && ch === "\\" && i + 1 < line.length) {
        const next = line[i + 1];
        if (next === "x" && /^[0-9a-fA-F]{2}$/.test(line.slice(i + 2, i + 4))) {
          word += String.fromCharCode(Number.parseInt(line.slice(i + 2, i + 4), 16));
          i += 4;
        } else {
          word += ESCAPES[next] ?? next;
          i += 2;
        }
        continue;
      }
      if (quote === "'" && ch === "\\" && line[i + 1] === "'") {
        word += "'";
        i += 2;
        continue;
      }
      word += ch;
      i++;
    }
    words.push(word);
  }
}

/** A value as a config file line holds it: bare when it is one plain word, else double-quoted. */
function quoteValue(value: string): string {
  if (value !== "" && /^[\x21-\x7e]+$/.test(value) && !/["'\\]/.test(value)) return value;
  let out = '"';
  for (const ch of value) {
    const code = ch.charCodeAt(0);
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** One directive of a config file: its 1-based line number, name and value (the words after the name). */
interface Directive {
  line: number;
  name: string;
  value: string;
}

function readDirectives(file: string): { lines: string[]; directives: Directive[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read config file '${file}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  const lines = text.split(/\r?\n/);
  const directives: Directive[] = [];
  lines.forEach((raw, n) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const words = splitWords(line);
    if (words === null) throw new ConfigError(`${file}:${n + 1}: unbalanced quotes`);
    directives.push({ line: n + 1, name: words[0], value: words.slice(1).join(" ") });
  });
  return { lines, directives };
}

/** Reads a redis.conf-style file into `c`: `name value` per line, `#` comments, quoted values. */
export function loadConfigFile(c: Config, file: string, notes: ConfigNote[]): void {
  for (const d of readDirectives(file).directives) {
    try {
      applySetting(c, d.name, d.value, notes);
    } catch (e) {
      throw new ConfigError(`${file}:${d.line}: ${(e as Error).message}`);
    }
  }
}

/**
 * CONFIG REWRITE, as Redis does it: each parameter's first line in the file gets the current
 * value (a line whose value is already current is left as written), later lines of the same
 * parameter are dropped, and parameters set elsewhere (flags, CONFIG SET) to something other
 * than their default are appended. Comments, blank lines, and the save and appendonly lines
 * stay. The new file replaces the old one by a rename.
 */
export function rewriteConfigFile(c: Config): void {
  const file = c.configFile;
  const { lines, directives } = readDirectives(file);
  const defaults = defaultConfig();
  const done = new Set<Parameter>();
  const drop = new Set<number>();
  for (const d of directives) {
    const p = findParameter(d.name);
    if (p === undefined || p.explain !== undefined) continue;
    if (done.has(p) && p.multiline !== true) {
      drop.add(d.line);
      continue;
    }
    done.add(p);
    // A line is stale when it would set something other than the value now in force.
    const applied = structuredClone(c);
    let stale = true;
    try {
      p.set(applied, d.value);
      stale = p.get(applied) !== p.get(c);
    } catch {
      // a line that no longer parses is replaced
    }
    if (stale) lines[d.line - 1] = `${d.name} ${quoteValue(p.get(c))}`;
  }
  const out = lines.filter((_, i) => !drop.has(i + 1));
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  const added = PARAMETERS.filter((p) => p.explain === undefined && !done.has(p) && p.get(c) !== p.get(defaults));
  if (added.length > 0) {
    const marker = "# Generated by CONFIG REWRITE";
    if (!out.includes(marker)) out.push(marker);
    for (const p of added) out.push(`${p.name} ${quoteValue(p.get(c))}`);
  }
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.rewrite-${process.pid}`);
  const fd = fs.openSync(temp, "w", fs.statSync(file).mode & 0o777);
  try {
    fs.writeSync(fd, `${out.join("\n")}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
}
