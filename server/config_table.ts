/**
 * The one table of configuration parameters (see config.ts), how a name finds its parameter, and
 * CONFIG GET/SET over it.
 */
import { CommandError, ServerErrors } from "../core/errors.ts";
import type { FsyncPolicy } from "../workers/wire.ts";
import { type Config, ConfigError, type LiveServer } from "./config.ts";
import { bytes, Invalid, integer, oneOf, type Parameter, parameter, text, yesNo } from "./config_kinds.ts";
import type { LogLevel } from "./log.ts";
import { setLogLevel } from "./log.ts";

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

export const PARAMETERS: readonly Parameter[] = [
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
  parameter("stream-format-threads", "streamFormatThreads", integer(0, 256), {
    help: ["N", "threads per shard formatting big text replies (default 2, or 1 on one CPU; 0: in the shard)"],
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
export function findParameter(name: string): Parameter | undefined {
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
