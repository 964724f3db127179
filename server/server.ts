/**
 * The server on the main thread: accepts connections, parses their commands, runs connection
 * and server commands itself, routes key commands to the shard that owns the key, and writes
 * replies back in request order.
 */
import fs from "node:fs";
import path from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import type { ArgList } from "../core/args.ts";
import { Args, argInt, argIs, argString, argView } from "../core/args.ts";
import { SHARD_COMMANDS, SHARD_COMMAND_INDEX, shardCommandId } from "../core/commands.ts";
import { CommandError, Errors } from "../core/errors.ts";
import { refuseSpecialFile, replySafe, resolveDataPath } from "../core/paths.ts";
import { REGISTRY_FILE, Registry } from "../core/registry.ts";
import { sigbusGuardStatus } from "../core/sigbus_guard.ts";
import type { CatalogEvent, ShardCommand } from "../core/shard.ts";
import { argSlot, hashSlot } from "../core/slots.ts";
import { ReplyWriter } from "../protocol/reply_writer.ts";
import { releaseOrphanedFiles } from "../workers/orphaned_files.ts";
import { ShardPool } from "../workers/shard_pool.ts";
import type { Config } from "./config.ts";
import { VERSION } from "./config.ts";
import { Connection } from "./connection.ts";
import type { ServerCommand } from "./commands/server_command.ts";
import { DEFERRED } from "./commands/server_command.ts";
import { SERVER_COMMAND_INDEX } from "./commands/index.ts";
import { log } from "./log.ts";
import { PROTECTED_MODE_DENIED, refusedByProtectedMode } from "./protected_mode.ts";
import type { MergeKind } from "./merge.ts";
import { mergeReplies } from "./merge.ts";

const NO_BYTES = new Uint8Array(0);

/** Replies a client may be owed before its socket stops being read. */
const MAX_OWED_REPLIES = 100_000;

/**
 * How long a turn waits for the shards to answer its commands before writing replies; past it,
 * replies are written as they arrive. Only the turn's own commands are waited for.
 */
const TURN_REPLY_WAIT_MS = 5;

/** Commands a client may send before it has authenticated. */
const ALLOWED_BEFORE_AUTH = new Set(["auth", "hello", "quit", "reset"]);

/** Counters for INFO stats. */
export class Stats {
  connectionsReceived = 0;
  rejectedConnections = 0;
  commandsProcessed = 0;
  protocolErrors = 0;
  outputLimitDisconnects = 0;
  bindingsFailed = new Map<string, string>();
  shardRestarts = 0;
  lastSave = Math.floor(Date.now() / 1000);
  readonly startedAt = Date.now();
}

export class MmapdServer {
  readonly connections = new Map<number, Connection>();
  readonly stats = new Stats();
  readonly registry: Registry;
  readonly pool: ShardPool;
  /** Writable bindings by the absolute path of their file: one writer per file. */
  readonly writers = new Map<string, string>();
  /** The other way round, so an unbind finds its entry without a scan (FLUSHALL of many keys). */
  private readonly writerFileByKey = new Map<string, string>();
  private listener: TCPSocketListener<Connection> | null = null;
  private nextConnectionId = 1;
  private readonly scratch = new ReplyWriter(4096);
  private readonly dirtyConnections = new Set<Connection>();
  private idleTimer: ReturnType<typeof setInterval> | null = null;
  shuttingDown = false;
  /** A random id for this run (INFO run_id). */
  readonly runId = [...crypto.getRandomValues(new Uint8Array(20))].map((b) => b.toString(16).padStart(2, "0")).join("");
  /** Absolute real path of the data directory. */
  readonly dataDir: string;

  constructor(readonly config: Config) {
    fs.mkdirSync(config.dir, { recursive: true });
    this.dataDir = fs.realpathSync(config.dir);
    this.registry = new Registry(this.dataDir, (message) => log("warning", `Bindings registry: ${message}`));
    this.pool = new ShardPool(
      { count: config.workers, dataDir: this.dataDir, allowAnyPath: config.allowAnyPath, fsync: config.fsync, ringBytes: config.ringBytes },
      {
        deliver: (conn, seq, buf, start, end) => this.deliver(conn, seq, buf, start, end),
        inTurn: (conn, seq) => this.inTurn(conn, seq),
        catalog: (_shard, event) => this.onCatalog(event),
        flush: () => this.endTurnSoon(),
        shardRestarted: (shard, reason) => {
          this.stats.shardRestarts++;
          log("warning", `Shard ${shard} worker died (${reason}); restarting it with its bindings`);
          this.releaseFilesOf(shard);
        },
      },
      (shard) => this.restoreRequests(shard),
    );
    this.pool.serverReplyHandler = (shard, seq, reply) => this.onServerReply(shard, seq, reply);
  }

  /** Loads the bindings, starts the shards and listens. Resolves with the port listened on. */
  async start(): Promise<number> {
    const report = this.registry.load();
    for (const problem of report.problems) log("warning", `Bindings registry: ${problem}`);
    for (const b of this.registry.bindings.values()) this.trackWriter(b.key, b.path, b.writable);
    await this.pool.start();
    const guard = sigbusGuardStatus();
    if (guard !== "on") log("warning", `SIGBUS guard ${guard}: a bound file shrunk by another process can crash the server`);
    await this.restoresDone;
    const server = this;
    this.listener = Bun.listen<Connection>({
      hostname: this.config.bind,
      port: this.config.port,
      socket: {
        open(socket) {
          server.onOpen(socket);
        },
        data(socket, data) {
          try {
            server.onData(socket.data, data);
          } catch (e) {
            // A bug while serving one client must not take the others down: drop that client.
            log("warning", `Internal error serving client ${socket.data?.address}: ${(e as Error).stack ?? e}; closing it`);
            socket.terminate();
            server.onClose(socket.data);
          }
        },
        drain(socket) {
          socket.data?.drainBacklog();
          if (socket.data !== undefined) server.resumeIfDrained(socket.data);
        },
        close(socket) {
          server.onClose(socket.data);
        },
        error(socket) {
          server.onClose(socket.data);
        },
      },
    });
    if (this.config.timeout > 0) this.startIdleTimer();
    return this.listener.port;
  }

  get port(): number {
    return this.listener?.port ?? this.config.port;
  }

  // ---- restoring bindings at start ----

  private restoresLeft = 0;
  private restoresFinished: () => void = () => {};
  private restoresDone: Promise<void> = Promise.resolve();

  /** `_bind` requests for every registered binding of `shard` (at start and after a worker restart). */
  private restoreRequests(shard: number): { cmdId: number; args: ArgList }[] {
    const id = shardCommandId.get(SHARD_COMMAND_INDEX.find(Args.of("_bind"), 0)!)!;
    const out: { cmdId: number; args: ArgList }[] = [];
    let pending = this.restoreKeys.get(shard);
    if (pending === undefined) this.restoreKeys.set(shard, (pending = { keys: [], head: 0 }));
    for (const b of this.registry.bindings.values()) {
      const key = Buffer.from(b.key, "latin1");
      if (hashSlot(key, 0, key.length) % this.config.workers !== shard) continue;
      out.push({ cmdId: id, args: Args.of("_bind", key, b.path, b.type, String(b.size), b.writable ? "rw" : "ro") });
      pending.keys.push(b.key);
    }
    if (this.restoresLeft === 0 && out.length > 0) this.restoresDone = new Promise((r) => (this.restoresFinished = r));
    this.restoresLeft += out.length;
    return out;
  }

  /** Keys (latin1, as the registry keeps them) whose `_bind` each shard has not answered yet, in order from `head`. */
  private readonly restoreKeys = new Map<number, { keys: string[]; head: number }>();

  /** The shards' replies to the server's own requests. */
  private onServerReply(shard: number, seq: number, reply: string): void {
    if (seq === SERVER_FLUSH_SEQ) this.flushWaiters.take(reply);
    else this.onRestoreReply(shard, reply);
  }

  private onRestoreReply(shard: number, reply: string): void {
    const pending = this.restoreKeys.get(shard);
    const key = pending !== undefined && pending.head < pending.keys.length ? pending.keys[pending.head++] : "?";
    if (pending !== undefined && pending.head === pending.keys.length) {
      pending.keys = [];
      pending.head = 0;
    }
    if (reply.startsWith("-")) {
      const reason = reply.slice(1).trim();
      this.stats.bindingsFailed.set(key, reason);
      log("warning", `Binding of key '${Buffer.from(key, "latin1").toString("utf8")}' not restored on shard ${shard}: ${reason}`);
    } else this.stats.bindingsFailed.delete(key);
    if (--this.restoresLeft === 0) this.restoresFinished();
  }

  // ---- connections ----

  private onOpen(socket: Socket<Connection>): void {
    this.stats.connectionsReceived++;
    if (this.shuttingDown) {
      socket.end();
      return;
    }
    if (this.connections.size >= this.config.maxclients) {
      this.stats.rejectedConnections++;
      socket.write("-ERR max number of clients reached\r\n");
      socket.end();
      return;
    }
    if (refusedByProtectedMode(this.config, socket.remoteAddress)) {
      this.stats.rejectedConnections++;
      log("verbose", `Refused client ${socket.remoteAddress}: protected mode`);
      socket.write(PROTECTED_MODE_DENIED);
      socket.end();
      return;
    }
    const id = this.nextConnectionId++;
    const conn = new Connection(id, socket, `${socket.remoteAddress}:${(socket as unknown as { remotePort?: number }).remotePort ?? 0}`, { maxBulkLength: this.config.protoMaxBulkLen }, this.config.requirepass !== "");
    socket.data = conn;
    socket.setNoDelay?.(true);
    this.connections.set(id, conn);
  }

  /** Forgets a closed connection (called by the listener). */
  onClose(conn: Connection | undefined): void {
    if (conn === undefined || conn.closed) return;
    conn.closed = true;
    this.connections.delete(conn.id);
    // Its MMAPs' replies will find no connection: their claims end now (bindings they make still arrive as events).
    if (conn.writerClaims !== null) for (const seq of [...conn.writerClaims.keys()]) this.releaseWriterClaim(conn, seq);
    this.dirtyConnections.delete(conn);
  }

  /** Parses and runs every whole command in a socket read, then publishes to the shards once. */
  /** Handles one socket read (called by the listener). */
  onData(conn: Connection | undefined, data: Uint8Array): void {
    if (conn === undefined || conn.closed || conn.closeAfterReplies) return;
    conn.lastActive = Date.now();
    conn.parser.feed(data);
    this.processCommands(conn);
  }

  /** Runs a connection's parsed commands until its input is used up or a command must wait its turn. */
  private processCommands(conn: Connection): void {
    const parser = conn.parser;
    while (conn.held === null) {
      const r = parser.next();
      if (r === 0) break;
      if (r < 0) {
        this.stats.protocolErrors++;
        this.replyNow(conn, (w) => w.error(parser.error));
        conn.closeAfterReplies = true;
        log("verbose", `Protocol error from client ${conn.address}: ${parser.error}`);
        break;
      }
      this.stats.commandsProcessed++;
      this.execute(conn, parser);
      if (conn.closeAfterReplies) break;
    }
    // A held command stops parsing: keep the unparsed rest, as the socket may reuse its buffer.
    if (conn.held !== null) parser.feed(NO_BYTES);
    if (parser.buffered() > this.config.clientQueryBufferLimit) {
      log("warning", `Closing client ${conn.address}: query buffer over ${this.config.clientQueryBufferLimit} bytes`);
      conn.socket.end();
      this.onClose(conn);
      return;
    }
    this.dirtyConnections.add(conn);
    this.endTurnSoon();
    // Bound the replies a client may have outstanding: stop reading until they are written.
    if (!conn.paused && conn.owed > MAX_OWED_REPLIES) this.pauseReading(conn);
  }

  private pauseReading(conn: Connection): void {
    conn.paused = true;
    conn.socket.pause();
  }

  private turnEndScheduled = false;
  private readonly endTurnBound = () => this.endTurn();

  /**
   * Schedules `endTurn` after the socket reads that are ready now, as Redis writes its replies
   * before it sleeps: each shard is woken once and each client gets one write per turn.
   */
  private endTurnSoon(): void {
    if (this.turnEndScheduled) return;
    this.turnEndScheduled = true;
    setImmediate(this.endTurnBound);
  }

  /**
   * Publishes the turn's commands to the shards, waits briefly for their replies (see
   * `ShardPool.awaitReplies`), then writes every client's replies.
   */
  private endTurn(): void {
    this.pool.publishAll();
    this.pool.awaitReplies(TURN_REPLY_WAIT_MS);
    this.turnEndScheduled = false;
    // Replies delivered meanwhile may have released held commands that sent more.
    if (this.pool.hasUnpublished) this.endTurnSoon();
    this.flushDirty();
  }

  private resumeIfDrained(conn: Connection): void {
    if (conn.paused && conn.owed <= 10_000 && conn.backlog === null && !conn.closed) {
      conn.paused = false;
      conn.socket.resume();
    }
  }

  /** Writes a connection's ready replies; drops the client if it stopped reading past the limit. */
  private flushConnection(conn: Connection): void {
    if (!conn.flush(this.config.clientOutputBufferLimit)) {
      this.stats.outputLimitDisconnects++;
      log("warning", `Closing client ${conn.address}: ${conn.unsent} bytes of replies unread (client-output-buffer-limit)`);
      conn.socket.terminate();
      this.onClose(conn);
      return;
    }
    // A client whose replies the socket did not take stops being read until they drain.
    if (conn.backlog !== null && !conn.paused) this.pauseReading(conn);
    this.resumeIfDrained(conn);
  }

  private flushDirty(): void {
    for (const conn of this.dirtyConnections) this.flushConnection(conn);
    this.dirtyConnections.clear();
  }

  /** True when the reply for (conn, seq) would go straight to the client's output (or nowhere). */
  private inTurn(connId: number, seq: number): boolean {
    const conn = this.connections.get(connId);
    return conn === undefined || conn.inTurn(seq);
  }

  /** A shard's reply for (conn, seq). */
  private deliver(connId: number, seq: number, buf: Uint8Array, start: number, end: number): void {
    const conn = this.connections.get(connId);
    if (conn === undefined) return;
    if (conn.writerClaims !== null) this.releaseWriterClaim(conn, seq);
    // A binding change is durable before any later reply leaves.
    this.registry.syncIfNeeded();
    if (!conn.gatherPart(seq, buf, start, end)) conn.complete(seq, buf, start, end);
    if (conn.held !== null && conn.owed === 0) this.runHeld(conn);
    this.dirtyConnections.add(conn);
  }

  /** Runs a held command now that every earlier reply has arrived, then the input that waited behind it. */
  private runHeld(conn: Connection): void {
    const held = conn.held!;
    conn.held = null;
    this.execute(conn, held);
    this.processCommands(conn);
  }

  /** Runs `write` as the reply to a command that the main thread answers, keeping request order. */
  replyNow(conn: Connection, write: (w: ReplyWriter) => void): void {
    this.replyTo(conn, conn.nextSeq++, write);
  }

  /** Writes the reply for `seq` (a number the caller took from `conn.nextSeq`). */
  replyTo(conn: Connection, seq: number, write: (w: ReplyWriter) => void): void {
    const w = this.writerFor(conn, seq);
    write(w);
    this.finish(conn, seq, w);
    this.dirtyConnections.add(conn);
    this.endTurnSoon();
  }

  /** Where the reply for `seq` is written: `out` when it is in turn, else a scratch writer. */
  private writerFor(conn: Connection, seq: number): ReplyWriter {
    if (seq === conn.doneSeq) return conn.out;
    const w = this.scratch;
    w.reset();
    w.proto = conn.out.proto;
    return w;
  }

  /** Completes the reply for `seq` written into `w` by `writerFor`. */
  private finish(conn: Connection, seq: number, w: ReplyWriter): void {
    if (w === conn.out) conn.wroteInTurn();
    else conn.complete(seq, w.buf, 0, w.length);
  }

  // ---- dispatch ----

  private execute(conn: Connection, a: ArgList): void {
    const shardCommand = SHARD_COMMAND_INDEX.find(a, 0);
    const serverCommand = shardCommand === undefined ? SERVER_COMMAND_INDEX.find(a, 0) : undefined;
    const command = shardCommand !== undefined && !shardCommand.internal ? shardCommand : serverCommand;
    if (command === undefined) {
      conn.lastCommand = "unknown";
      this.replyNow(conn, (w) => w.error(unknownCommandError(a)));
      return;
    }
    conn.lastCommand = command.name;
    if (!conn.authenticated && !ALLOWED_BEFORE_AUTH.has(command.name)) {
      this.replyNow(conn, (w) => w.error("NOAUTH Authentication required."));
      return;
    }
    if (command.arity > 0 ? a.argc !== command.arity : a.argc < -command.arity) {
      this.replyNow(conn, (w) => w.error(Errors.wrongArity(command.name)));
      return;
    }
    if (command === shardCommand) this.route(conn, shardCommand, a);
    else {
      const seq = conn.nextSeq++;
      const w = this.writerFor(conn, seq);
      const mark = w.length;
      try {
        if ((command as ServerCommand).run(this, conn, a, w, seq) === DEFERRED) return;
      } catch (e) {
        w.length = mark;
        w.error(e instanceof CommandError ? e.reply : "ERR internal error: " + (e as Error).message);
      }
      this.finish(conn, seq, w);
    }
  }

  /** Sends a shard command to the shard(s) it concerns. */
  private route(conn: Connection, command: ShardCommand, a: ArgList): void {
    const shards = this.config.workers;
    const id = shardCommandId.get(command)!;
    const proto = conn.out.proto;
    if (this.stats.bindingsFailed.size > 0) this.forgetFailedBindings(command, a);
    switch (command.route) {
      case "key": {
        if (command.name === "mmap") {
          // MMAP runs only after this connection's earlier commands are answered, so the
          // bindings it checks against include what they did (a pipelined DEL, say).
          if (conn.owed > 0) {
            conn.held = Args.of(...Array.from({ length: a.argc }, (_, i) => argView(a, i)));
            return;
          }
          if (!this.checkMmap(conn, a)) return;
        }
        this.pool.send(argSlot(a, 1) % shards, conn.id, conn.nextSeq++, proto, id, a, null);
        return;
      }
      case "scan": {
        const cursor = argInt(a, 1);
        if (!(cursor >= 0)) {
          this.replyNow(conn, (w) => w.error("ERR invalid cursor"));
          return;
        }
        this.pool.send(cursor % shards, conn.id, conn.nextSeq++, proto, id, a, null);
        return;
      }
      case "keys": {
        const byShard = new Map<number, number[]>();
        for (let i = 1; i < a.argc; i++) {
          const s = argSlot(a, i) % shards;
          let list = byShard.get(s);
          if (list === undefined) byShard.set(s, (list = [0]));
          list.push(i);
        }
        const seq = conn.nextSeq++;
        if (byShard.size > 1) conn.parked.set(seq, { remaining: byShard.size, parts: [], merge: (parts) => mergeReplies("sum", parts) });
        for (const [s, indices] of byShard) this.pool.send(s, conn.id, seq, proto, id, a, byShard.size > 1 ? indices : null);
        return;
      }
      case "all":
        this.sendToAllShards(conn, conn.nextSeq++, command, a, command.merge ?? "ok");
        return;
    }
  }

  /** Sends `command` to every shard as one reply for `seq`, merged by `merge`. */
  sendToAllShards(conn: Connection, seq: number, command: ShardCommand, a: ArgList, merge: MergeKind, after?: (merged: Uint8Array) => Uint8Array): void {
    const shards = this.config.workers;
    conn.parked.set(seq, {
      remaining: shards,
      parts: [],
      merge: (parts) => {
        const merged = mergeReplies(merge, parts);
        return after ? after(merged) : merged;
      },
    });
    const id = shardCommandId.get(command)!;
    for (let s = 0; s < shards; s++) this.pool.send(s, conn.id, seq, conn.out.proto, id, a, null);
  }

  /**
   * The checks of MMAP that span shards: the path must be inside the data directory and not a
   * directory, device, FIFO or socket (logged when refused), and a file bound writable under one
   * key cannot be bound under another.
   */
  private checkMmap(conn: Connection, a: ArgList): boolean {
    const given = argString(a, 2);
    let abs: string;
    try {
      abs = resolveDataPath(this.dataDir, given, this.config.allowAnyPath);
      refuseSpecialFile(abs, given);
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      // replySafe: a CR or LF in the path must not forge log lines.
      log("warning", `Refused MMAP of '${replySafe(given)}' from client ${conn.address}: ${e.reply}`);
      this.replyNow(conn, (w) => w.error(e.reply));
      return false;
    }
    if (path.dirname(abs) === this.dataDir && path.basename(abs).startsWith(REGISTRY_FILE)) {
      this.replyNow(conn, (w) => w.error(`ERR '${path.basename(abs)}' is the bindings registry's file`));
      return false;
    }
    // Keys are latin1 strings everywhere (any bytes round-trip), as the shards and the registry keep them.
    const key = Buffer.from(a.buf.buffer, a.buf.byteOffset + a.argStart[1], a.argEnd[1] - a.argStart[1]).toString("latin1");
    const writer = this.writers.get(abs) ?? this.pendingWriters.get(abs)?.key;
    if (writer !== undefined && writer !== key) {
      this.replyNow(conn, (w) => w.error(`ERR file is already bound writable to key '${Buffer.from(writer, "latin1").toString("utf8")}'`));
      return false;
    }
    let writable = a.argc === 3;
    for (let i = 4; i < a.argc; i++) if (argIs(a, i, "writable")) writable = true;
    if (writable) {
      // Claim the file until the shard answers, so a pipelined MMAP of it under another key
      // (possibly on another shard) is refused even before this binding is known.
      const claim = this.pendingWriters.get(abs);
      if (claim === undefined) this.pendingWriters.set(abs, { key, count: 1 });
      else claim.count++;
      (conn.writerClaims ??= new Map()).set(conn.nextSeq, abs);
    }
    return true;
  }

  /** Writable MMAPs sent to a shard and not answered yet, by file. */
  private readonly pendingWriters = new Map<string, { key: string; count: number }>();

  /** Drops the claim of a writable MMAP once its reply arrives (the binding, if made, is in `writers` by then). */
  private releaseWriterClaim(conn: Connection, seq: number): void {
    const abs = conn.writerClaims!.get(seq);
    if (abs === undefined) return;
    conn.writerClaims!.delete(seq);
    const claim = this.pendingWriters.get(abs);
    if (claim !== undefined && --claim.count === 0) this.pendingWriters.delete(abs);
  }

  private trackWriter(key: string, given: string, writable: boolean): void {
    if (!writable) return;
    try {
      const file = resolveDataPath(this.dataDir, given, this.config.allowAnyPath);
      this.writers.set(file, key);
      this.writerFileByKey.set(key, file);
    } catch {
      // a path that no longer resolves cannot be bound either
    }
  }

  /** A shard bound or unbound a key: record it durably (synced before the next reply leaves). */
  private onCatalog(event: CatalogEvent): void {
    if (event.op === "unbind") {
      const file = this.writerFileByKey.get(event.key);
      if (file !== undefined) {
        this.writerFileByKey.delete(event.key);
        if (this.writers.get(file) === event.key) this.writers.delete(file);
      }
    } else {
      this.trackWriter(event.key, event.path, event.writable);
      this.stats.bindingsFailed.delete(event.key);
    }
    // A writable MMAP may have created its file: the file's name must be as durable as the record.
    if (this.registry.record(event) && event.op === "bind" && event.writable) {
      const abs = this.absolutePath(event.path);
      if (abs !== null) this.registry.syncDirectoryLater(path.dirname(abs));
    }
  }

  /** The absolute path a binding's file resolves to now, or null if it no longer resolves. */
  private absolutePath(given: string): string | null {
    try {
      return resolveDataPath(this.dataDir, given, this.config.allowAnyPath);
    } catch {
      return null;
    }
  }

  /**
   * A shard's worker died: closes the descriptors it left open on its writable files (syncing
   * them first), so that their locks are free for the worker that restores its bindings.
   */
  private releaseFilesOf(shard: number): void {
    const paths: string[] = [];
    for (const b of this.registry.bindings.values()) {
      if (!b.writable || this.shardOfKey(b.key) !== shard) continue;
      const abs = this.absolutePath(b.path);
      if (abs !== null) paths.push(abs);
    }
    const report = releaseOrphanedFiles(paths);
    for (const failure of report.syncFailures) log("warning", `Shard ${shard}: syncing a file left by the dead worker failed: ${failure}`);
    log("verbose", `Shard ${shard}: closed ${report.closed} files left open by the dead worker`);
  }

  private shardOfKey(key: string): number {
    const bytes = Buffer.from(key, "latin1");
    return hashSlot(bytes, 0, bytes.length) % this.config.workers;
  }

  /**
   * DEL, UNLINK, FLUSHDB and FLUSHALL also forget bindings whose restore failed (their file went
   * missing): no shard holds them, so no shard reports them unbound.
   */
  private forgetFailedBindings(command: ShardCommand, a: ArgList): void {
    const all = command.name === "flushall" || command.name === "flushdb";
    if (!all && command.name !== "del" && command.name !== "unlink") return;
    const keys = all ? [...this.stats.bindingsFailed.keys()] : Array.from({ length: a.argc - 1 }, (_, i) => keyArg(a, i + 1));
    for (const key of keys) {
      if (!this.stats.bindingsFailed.delete(key)) continue;
      this.onCatalog({ op: "unbind", key });
      log("notice", `Forgot the binding of key '${Buffer.from(key, "latin1").toString("utf8")}', whose file could not be bound at start`);
    }
  }

  // ---- idle clients, shutdown ----

  private startIdleTimer(): void {
    this.idleTimer = setInterval(() => {
      const limit = this.config.timeout * 1000;
      if (limit <= 0) return;
      const now = Date.now();
      for (const conn of this.connections.values()) {
        if (conn.owed === 0 && now - conn.lastActive > limit) {
          log("verbose", `Closing idle client ${conn.address}`);
          conn.socket.end();
          this.onClose(conn);
        }
      }
    }, 1000);
  }

  /** Sets the idle timeout (CONFIG SET timeout). */
  setTimeoutSeconds(seconds: number): void {
    this.config.timeout = seconds;
    if (seconds > 0 && this.idleTimer === null) this.startIdleTimer();
  }

  /**
   * Flushes every file (each shard syncs its dirty files) and the registry, then calls `done`.
   * Used by SAVE, BGSAVE and SHUTDOWN; other commands go on meanwhile.
   */
  flushEverything(done: (error: string | null) => void): void {
    let left = this.config.workers;
    let failure: string | null = null;
    this.flushWaiters.push((reply) => {
      // The error's text without its code: SAVE puts "ERR " back in front.
      if (reply.startsWith("-")) failure = reply.slice(1).trim().replace(/^ERR /, "");
      if (--left === 0) {
        if (!this.registry.syncIfNeeded()) failure ??= `cannot write ${this.registryFile}`;
        this.stats.lastSave = Math.floor(Date.now() / 1000);
        done(failure);
      }
    }, this.config.workers);
    const flush = SHARD_COMMAND_INDEX.find(FLUSH_ARGS, 0)!;
    for (let s = 0; s < this.config.workers; s++) this.pool.send(s, 0, SERVER_FLUSH_SEQ, 2, shardCommandId.get(flush)!, FLUSH_ARGS, null);
    this.pool.publishAll();
  }

  private readonly flushWaiters = new FlushWaiters();

  /** Stops accepting clients, flushes replies, files and bindings, and exits with `code`. */
  shutdown(code = 0, reason = "shutdown"): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    log("warning", `User requested ${reason}...`);
    this.listener?.stop(false);
    // No command is read any more, so none runs after the final flush below.
    for (const conn of this.connections.values()) conn.closeAfterReplies = true;
    for (const conn of this.connections.values()) conn.flush(Number.MAX_SAFE_INTEGER);
    // A shard that never answers the final flush must not keep the process alive forever.
    setTimeout(() => {
      log("warning", `Shards did not confirm the final flush within ${SHUTDOWN_FLUSH_MS} ms; exiting anyway`);
      process.exit(1);
    }, SHUTDOWN_FLUSH_MS).unref();
    this.flushEverything((error) => {
      if (error !== null) log("warning", `Flushing files at shutdown: ${error}`);
      this.registry.close();
      this.pool.stop();
      this.exitAfterReplies(code);
    });
  }

  /**
   * Exits once every client has taken the replies it is owed (each connection is closed as it
   * drains), or after SHUTDOWN_DRAIN_MS if a client stops reading. No reply is produced any more:
   * the shards have answered everything sent before the final flush.
   */
  private exitAfterReplies(code: number): void {
    const deadline = Date.now() + SHUTDOWN_DRAIN_MS;
    const poll = () => {
      let pending = 0;
      for (const conn of [...this.connections.values()]) {
        conn.flush(Number.MAX_SAFE_INTEGER);
        if (conn.unsent > 0) pending++;
        else conn.socket.end();
      }
      if (pending > 0 && Date.now() < deadline) {
        setTimeout(poll, 10);
        return;
      }
      if (pending > 0) log("warning", `${pending} clients did not read their last replies`);
      log("notice", "mmapd is now ready to exit, bye bye...");
      // Give the sockets a moment to hand over the last bytes.
      setTimeout(() => process.exit(code), 20);
    };
    poll();
  }

  /** The version string INFO and HELLO report. */
  get version(): string {
    return VERSION;
  }

  /** The registry file path (INFO persistence). */
  get registryFile(): string {
    return path.join(this.dataDir, "bindings.log");
  }
}

/** How long shutdown waits for clients to read the replies they are owed. */
const SHUTDOWN_DRAIN_MS = 5000;
/** How long shutdown waits for the shards to confirm their final flush. */
const SHUTDOWN_FLUSH_MS = 30_000;

const FLUSH_ARGS = Args.of("_flush");
/** Sequence number of the server's own `_flush` requests (its `_bind` restores use 0). */
const SERVER_FLUSH_SEQ = 1;

/** Callbacks waiting for `_flush` replies, which come back on connection 0. */
class FlushWaiters {
  private readonly queue: { cb: (reply: string) => void; left: number }[] = [];
  push(cb: (reply: string) => void, count: number): void {
    this.queue.push({ cb, left: count });
  }
  /** Hands one `_flush` reply to the oldest waiter. */
  take(reply: string): boolean {
    const head = this.queue[0];
    if (head === undefined) return false;
    if (--head.left === 0) this.queue.shift();
    head.cb(reply);
    return true;
  }
}

/** Argument `i` as a key: a latin1 string, so that any bytes round-trip (as shards and the registry keep keys). */
function keyArg(a: ArgList, i: number): string {
  return Buffer.from(a.buf.buffer, a.buf.byteOffset + a.argStart[i], a.argEnd[i] - a.argStart[i]).toString("latin1");
}

/** Redis's unknown-command error: the name, then the first arguments quoted, up to 128 bytes in all. */
function unknownCommandError(a: ArgList): string {
  const clean = (s: string) => s.replace(/[\r\n]/g, " ");
  let args = "";
  for (let i = 1; i < a.argc && args.length < 128; i++) args += `'${clean(argString(a, i)).slice(0, 128 - args.length)}' `;
  return `ERR unknown command '${clean(argString(a, 0)).slice(0, 128)}', with args beginning with: ${args}`;
}
