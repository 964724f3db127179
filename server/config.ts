/**
 * Server configuration: one table of parameters. Each parameter has one name that is at once its
 * flag (`--maxclients 77`), its config-file directive (`maxclients 77`, in redis.conf's syntax)
 * and its CONFIG GET/SET name, with how its value parses and prints, its default, whether CONFIG
 * SET may change it while the server runs, and its --help line. The flag parser, the config-file
 * parser, CONFIG GET/SET/REWRITE and --help all read the table; nothing else lists parameters.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CommandError, ServerErrors } from "../core/errors.ts";
import type { FsyncPolicy } from "../workers/wire.ts";
import type { LogLevel } from "./log.ts";
import { setLogLevel } from "./log.ts";

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
  /** Where log lines go: a file appended to, or "" for standard output. */
  logfile: string;
  /** A file the server writes its process id to at start and removes at exit; "" for none. */
  pidfile: string;
  /** Bytes a client may send of one command not yet complete, before it is disconnected. */
  clientQueryBufferLimit: number;
  /** Bytes of replies a client may leave unread before it is disconnected. */
  clientOutputBufferLimit: number;
  /** Largest bulk string in a request. */
  protoMaxBulkLen: number;
  /** Bytes per shard ring (each direction). */
  ringBytes: number;
  /** Enables DEBUG (used by tests to crash a shard worker). */
  enableDebugCommand: boolean;
  /** Commands that take at least this many microseconds go to the slow log; negative: none do. */
  slowlogLogSlowerThan: number;
  /** Entries the slow log keeps. */
  slowlogMaxLen: number;
  /** Cluster mode (`cluster-enabled`): serve only the hash slots the topology gives this node. */
  clusterEnabled: boolean;
  /** A topology file in Kvrocks's SETNODES text, read at start (`cluster-config`); "" for none. */
  clusterConfig: string;
  /** This node's 40-character id (`cluster-node-id`); "" to find it in the topology by address. */
  clusterNodeId: string;
  /** The address and port this node has in the topology, when not `bind` and `port` (NAT, containers). */
  clusterAnnounceIp: string;
  clusterAnnouncePort: number;
  /** The config file the server was started with (absolute), for CONFIG REWRITE; "" for none. */
  configFile: string;
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
    logfile: "",
    pidfile: "",
    clientQueryBufferLimit: 1024 * 1024 * 1024,
    clientOutputBufferLimit: 256 * 1024 * 1024,
    protoMaxBulkLen: 512 * 1024 * 1024,
    ringBytes: 8 * 1024 * 1024,
    enableDebugCommand: false,
    slowlogLogSlowerThan: 10_000,
    slowlogMaxLen: 128,
    clusterEnabled: false,
    clusterConfig: "",
    clusterNodeId: "",
    clusterAnnounceIp: "",
    clusterAnnouncePort: 0,
    configFile: "",
  };
}

/**
 * A bad flag, directive or value. `message` is what the command line and config file print
 * (`maxclients: 'lots' is not an integer`); `reason` is Redis's wording for CONFIG SET
 * (`argument couldn't be parsed into an integer`).
 */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly reason = message,
  ) {
    super(message);
  }
}

/** What CONFIG may see and change of the running server beyond the Config object. */
export interface LiveServer {
  /** Absolute real path of the data directory. */
  readonly dataDir: string;
  /** The port listened on. */
  readonly port: number;
  setFsync(policy: FsyncPolicy): void;
  setTimeoutSeconds(seconds: number): void;
  setSlowlogThreshold(micros: number): void;
}

/** How a value is read from text (throwing `Invalid`) and written back. */
interface Kind<T> {
  parse(value: string): T;
  format(value: T): string;
}

/** A value a kind refuses: mmapd's text (after `name: `) and Redis's CONFIG SET reason. */
class Invalid extends Error {
  constructor(
    readonly text: string,
    readonly reason: string,
  ) {
    super(text);
  }
}

function integer(min: number, max: number): Kind<number> {
  return {
    parse(value) {
      if (!/^-?[0-9]+$/.test(value)) throw new Invalid(`'${value}' is not an integer`, "argument couldn't be parsed into an integer");
      return inRange(Number(value), min, max);
    },
    format: String,
  };
}

function inRange(n: number, min: number, max: number): number {
  if (n < min || n > max)
    throw new Invalid(`${n} is out of range [${min}, ${max}]`, `argument must be between ${min} and ${max} inclusive`);
  return n;
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1000, kb: 1024, m: 1000 ** 2, mb: 1024 ** 2, g: 1000 ** 3, gb: 1024 ** 3 };

/** A byte count, with redis.conf's units: `1gb` (1024³), `1g` (1000³), `64mb`, `512kb`. */
function bytes(min: number, max: number): Kind<number> {
  return {
    parse(value) {
      const m = /^([0-9]+)([a-z]*)$/i.exec(value);
      const unit = m === null ? undefined : UNITS[m[2].toLowerCase()];
      if (m === null || unit === undefined)
        throw new Invalid(`'${value}' is not a byte count (a number, optionally with kb, mb or gb)`, "argument must be a memory value");
      return inRange(Number(m[1]) * unit, min, max);
    },
    format: String,
  };
}

function yesNo(): Kind<boolean> {
  return {
    parse(value) {
      const v = value.toLowerCase();
      if (v === "yes" || v === "true") return true;
      if (v === "no" || v === "false") return false;
      throw new Invalid(`'${value}' must be yes or no`, "argument must be 'yes' or 'no'");
    },
    format: (v) => (v ? "yes" : "no"),
  };
}

function oneOf<T extends string>(...choices: T[]): Kind<T> {
  return {
    parse(value) {
      const v = value.toLowerCase() as T;
      if (choices.includes(v)) return v;
      const list = `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}`;
      throw new Invalid(`'${value}' must be ${list}`, `argument(s) must be one of the following: ${choices.join(", ")}`);
    },
    format: (v) => v,
  };
}

function text(check?: (value: string) => void): Kind<string> {
  return {
    parse(value) {
      check?.(value);
      return value;
    },
    format: (v) => v,
  };
}

/** One configuration parameter. */
interface Parameter {
  name: string;
  /** Another name for the same setting (Redis's name for mmapd's own, or the other way round). */
  alias?: string;
  /** The --help line: the value's placeholder and what it sets; absent: not listed. */
  help?: readonly [placeholder: string, text: string];
  /** A flag without a value means yes. */
  switch?: boolean;
  /** Several lines of a config file may set it, each a part (client-output-buffer-limit's classes). */
  multiline?: boolean;
  /** CONFIG SET may change it while the server runs. */
  mutable: boolean;
  /** Parses `value` into `c`; throws ConfigError. */
  set(c: Config, value: string): void;
  /** The value as a config file line and CONFIG REWRITE write it. */
  get(c: Config): string;
  /** The value CONFIG GET shows, when the running server knows better than `c` (port 0, a relative dir). */
  show?(c: Config, live: LiveServer): string;
  /** Makes a change by CONFIG SET take effect. */
  apply?(c: Config, live: LiveServer): void;
  /**
   * A Redis setting mmapd understands but has no use for (save, appendonly): what the value would
   * mean here, and whether it describes what mmapd does anyway. Never stored or rewritten.
   */
  explain?(value: string): { matches: boolean; text: string };
}

/** A parameter stored in `c[key]`, read and written by `kind`. */
function parameter<K extends keyof Config>(
  name: string,
  key: K,
  kind: Kind<Config[K]>,
  options: Omit<Parameter, "name" | "set" | "get" | "mutable"> & { mutable?: boolean },
): Parameter {
  return {
    name,
    mutable: false,
    ...options,
    set(c, value) {
      try {
        c[key] = kind.parse(value);
      } catch (e) {
        if (e instanceof Invalid) throw new ConfigError(`${name}: ${e.text}`, e.reason);
        throw e;
      }
    },
    get: (c) => kind.format(c[key]),
  };
}

const SNAPSHOTS =
  "mmapd takes no snapshots: values live in their mapped files, which reach the disk by the fsync policy (appendfsync always|everysec|no); SAVE flushes every file at once";
const NO_AOF =
  "mmapd keeps no append-only file: each write goes straight into its mapped file, which reaches the disk by the fsync policy (appendfsync always|everysec|no)";

/**
 * client-output-buffer-limit: a byte count, or Redis's class form `normal <hard> <soft> <seconds>`
 * (several classes may follow each other). Only normal clients exist here: their hard limit is
 * the one mmapd enforces (0: none); a line without the normal class leaves the limit as it was.
 */
const outputBufferLimit: Parameter = {
  name: "client-output-buffer-limit",
  help: ["B", "unread reply bytes before disconnect (default 256mb; 0: no limit)"],
  mutable: true,
  multiline: true,
  set(c, value) {
    const words = value.trim().split(/\s+/);
    try {
      if (words.length === 1) {
        const limit = bytes(0, 2 ** 40).parse(words[0]);
        c.clientOutputBufferLimit = limit === 0 ? NO_LIMIT : Math.max(limit, 1024);
        return;
      }
      if (words.length % 4 !== 0)
        throw new Invalid(
          `'${value}' is not a byte count or 'normal <hard> <soft> <seconds>'`,
          "Wrong number of arguments in buffer limit configuration.",
        );
      for (let i = 0; i < words.length; i += 4) {
        const kind = words[i].toLowerCase();
        if (kind !== "normal" && kind !== "replica" && kind !== "slave" && kind !== "pubsub") {
          throw new Invalid(`unknown client class '${words[i]}'`, "Invalid client class specified in buffer limit configuration.");
        }
        const hard = bytes(0, 2 ** 40).parse(words[i + 1]);
        if (kind === "normal") c.clientOutputBufferLimit = hard === 0 ? NO_LIMIT : Math.max(hard, 1024);
      }
    } catch (e) {
      if (e instanceof Invalid) throw new ConfigError(`client-output-buffer-limit: ${e.text}`, e.reason);
      throw e;
    }
  },
  get: (c) => (c.clientOutputBufferLimit === NO_LIMIT ? "0" : String(c.clientOutputBufferLimit)),
};

/** The output limit `normal 0 0 0` asks for: none. */
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

const PARAMETERS: readonly Parameter[] = [
  parameter("port", "port", integer(0, 65535), {
    help: ["N", "TCP port (default 6379; 0 picks a free one)"],
    show: (_c, live) => String(live.port),
  }),
  parameter(
    "bind",
    "bind",
    // redis.conf may list several addresses, `-` marking optional ones; mmapd listens on the first.
    { parse: (v) => v.trim().split(/\s+/)[0].replace(/^-/, ""), format: (v) => v },
    { help: ["ADDR", "address to listen on (default 127.0.0.1)"] },
  ),
  parameter("dir", "dir", text(), {
    help: ["PATH", "data directory, created if missing (default ./data)"],
    show: (_c, live) => live.dataDir,
  }),
  parameter("workers", "workers", integer(1, 256), { help: ["N", "shard worker threads (default: number of CPUs)"] }),
  parameter("requirepass", "requirepass", text(), { help: ["PASS", "clients must AUTH with this password"], mutable: true }),
  parameter("maxclients", "maxclients", integer(1, 1_000_000), { help: ["N", "most simultaneous clients (default 10000)"], mutable: true }),
  parameter("fsync", "fsync", oneOf<FsyncPolicy>("always", "everysec", "no"), {
    alias: "appendfsync",
    help: ["always|everysec|no", "when written values reach the disk (default everysec; also appendfsync)"],
    mutable: true,
    apply: (c, live) => live.setFsync(c.fsync),
  }),
  parameter("allow-any-path", "allowAnyPath", yesNo(), { help: ["", "let MMAP bind files outside the data directory"], switch: true }),
  parameter("protected-mode", "protectedMode", yesNo(), {
    help: ["yes|no", "with no password, refuse non-loopback clients (default yes)"],
    mutable: true,
  }),
  parameter("timeout", "timeout", integer(0, 2 ** 31 - 1), {
    help: ["SECONDS", "close clients idle this long (default 0: never)"],
    mutable: true,
    apply: (c, live) => live.setTimeoutSeconds(c.timeout),
  }),
  parameter("loglevel", "loglevel", oneOf<LogLevel>("debug", "verbose", "notice", "warning"), {
    help: ["LEVEL", "debug, verbose, notice (default) or warning"],
    mutable: true,
    apply: (c) => setLogLevel(c.loglevel),
  }),
  parameter("logfile", "logfile", text(), { help: ["FILE", "append log lines to FILE (default: standard output)"] }),
  parameter("pidfile", "pidfile", text(), { help: ["FILE", "write the process id to FILE while running"] }),
  {
    name: "daemonize",
    mutable: false,
    set(_c, value) {
      if (yesNo().parse(value)) {
        throw new ConfigError("daemonize: mmapd does not fork into the background; run it under systemd, a container or nohup");
      }
    },
    get: () => "no",
  },
  parameter("client-query-buffer-limit", "clientQueryBufferLimit", bytes(1024, 2 ** 40), {
    help: ["B", "bytes of one pending command before disconnect (default 1gb)"],
    mutable: true,
  }),
  outputBufferLimit,
  parameter("proto-max-bulk-len", "protoMaxBulkLen", bytes(1024, 2 ** 31 - 1), {
    help: ["B", "largest bulk string in a request (default 512mb)"],
  }),
  parameter("ring-bytes", "ringBytes", bytes(64 * 1024, 1024 ** 3), {
    help: ["B", "bytes of each shard's request and reply rings (default 8mb)"],
  }),
  parameter("slowlog-log-slower-than", "slowlogLogSlowerThan", integer(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER), {
    help: ["USEC", "SLOWLOG keeps commands this slow (default 10000; negative: none)"],
    mutable: true,
    apply: (c, live) => live.setSlowlogThreshold(c.slowlogLogSlowerThan),
  }),
  parameter("slowlog-max-len", "slowlogMaxLen", integer(0, Number.MAX_SAFE_INTEGER), {
    help: ["N", "entries SLOWLOG keeps (default 128)"],
    mutable: true,
  }),
  parameter("enable-debug-command", "enableDebugCommand", yesNo(), { help: ["", "allow DEBUG (CRASH-SHARD, for tests)"], switch: true }),
  {
    name: "databases",
    mutable: false,
    set(_c, value) {
      if (value !== "1") throw new ConfigError(`databases: mmapd has one database (0), not '${value}'`);
    },
    get: () => "1",
  },
  {
    name: "save",
    mutable: true,
    set: refuseUnlessItMatches,
    get: () => "",
    explain: (value) => ({ matches: value.trim() === "", text: SNAPSHOTS }),
  },
  {
    name: "appendonly",
    mutable: true,
    set: refuseUnlessItMatches,
    get: () => "no",
    explain: (value) => ({ matches: yesNo().parse(value) === false, text: NO_AOF }),
  },
  parameter("cluster-enabled", "clusterEnabled", yesNo(), {
    help: ["yes|no", "serve only the hash slots the cluster topology gives this node (default no)"],
  }),
  parameter("cluster-config", "clusterConfig", text(), {
    help: ["FILE", `topology at start: Kvrocks SETNODES lines "<id> <ip> <port> master - <slots>"`],
  }),
  parameter(
    "cluster-node-id",
    "clusterNodeId",
    text((v) => {
      // "" is the default: no id given.
      if (v !== "" && !/^[\x21-\x7e]{40}$/.test(v)) throw new Invalid(`'${v}' is not 40 characters`, "argument must be 40 characters");
    }),
    { help: ["ID", "this node's 40-character id in the topology"] },
  ),
  parameter(
    "cluster-announce-ip",
    "clusterAnnounceIp",
    text((v) => {
      // Clients are told this address: an unspecified one would send them nowhere ("" is the default: --bind's).
      if (v === "0.0.0.0" || v === "::")
        throw new Invalid(`'${v}' is not an address clients can reach`, "argument is not an address clients can reach");
    }),
    { help: ["ADDR", "address this node has in the topology (default: --bind)"] },
  ),
  parameter("cluster-announce-port", "clusterAnnouncePort", integer(0, 65535), {
    help: ["N", "port this node has in the topology (default: --port)"],
  }),
];

/** save and appendonly: a value that describes what mmapd does anyway is accepted; another is refused with why. */
function refuseUnlessItMatches(this: Parameter, _c: Config, value: string): void {
  let verdict: { matches: boolean; text: string };
  try {
    verdict = this.explain!(value);
  } catch (e) {
    if (e instanceof Invalid) throw new ConfigError(`${this.name}: ${e.text}`, e.reason);
    throw e;
  }
  if (!verdict.matches) throw new ConfigError(`${this.name}: ${verdict.text}`, verdict.text);
}

const BY_NAME = new Map<string, Parameter>();
for (const p of PARAMETERS) {
  BY_NAME.set(p.name, p);
  if (p.alias !== undefined) BY_NAME.set(p.alias, p);
}

/** The parameter called `name` (any case; aliases too), or undefined. */
function findParameter(name: string): Parameter | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** Every name CONFIG GET knows (aliases too), in table order. */
export function parameterNames(): string[] {
  return PARAMETERS.flatMap((p) => (p.alias === undefined ? [p.name] : [p.name, p.alias]));
}

/** A parameter's value as CONFIG GET shows it. */
export function showParameter(name: string, c: Config, live: LiveServer): string {
  const p = findParameter(name)!;
  return p.show?.(c, live) ?? p.get(c);
}

/**
 * Sets parameters as CONFIG SET does: every pair is checked before any is applied, then each
 * change takes effect. Throws a CommandError with Redis's text for an unknown, immutable,
 * repeated or bad one.
 */
export function setParameters(c: Config, live: LiveServer, pairs: [name: string, value: string][]): void {
  const trial = structuredClone(c);
  const seen = new Set<Parameter>();
  const found: [Parameter, string][] = [];
  for (const [name, value] of pairs) {
    const p = findParameter(name);
    if (p === undefined) throw new CommandError(ServerErrors.configUnknownOption(name));
    const failed = (reason: string) => new CommandError(ServerErrors.configSetFailed(name.toLowerCase(), reason));
    if (!p.mutable) throw failed("can't set immutable config");
    if (seen.has(p)) throw failed("duplicate parameter");
    seen.add(p);
    try {
      p.set(trial, value);
    } catch (e) {
      if (e instanceof ConfigError) throw failed(e.reason);
      throw e;
    }
    found.push([p, value]);
  }
  for (const [p, value] of found) {
    p.set(c, value);
    p.apply?.(c, live);
  }
}

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

/** Something the configuration asked for that the log should explain at start (save, appendonly). */
interface ConfigNote {
  level: LogLevel;
  text: string;
}

/** Applies one setting from a flag or a file line; notes explain settings mmapd has no use for. */
function applySetting(c: Config, name: string, value: string, notes: ConfigNote[]): void {
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
function loadConfigFile(c: Config, file: string, notes: ConfigNote[]): void {
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
