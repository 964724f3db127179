/**
 * Errors that carry their Redis reply text.
 *
 * A command fails by throwing a `CommandError`; the dispatcher turns it into one `-` reply. The
 * text is the whole line after `-`, code included (`ERR ...`, `WRONGTYPE ...`).
 */
export class CommandError extends Error {
  constructor(readonly reply: string) {
    super(reply);
  }
}

/** Throws `ERR <text>`. */
export function fail(text: string): never {
  throw new CommandError("ERR " + text);
}

/** The texts used by more than one command, so each is spelled once. */
export const Errors = {
  notMapped: "ERR You must do MMAP first",
  notWritable: "ERR The file is not writable",
  indexNotInteger: "ERR index argument must be integer",
  indexOutOfRange: "ERR index exceeds size",
  /** VGET, VMGET, VSET and VSETRAW address values from 0; only the range commands count from the end. */
  indexNegative: "ERR index must not be negative (only VRANGE and VSTATS count negative indices from the end)",
  valueNotInteger: "ERR value must be integer",
  valueTooLong: (width: number) => `ERR value is too long (at most ${width} bytes)`,
  /** A key whose binding could not be restored at start (`key` as UTF-8 text). */
  bindingFailed: (key: string, reason: string) => `ERR binding of '${key}' failed at start: ${reason}; MMAP it again or DEL it`,
  /** MMAP of a bound key with another type, size or mode: the binding in place, and what was asked that differs. */
  alreadyBound: (key: string, bound: string, path: string, wanted: string) =>
    `ERR key '${key}' is already bound as ${bound} to '${path}'; DEL it first to bind it ${wanted}`,
  /** NaN is refused as input: a NaN in a file is a value no write made (see COMMANDS.md). */
  nanNotStored: (type: string) => `ERR value must be ${type}; NaN is not stored`,
  syntax: "ERR syntax error",
  outsideDataDir: "ERR path is outside the data directory",
  notAnInteger: "ERR value is not an integer or out of range",
  invalidCursor: "ERR invalid cursor",
  badClientName: "ERR Client names cannot contain spaces, newlines or special characters.",
  /** A connection in MONITOR mode sends a command that reads or writes keys (Redis's words). */
  monitorKeyspace: "ERR Replica can't interact with the keyspace",
  wrongArity: (name: string) => `ERR wrong number of arguments for '${name.toLowerCase()}' command`,
  /** For container commands (CONFIG, CLIENT, COMMAND): `sub` as the client typed it. */
  unknownSubcommand: (sub: string, command: string) => `ERR unknown subcommand '${sub}'. Try ${command.toUpperCase()} HELP.`,
  internal: (e: unknown) => "ERR internal error: " + (e instanceof Error ? e.message : String(e)),
} as const;

/**
 * Cluster mode's texts: Redis's redirections (clients match them byte for byte) and Kvrocks's
 * replies to the topology commands (controllers read them), each replied as written here.
 */
export const ClusterErrors = {
  crossSlot: "CROSSSLOT Keys in request don't hash to the same slot",
  notInitialized: "CLUSTERDOWN The cluster is not initialized",
  slotNotServed: "CLUSTERDOWN Hash slot not served",
  moved: (slot: number, host: string, port: number) => `MOVED ${slot} ${host}:${port}`,
  tryAgain: "TRYAGAIN Multiple keys request during rehashing of slot",
  /** Redis's reply to CLUSTER, READONLY and READWRITE on a server without cluster mode. */
  disabled: "ERR This instance has cluster support disabled",
  /** Kvrocks's reply to CLUSTERX on a server without cluster mode. */
  notEnabled: "ERR Cluster mode is not enabled",
  absolutePath: "ERR absolute paths are refused in cluster mode: a binding must be recreatable under another node's data directory",
  topologyFile: "ERR 'cluster-nodes.conf' and 'cluster-migration.json' are the cluster's own files",
  stagingFile: "ERR '.mmapd-import' holds the bytes of slots being imported",
  invalidNodeId: "ERR Invalid cluster node id",
  invalidVersion: "ERR Invalid cluster version",
  invalidNodesInfo: "ERR Invalid cluster nodes info",
  invalidPort: "ERR Invalid cluster node port",
  invalidRole: "ERR Invalid cluster node role (mmapd has no replicas: every node is a master)",
  slotOutOfRange: "ERR Slot is out of range",
  slotOverlapped: "ERR Slot distribution is overlapped",
  noSuchNode: "ERR No this node in the cluster",
  unspecifiedHost: (host: string) => `ERR Invalid cluster node host '${host}': clients cannot connect to it`,
} as const;

/** Transactions: Redis 7's texts for MULTI, EXEC, DISCARD and WATCH, and mmapd's for a shard lost mid-transaction. */
export const TransactionErrors = {
  nested: "ERR MULTI calls can not be nested",
  execWithoutMulti: "ERR EXEC without MULTI",
  discardWithoutMulti: "ERR DISCARD without MULTI",
  watchInMulti: "ERR WATCH inside MULTI is not allowed",
  notAllowed: "ERR Command not allowed inside a transaction",
  execAbort: "EXECABORT Transaction discarded because of previous errors.",
  cutShort: "ERR transaction cut short: a shard worker died before it ran this command",
  tooMany: "ERR too many transactions across shards in flight; try again",
} as const;
