/** The command line: flags (with config files among them) into a Config, and the --help text. */
import path from "node:path";
import { type Config, ConfigError, defaultConfig } from "./config.ts";
import { applySetting, type ConfigNote, loadConfigFile } from "./config_file.ts";
import { findParameter, PARAMETERS } from "./config_table.ts";

/** The --help text, from the table. */
export function helpText(): string {
  const flags = PARAMETERS.filter((p) => p.help !== undefined).map((p) => `--${p.name}${p.help![0] === "" ? "" : ` ${p.help![0]}`}`);
  const width = Math.max(...flags.map((f) => f.length));
  const line = (flag: string, what: string) => `  ${flag.padEnd(width)}  ${what}\n`;
  let out = "Usage: mmapd [FILE] [options]\n\nServes memory-mapped files of fixed-width values over the Redis protocol.\n\n";
  out += "FILE (or --config FILE) is a redis.conf-style file: one `name value` line per option, with the\n";
  out += "options' names below; flags after it override it.\n\nOptions:\n";
  PARAMETERS.filter((p) => p.help !== undefined).forEach((p, i) => {
    out += line(flags[i], p.help![1]);
  });
  out += line("--config FILE", "read options from FILE (flags given later override it)");
  out += line("--help", "print this help");
  out += line("--version", "print the version");
  return out;
}

export type ParsedArgs = { kind: "run"; config: Config; notes: ConfigNote[] } | { kind: "help" } | { kind: "version" };

/**
 * Parses the command line (without the runtime and script), as redis-server does: an optional
 * config file first, then `--name value` options; a value may be several words (`--save ""`,
 * `--client-output-buffer-limit normal 0 0 0`), up to the next `--`. `--config FILE` reads a
 * file at that point.
 */
export function parseArgs(argv: string[]): ParsedArgs {
  const c = defaultConfig();
  const notes: ConfigNote[] = [];
  let i = 0;
  const readFile = (file: string) => {
    loadConfigFile(c, file, notes);
    c.configFile = path.resolve(file);
  };
  if (argv.length > 0 && !argv[0].startsWith("-")) readFile(argv[i++]);
  while (i < argv.length) {
    const arg = argv[i++];
    if (arg === "--help" || arg === "-h") return { kind: "help" };
    if (arg === "--version" || arg === "-v") return { kind: "version" };
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument '${arg}' (options start with --; see --help)`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    } else {
      const words: string[] = [];
      while (i < argv.length && !argv[i].startsWith("--")) words.push(argv[i++]);
      if (words.length > 0) value = words.join(" ");
    }
    if (name === "config") {
      if (value === undefined) throw new ConfigError("--config needs a file");
      readFile(value);
      continue;
    }
    const p = findParameter(name);
    if (p === undefined) throw new ConfigError(`unknown option '--${name}' (see --help)`);
    if (value === undefined && p.switch === true) value = "yes";
    if (value === undefined) throw new ConfigError(`--${name} needs a value`);
    applySetting(c, name, value, notes);
  }
  return { kind: "run", config: c, notes };
}
