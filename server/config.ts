/**
 * Server configuration: defaults, command-line flags, a redis.conf-style file (`name value` lines
 * with the flags' names), and the parameters CONFIG GET / SET expose.
 */
import fs from "node:fs";
import os from "node:os";
import type { FsyncPolicy } from "../workers/wire.ts";
import type { LogLevel } from "./log.ts";

export const VERSION = "0.1.0";

export interface Config {
  port: number;
  bind: string;
  dir: string;
  workers: number;
  requirepass: string;
  maxclients: number;
  fsync: FsyncPolicy;
  allowAnyPath: boolean;
  /** Refuse clients from outside the loopback interface while no password is set (as Redis). */
  protectedMode: boolean;
  /** Seconds a client may stay idle before it is closed; 0 = never. */
  timeout: number;
  loglevel: LogLevel;
  /** Bytes a client may send of one command not yet complete, before it is disconnected. */
  clientQueryBufferLimit: number;
  /** Bytes of replies a client may leave unread before it is disconnected. */
  clientOutputBufferLimit: number;
  /** Largest bulk string accepted in a request. */
  protoMaxBulkLen: number;
  /** Bytes per shard ring (each direction). */
  ringBytes: number;
  /** Enables DEBUG (used by tests to crash a shard worker). */
  enableDebugCommand: boolean;
}

export function defaultConfig(): Config {
  return {
    port: 6379,
    bind: "127.0.0.1",
    dir: "./data",
    workers: Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
    requirepass: "",
    maxclients: 10000,
    fsync: "everysec",
    allowAnyPath: false,
    protectedMode: true,
    timeout: 0,
    loglevel: "notice",
    clientQueryBufferLimit: 1024 * 1024 * 1024,
    clientOutputBufferLimit: 256 * 1024 * 1024,
    protoMaxBulkLen: 512 * 1024 * 1024,
    ringBytes: 8 * 1024 * 1024,
    enableDebugCommand: false,
  };
}

/** A bad flag or value: the message is printed and the process exits with code 2. */
export class ConfigError extends Error {}

type Setter = (c: Config, value: string) => void;

function integer(name: string, min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^-?[0-9]+$/.test(value)) throw new ConfigError(`${name}: '${value}' is not an integer`);
    const n = Number(value);
    if (n < min || n > max) throw new ConfigError(`${name}: ${n} is out of range [${min}, ${max}]`);
    return n;
  };
}

function yesNo(name: string, value: string): boolean {
  const v = value.toLowerCase();
  if (v === "yes" || v === "true" || v === "") return true;
  if (v === "no" || v === "false") return false;
  throw new ConfigError(`${name}: '${value}' must be yes or no`);
}

const SETTERS: Record<string, Setter> = {
  port: (c, v) => (c.port = integer("port", 0, 65535)(v)),
  bind: (c, v) => (c.bind = v.split(/\s+/)[0]),
  dir: (c, v) => (c.dir = v),
  workers: (c, v) => (c.workers = integer("workers", 1, 256)(v)),
  requirepass: (c, v) => (c.requirepass = v),
  maxclients: (c, v) => (c.maxclients = integer("maxclients", 1, 1_000_000)(v)),
  fsync: (c, v) => {
    const p = v.toLowerCase();
    if (p !== "always" && p !== "everysec" && p !== "no") throw new ConfigError(`fsync: '${v}' must be always, everysec or no`);
    c.fsync = p;
  },
  "allow-any-path": (c, v) => (c.allowAnyPath = yesNo("allow-any-path", v)),
  "protected-mode": (c, v) => (c.protectedMode = yesNo("protected-mode", v)),
  timeout: (c, v) => (c.timeout = integer("timeout", 0, 2 ** 31 - 1)(v)),
  loglevel: (c, v) => {
    const l = v.toLowerCase();
    if (l !== "debug" && l !== "verbose" && l !== "notice" && l !== "warning") throw new ConfigError(`loglevel: '${v}' must be debug, verbose, notice or warning`);
    c.loglevel = l;
  },
  "client-query-buffer-limit": (c, v) => (c.clientQueryBufferLimit = integer("client-query-buffer-limit", 1024, 2 ** 40)(v)),
  "client-output-buffer-limit": (c, v) => (c.clientOutputBufferLimit = integer("client-output-buffer-limit", 1024, 2 ** 40)(v)),
  "proto-max-bulk-len": (c, v) => (c.protoMaxBulkLen = integer("proto-max-bulk-len", 1024, 2 ** 31 - 1)(v)),
  "ring-bytes": (c, v) => (c.ringBytes = integer("ring-bytes", 64 * 1024, 1024 * 1024 * 1024)(v)),
  "enable-debug-command": (c, v) => (c.enableDebugCommand = yesNo("enable-debug-command", v)),
};

/** Flags that take no value. */
const SWITCHES = new Set(["allow-any-path", "enable-debug-command"]);

export const HELP = `Usage: mmapd [options]

Serves memory-mapped files of fixed-width values over the Redis protocol.

Options (each may also be a line "name value" in a --config file):
  --port N                      TCP port (default 6379; 0 picks a free one)
  --bind ADDR                   address to listen on (default 127.0.0.1)
  --dir PATH                    data directory, created if missing (default ./data)
  --workers N                   shard worker threads (default: number of CPUs)
  --requirepass PASS            clients must AUTH with this password
  --maxclients N                most simultaneous clients (default 10000)
  --fsync always|everysec|no    when written values reach the disk (default everysec)
  --allow-any-path              let MMAP bind files outside the data directory
  --protected-mode yes|no       with no password, refuse non-loopback clients (default yes)
  --timeout SECONDS             close clients idle this long (default 0: never)
  --loglevel LEVEL              debug, verbose, notice (default) or warning
  --client-query-buffer-limit B bytes of one pending command before disconnect (default 1 GiB)
  --client-output-buffer-limit B unread reply bytes before disconnect (default 256 MiB)
  --proto-max-bulk-len B        largest bulk string in a request (default 512 MiB)
  --config FILE                 read options from FILE (flags given later override it)
  --help                        print this help
  --version                     print the version
`;

/** Applies one `name value` setting. */
export function applySetting(c: Config, name: string, value: string): void {
  const setter = SETTERS[name.toLowerCase()];
  if (setter === undefined) throw new ConfigError(`unknown option '${name}'`);
  setter(c, value);
}

/** Reads a redis.conf-style file: `name value` per line, `#` comments, optional quotes around the value. */
export function loadConfigFile(c: Config, path: string): void {
  let text: string;
  try {
    text = fs.readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read config file '${path}': ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  text.split(/\r?\n/).forEach((raw, n) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    let value = m[2].trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
    try {
      applySetting(c, m[1], value);
    } catch (e) {
      throw new ConfigError(`${path}:${n + 1}: ${(e as Error).message}`);
    }
  });
}

export type ParsedArgs = { kind: "run"; config: Config } | { kind: "help" } | { kind: "version" };

/** Parses the command line (without the runtime and script). */
export function parseArgs(argv: string[]): ParsedArgs {
  const c = defaultConfig();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") return { kind: "help" };
    if (arg === "--version" || arg === "-v") return { kind: "version" };
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument '${arg}' (options start with --; see --help)`);
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name === "config") {
      value ??= argv[++i];
      if (value === undefined) throw new ConfigError("--config needs a file");
      loadConfigFile(c, value);
      continue;
    }
    if (SETTERS[name] === undefined) throw new ConfigError(`unknown option '--${name}' (see --help)`);
    if (value === undefined) {
      if (SWITCHES.has(name) && (argv[i + 1] === undefined || argv[i + 1].startsWith("--"))) value = "yes";
      else value = argv[++i];
    }
    if (value === undefined) throw new ConfigError(`--${name} needs a value`);
    applySetting(c, name, value);
  }
  return { kind: "run", config: c };
}
