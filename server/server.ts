/**
 * The server's life on the main thread: start-up (bindings restored, shards started, socket
 * listened on), connections opened, read and closed, the idle-client timer, and shutdown. What
 * happens to a command is dispatch.ts's job; how its reply gets back is turn.ts's.
 */
import fs from "node:fs";
import path from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { Args } from "../core/args.ts";
import { SHARD_COMMAND_INDEX, SHARD_COMMANDS, shardCommandId } from "../core/commands.ts";
import { errnoOf, strerror } from "../core/libc.ts";
import { sigbusGuardStatus } from "../core/sigbus_guard.ts";
import { ShardPool } from "../workers/shard_pool.ts";
import type { FsyncPolicy } from "../workers/wire.ts";
import { BindingCatalog } from "./catalog.ts";
import { Cluster } from "./cluster/cluster.ts";
import { clusterConnectionClosed, clusterHost, clusterStarted } from "./cluster/host.ts";
import { ShardCalls } from "./cluster/shard_calls.ts";
import { ClientPause } from "./client_pause.ts";
import { CommandStats } from "./command_stats.ts";
import { COMMAND_CATALOG, COMMANDS } from "./command_table.ts";
import type { Config } from "./config.ts";
import { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { Dispatcher } from "./dispatch.ts";
import { log } from "./log.ts";
import { Monitors } from "./monitor.ts";
import { PROTECTED_MODE_DENIED, refusedByProtectedMode } from "./protected_mode.ts";
import { SlowLog } from "./slowlog.ts";
import { Stats } from "./stats.ts";
import { Transactions, WATCH_SEQ } from "./transactions.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import { MAX_OWED_REPLIES, Turn } from "./turn.ts";

const NO_BYTES = new Uint8Array(0);

/** The port could not be listened on (what went wrong is logged already, as Redis words it). */
/** How long after the last part of a streamed reply the heap is collected (so RSS goes back after big replies). */
const COLLECT_AFTER_STREAMS_MS = 1000;

export class ListenError extends Error {}

export class MmapdServer implements ServerContext {
  readonly connections = new Map<number, Connection>();
  readonly stats = new Stats();
  readonly commands = COMMAND_CATALOG;
  readonly transactions: Transactions;
  readonly catalog: BindingCatalog;
  readonly pool: ShardPool;
  readonly turn: Turn;
  private readonly dispatcher: Dispatcher;
  private listener: TCPSocketListener<Connection> | null = null;
  private nextConnectionId = 1;
  private idleTimer: ReturnType<typeof setInterval> | null = null;
  private shuttingDown = false;
  /** False until the bindings are restored: connections made meanwhile wait (see start). */
  private started = false;
  private readonly waitingForStart: Connection[] = [];
  readonly slowlog: SlowLog;
  readonly monitors: Monitors;
  readonly pause: ClientPause;
  readonly commandStats: CommandStats;
  readonly runId = [...crypto.getRandomValues(new Uint8Array(20))].map((b) => b.toString(16).padStart(2, "0")).join("");
  readonly dataDir: string;
  readonly cluster: Cluster | null;
  /** Shard commands the server sends for itself (a slot migration's unbinds). */
  readonly shardCalls: ShardCalls;

  constructor(readonly config: Config) {
    // Created in start(), once listening: a server that cannot listen leaves nothing behind.
    this.dataDir = realPathToBe(config.dir);
    this.slowlog = new SlowLog(config);
    this.monitors = new Monitors((conn, line) => {
      conn.out.raw(line, 0, line.length);
      this.turn.touch(conn);
      this.turn.endSoon();
    });
    this.pause = new ClientPause((conn) => this.runHeld(conn));
    this.commandStats = new CommandStats(COMMANDS, SHARD_COMMANDS, config.workers, this.slowlog, this.monitors);
    this.commandStats.setSlowlogThreshold(config.slowlogLogSlowerThan);
    this.catalog = new BindingCatalog(this.dataDir, config, this.stats);
    this.pool = new ShardPool(
      {
        count: config.workers,
        dataDir: this.dataDir,
        allowAnyPath: config.allowAnyPath,
        fsync: config.fsync,
        ringBytes: config.ringBytes,
        timing: this.commandStats.timing,
      },
      {
        deliver: (conn, seq, buf, start, end) => this.deliver(conn, seq, buf, start, end),
        partial: (conn, seq, buf, start, end) => this.deliverPart(conn, seq, buf, start, end),
        abort: (conn, seq, reason) => this.abortStream(conn, seq, reason),
        midReply: (conn, seq) => this.connections.get(conn)?.midReply(seq) ?? false,
        slow: (conn, buf, start) => this.commandStats.shardSlow(this.connections.get(conn), buf, start),
        inTurn: (conn, seq) => this.inTurn(conn, seq),
        catalog: (_shard, event) => this.catalog.onCatalog(event),
        flush: () => this.turn.endSoon(),
        shardRestarted: (shard, reason) => {
          this.stats.shardRestarts++;
          log("warning", `Shard ${shard} worker died (${reason}); restarting it with its bindings`);
          this.transactions.shardDied(shard);
          this.catalog.releaseFilesOf(shard);
        },
      },
      (shard) => this.catalog.restoreRequests(shard),
    );
    this.shardCalls = new ShardCalls(this.pool, config.workers);
    this.cluster = config.clusterEnabled ? new Cluster(config, this.dataDir, clusterHost(this)) : null;
    this.pool.serverReplyHandler = (shard, seq, reply) => {
      if (seq === SERVER_FLUSH_SEQ) this.flushWaiters.take(reply);
      else if (this.shardCalls.owns(seq)) this.shardCalls.take(seq, reply);
      else if (seq !== WATCH_SEQ) this.catalog.onRestoreReply(shard, reply);
    };
    this.turn = new Turn(this.pool, config, this.stats, (conn) => this.onClose(conn));
    this.transactions = new Transactions(config, this.cluster, this.pool, this.catalog, (conn, command, a, w) => this.dispatcher.runInto(conn, command, a, w),
      (conn, command, a) => this.dispatcher.countInto(conn, command, a),
    );
    this.dispatcher = new Dispatcher(this, config, this.pool, this.turn, this.catalog);
  }

  /**
   * Listens, then creates the data directory, loads the bindings and starts the shards; resolves
   * with the port listened on. Listening comes first, as in Redis: a port that is taken stops the
   * start before anything is written. Clients that connect meanwhile wait until the bindings are
   * restored.
   */
  async start(): Promise<number> {
    this.listener = this.listen();
    fs.mkdirSync(this.dataDir, { recursive: true });
    this.catalog.load();
    this.cluster?.load();
    await this.pool.start();
    const guard = sigbusGuardStatus();
    if (guard !== "on") log("warning", `SIGBUS guard ${guard}: a bound file shrunk by another process can crash the server`);
    await this.catalog.restoresDone;
    this.logRestores();
    this.started = true;
    if (this.cluster !== null) clusterStarted(this.cluster);
    for (const conn of this.waitingForStart.splice(0)) {
      if (conn.closed) continue;
      conn.socket.resume();
      this.processCommands(conn);
    }
    if (this.config.timeout > 0) this.startIdleTimer();
    // The instantaneous rates and the memory peak (INFO), sampled as Redis does, ten times a second.
    setInterval(() => this.stats.sample(this.commandStats.commandsProcessed()), 100).unref();
    return this.listener.port;
  }

  /** Opens the listening socket; fails with Redis's text (`Could not create server TCP listening socket ...`). */
  private listen(): TCPSocketListener<Connection> {
    const server = this;
    try {
      return Bun.listen<Connection>({
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
            if (socket.data !== undefined) server.turn.resumeIfDrained(socket.data);
          },
          close(socket) {
            server.onClose(socket.data);
          },
          error(socket) {
            server.onClose(socket.data);
          },
        },
      });
    } catch (e) {
      const { bind, port } = this.config;
      log("warning", `Warning: Could not create server TCP listening socket ${bind}:${port}: bind: ${strerror(errnoOf(e))}`);
      throw new ListenError(`Failed listening on port ${port} (TCP), aborting.`);
    }
  }

  /** The start-up log's account of the bindings: how many were restored, and which failed. */
  private logRestores(): void {
    const failed = [...this.stats.bindingsFailed.keys()];
    const restored = this.catalog.registry.bindings.size - failed.length;
    const names = failed.map((k) => `'${Buffer.from(k, "latin1").toString("utf8")}'`).join(", ");
    const restoredLine = `Restored ${restored} bindings from ${this.registryFile}`;
    if (failed.length === 0) log("notice", restoredLine);
    else log("warning", `${restoredLine}; ${failed.length} failed: ${names} (see INFO persistence)`);
  }

  get port(): number {
    return this.listener?.port ?? this.config.port;
  }

  // ---- what server commands see (ServerContext) ----

  bindingCount(): number {
    return this.catalog.registry.bindings.size;
  }

  shardStats(): { sent: number; inFlight: number; alive: boolean }[] {
    return this.pool.stats();
  }

  setFsync(policy: FsyncPolicy): void {
    this.pool.setFsync(policy);
  }

  setSlowlogThreshold(micros: number): void {
    this.commandStats.setSlowlogThreshold(micros);
  }

  resetStats(): void {
    this.stats.reset();
    this.commandStats.reset();
  }

  closeClient(conn: Connection): void {
    conn.socket.end();
    this.onClose(conn);
  }

  crashShard(shard: number): void {
    this.pool.crash(shard);
  }

  replyTo(conn: Connection, seq: number, write: (w: ReplyWriter) => void): void {
    this.turn.replyTo(conn, seq, write);
  }

  /** The registry file path (INFO persistence). */
  get registryFile(): string {
    return path.join(this.dataDir, "bindings.log");
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
    const address = `${socket.remoteAddress}:${socket.remotePort}`;
    const limits = { maxBulkLength: this.config.protoMaxBulkLen };
    const conn = new Connection(id, socket, address, limits, this.config.requirepass !== "", this.stats);
    socket.data = conn;
    socket.setNoDelay?.(true);
    this.connections.set(id, conn);
    log("verbose", `Accepted ${address}`);
    if (!this.started) {
      // The bindings are still being restored: this client's commands wait for them.
      socket.pause();
      this.waitingForStart.push(conn);
    }
  }

  /** Forgets a closed connection (called by the listener). */
  onClose(conn: Connection | undefined): void {
    if (conn === undefined || conn.closed) return;
    conn.closed = true;
    this.connections.delete(conn.id);
    this.transactions.unwatch(conn);
    log("verbose", `Client closed connection id=${conn.id} addr=${conn.address} name=${conn.name}`);
    // Its MMAPs' replies will find no connection: their claims end now (bindings they make still arrive as events).
    if (conn.writerClaims !== null) for (const seq of [...conn.writerClaims.keys()]) this.catalog.releaseWriterClaims(conn, seq);
    if (this.cluster !== null) clusterConnectionClosed(this.cluster, conn);
    // A streamed reply still in progress stops being produced.
    if (conn.streamed) this.pool.cancelStreams(conn.id);
    this.turn.forget(conn);
  }

  /** Handles one socket read (called by the listener). */
  onData(conn: Connection | undefined, data: Uint8Array): void {
    if (conn === undefined || conn.closed || conn.closeAfterReplies) return;
    conn.lastActive = Date.now();
    this.stats.netInputBytes += data.length;
    conn.parser.feed(data);
    if (!this.started) {
      // Kept until the start is done (the socket may reuse its buffer).
      conn.parser.feed(NO_BYTES);
      return;
    }
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
        this.commandStats.errorReply(parser.error);
        this.turn.replyNow(conn, (w) => w.error(parser.error));
        conn.closeAfterReplies = true;
        log("verbose", `Protocol error from client ${conn.address}: ${parser.error}`);
        break;
      }
      this.dispatcher.execute(conn, parser);
      if (conn.closeAfterReplies) break;
    }
    this.commandStats.batchDone();
    // A held command stops parsing: keep the unparsed rest, as the socket may reuse its buffer.
    if (conn.held !== null) parser.feed(NO_BYTES);
    if (parser.buffered() > this.config.clientQueryBufferLimit) {
      log("warning", `Closing client ${conn.address}: query buffer over ${this.config.clientQueryBufferLimit} bytes`);
      conn.socket.end();
      this.onClose(conn);
      return;
    }
    this.turn.touch(conn);
    this.turn.endSoon();
    // Bound the replies a client may have outstanding: stop reading until they are written.
    if (!conn.paused && conn.owed > MAX_OWED_REPLIES) this.turn.pauseReading(conn);
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
    if (conn.mmapsInFlight !== null) this.catalog.mmapAnswered(conn, seq, buf, start, end);
    // A binding change is durable before any later reply leaves.
    this.catalog.registry.syncIfNeeded();
    if (!conn.gatherPart(seq, buf, start, end)) conn.complete(seq, buf, start, end);
    this.runHeld(conn);
    this.turn.touch(conn);
  }

  /** A part of a streamed reply for (conn, seq): written out now if in turn (see Connection.partial). */
  private deliverPart(connId: number, seq: number, buf: Uint8Array, start: number, end: number): void {
    const conn = this.connections.get(connId);
    if (conn === undefined) return;
    conn.partial(seq, buf, start, end);
    this.turn.touch(conn);
    // Once streams have been quiet for a while, collect: their chunks' garbage is most of the heap.
    if (this.collectAfterStreams === null) {
      this.collectAfterStreams = setTimeout(() => {
        this.collectAfterStreams = null;
        Bun.gc(true);
      }, COLLECT_AFTER_STREAMS_MS);
      this.collectAfterStreams.unref();
    } else this.collectAfterStreams.refresh();
  }

  private collectAfterStreams: ReturnType<typeof setTimeout> | null = null;

  /** A streamed reply that cannot be finished: the client has part of it, so it is dropped. */
  private abortStream(connId: number, seq: number, reason: string): void {
    const conn = this.connections.get(connId);
    if (conn === undefined) return;
    log("warning", `Closing client ${conn.address}: its reply ${seq} could not be finished (${reason.trim()})`);
    conn.socket.terminate();
    this.onClose(conn);
  }

  /** Runs a held command (MMAP, CLIENT PAUSE) once every earlier reply has arrived, then the input that waited behind it. */
  private runHeld(conn: Connection): void {
    if (conn.held === null || conn.owed !== 0 || conn.closed) return;
    const held = conn.held;
    conn.held = null;
    this.dispatcher.execute(conn, held);
    this.processCommands(conn);
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
        if (!this.catalog.registry.syncIfNeeded()) failure ??= `cannot write ${this.registryFile}`;
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
      this.catalog.registry.close();
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

/**
 * The real path `dir` will have once created: the real path of its nearest existing ancestor,
 * with the rest appended (so nothing is created before the server listens).
 */
function realPathToBe(dir: string): string {
  const missing: string[] = [];
  let at = path.resolve(dir);
  for (;;) {
    try {
      return path.join(fs.realpathSync(at), ...missing.reverse());
    } catch (e) {
      const parent = path.dirname(at);
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || parent === at) throw e;
      missing.push(path.basename(at));
      at = parent;
    }
  }
}
