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

/**
 * Throws `ERR <text>`. Kept for core/mapped_file.ts and core/commands/analytics.ts until their
 * texts move here; every other command throws `new CommandError(<table>.<entry>)`.
 */
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
  /** Redis's reply to a command name it does not know: `args` are the first arguments, quoted. */
  unknownCommand: (name: string, args: string) => `ERR unknown command '${name}', with args beginning with: ${args}`,
  /** Redis's text for a container command's subcommand it does not know, or one with the wrong number of arguments. */
  unknownSubcommandOrArity: (sub: string, command: string) =>
    `ERR unknown subcommand or wrong number of arguments for '${sub}'. Try ${command} HELP.`,
  /** Redis's text, for an integer type's value outside its range. */
  valueOutOfRange: (min: number | bigint, max: number | bigint) => `ERR value must be between ${min} and ${max}`,
  valueNotNumber: (type: string) => `ERR value must be ${type}`,
  /** A float type's finite value too large for it (`inf` itself is accepted). */
  valueOverflow: (type: string) => `ERR value is out of range for ${type}`,
  rawLength: (length: number, width: number) => `ERR raw length ${length} is not a multiple of value size ${width}`,
  /** Redis 8's VADD (vector sets) has the same name as ours. */
  vectorSetSyntax: "ERR this is mmapd's VADD (append values); Redis 8 vector-set syntax is not supported",
  /** Redis's texts, for timeouts (CLIENT PAUSE, CLUSTERX MIGRATE). */
  timeoutNotInteger: "ERR timeout is not an integer or out of range",
  timeoutNegative: "ERR timeout is negative",
} as const;

/** MMAP's texts, and those of files a binding cannot use. */
export const BindingErrors = {
  unknownType: "ERR value_type must be int8, uint8, int16, uint16, int32, uint32, int64, uint64, float, double, long_double or string",
  stringSize: (maxWidth: number) => `ERR invalid value_size: string needs a size from 1 to ${maxWidth} (MMAP key path string size)`,
  invalidSize: "ERR invalid value_size",
  /** The module's text, for a bound key given another path. */
  otherFile: "ERR It is already mapped on another file",
  /** Only one key may write a file (`key` as UTF-8 text). */
  boundWritable: (key: string) => `ERR file is already bound writable to key '${key}'`,
  registryFile: (name: string) => `ERR '${name}' is the bindings registry's file`,
  /** `given` as the client typed it, `reason` the system's text for the errno. */
  cannotOpen: (given: string, reason: string) => `ERR cannot open '${given}': ${reason}`,
  dataDirUnopenable: (reason: string) => `ERR cannot open the data directory: ${reason}`,
  notRegularFile: (given: string) => `ERR '${given}' is not a regular file`,
  /** A failed system call: what failed, then the system's text for the errno. */
  systemCall: (what: string, reason: string) => `ERR ${what}: ${reason}`,
} as const;

/** The connection commands' texts (AUTH, HELLO, CLIENT, SELECT), each Redis's own. */
export const ConnectionErrors = {
  noAuth: "NOAUTH Authentication required.",
  wrongPass: "WRONGPASS invalid username-password pair or user is disabled.",
  authWithoutPassword:
    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
  helloNoAuth:
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
  protocolNotInteger: "ERR Protocol version is not an integer or out of range",
  noProto: "NOPROTO unsupported protocol version",
  helloSyntax: (option: string) => `ERR Syntax error in HELLO option '${option}'`,
  noSuchClient: "ERR No such client",
  clientIdNotPositive: "ERR client-id should be greater than 0",
  noSuchUser: (user: string) => `ERR No such user '${user}'`,
  unknownClientType: (type: string) => `ERR Unknown client type '${type}'`,
  pauseMode: "ERR CLIENT PAUSE mode must be WRITE or ALL",
  badLibInfo: "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
  unrecognizedOption: (option: string) => `ERR Unrecognized option '${option}'`,
  dbOutOfRange: "ERR DB index is out of range",
} as const;

/** The server commands' texts (CONFIG, COMMAND, SLOWLOG, SHUTDOWN, DEBUG, SAVE and FLUSHALL). */
export const ServerErrors = {
  /** Redis's texts for CONFIG SET; `reason` is the parameter's own. */
  configUnknownOption: (name: string) => `ERR Unknown option or number of arguments for CONFIG SET - '${name}'`,
  configSetFailed: (name: string, reason: string) => `ERR CONFIG SET failed (possibly related to argument '${name}') - ${reason}`,
  /** Redis's texts for CONFIG REWRITE. */
  noConfigFile: "ERR The server is running without a config file",
  rewriteFailed: (reason: string) => `ERR Rewriting config file: ${reason}`,
  /** Redis's texts for COMMAND GETKEYS. */
  invalidCommand: "ERR Invalid command specified",
  invalidArgumentCount: "ERR Invalid number of arguments specified for command",
  noKeyArguments: "ERR The command has no key arguments",
  /** Redis's text for SLOWLOG GET. */
  slowlogCount: "ERR count should be greater than or equal to -1",
  /** Redis's text for SHUTDOWN ABORT. */
  noShutdown: "ERR No shutdown in progress.",
  debugDisabled:
    "ERR DEBUG command not allowed. Start mmapd with --enable-debug-command (or the line 'enable-debug-command yes' in its config file) to allow it.",
  noSuchShard: "ERR no such shard",
  debugUsage: "ERR DEBUG subcommand must be CRASH-SHARD <n>",
  /** SAVE, FLUSHALL or the migration's flush could not write a file: `reason` says which and why. */
  flushFailed: (reason: string) => `ERR ${reason}`,
} as const;

/** Redis's texts for a request that breaks RESP; the connection is closed after it. */
export const ProtocolErrors = {
  countTooBig: "ERR Protocol error: too big mbulk count string",
  bulkLengthTooBig: "ERR Protocol error: too big bulk count string",
  invalidCount: "ERR Protocol error: invalid multibulk length",
  expectedBulk: (got: string) => `ERR Protocol error: expected '$', got '${got}'`,
  invalidBulkLength: "ERR Protocol error: invalid bulk length",
  inlineTooBig: "ERR Protocol error: too big inline request",
  unbalancedQuotes: "ERR Protocol error: unbalanced quotes in request",
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
  saveFailed: (reason: string) => `ERR cannot save the cluster topology: ${reason}`,
  /** Kvrocks's texts for CLUSTERX's arguments. */
  clusterxUsage: "ERR CLUSTERX command, CLUSTERX VERSION|MYID|SETNODEID|SETNODES|SETSLOT|MIGRATE",
  noSlots: "ERR No slots to parse.",
  invalidSlotRange: (range: string) =>
    `ERR Invalid slot range: \`${range}\`. The slot range \`int1-int2\` needs to satisfy the condition (int1 <= int2).`,
  invalidSlotId: "ERR Invalid slot id: out of numeric range",
  wrongArity: "ERR wrong number of arguments",
  asyncTimeout: "ERR Async migration does not support timeout",
  invalidSyncFlag: "ERR Invalid sync flag",
  invalidVersionArg: "ERR Invalid version",
  invalidSetnodesOptions: "ERR Invalid setnodes options",
  invalidSetslotOptions: "ERR Invalid setslot options",
  invalidNodeIdArg: "ERR Invalid node id",
  /** Kvrocks's texts for CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT. */
  invalidSlot: "ERR Invalid slot",
  invalidSlotOrCount: "ERR Invalid slot or number of keys",
} as const;

/**
 * Moving a slot between nodes (CLUSTERX MIGRATE on the source, IMPORT and IMPORTFILE on the
 * target): Kvrocks's texts for its checks, mmapd's for the files it moves.
 */
export const MigrationErrors = {
  noSuchTarget: "ERR Can't find the destination node id",
  notMySlot: "ERR Can't migrate slot which doesn't belong to me",
  toMyself: "ERR Can't migrate slot to myself",
  alreadyMigrating: "ERR There is already a migrating job",
  invalidImportState: "ERR Invalid import state",
  invalidImportFileOptions: "ERR Invalid import file options",
  /** A migration that failed: `reason` is why, as the log tells it. */
  failed: (reason: string) => `ERR ${reason}`,
  timedOut: (slot: number, seconds: number) =>
    `ERR migrating slot ${slot} did not finish within ${seconds} s; CLUSTER INFO tells how it goes`,
  absolutePath: (key: string) => `ERR key '${key}' is bound to an absolute path, which cannot be recreated on another node`,
  fileMissing: (key: string) => `ERR the file of key '${key}' is missing`,
  /** `count` is the target's reply to its MMAP. */
  countDiffers: (path: string, count: unknown, expected: number) => `ERR the target bound '${path}' with ${count} values, not ${expected}`,
  outsideDataDir: (given: string) => `ERR path '${given}' is not inside the data directory`,
  ownFile: (given: string) => `ERR path '${given}' is one of the server's own files`,
  notImportingHere: (slot: number) => `ERR slot ${slot} is not being imported on this connection`,
  alreadyServed: (slot: number) => `ERR slot ${slot} is already served by this node`,
  stillUndoing: (slot: number) => `ERR the last import of slot ${slot} is still being undone; try again`,
  alreadyImporting: (slot: number) => `ERR slot ${slot} is already being imported`,
  notImporting: (slot: number) => `ERR slot ${slot} is not being imported`,
  importedElsewhere: (slot: number) => `ERR slot ${slot} is being imported on another connection`,
  chunkSize: "ERR chunk size must be positive",
  size: "ERR size must be a non-negative integer",
  offsetOrChecksum: "ERR offset and checksum must be non-negative integers",
  checksumMismatch: (file: string, offset: number) => `ERR checksum mismatch in '${file}' at offset ${offset}`,
  fileExists: (file: string) => `ERR '${file}' already exists on this node`,
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
