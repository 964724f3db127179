/**
 * The server's life on the main thread: its parts wired together, start-up (bindings restored,
 * shards started, socket listened on), and shutdown. The clients' connections are clients.ts's
 * job; what happens to a command is dispatch.ts's; how its reply gets back is turn.ts's.
 */
import fs from "node:fs";
import path from "node:path";
import type { TCPSocketListener } from "bun";
import { SHARD_COMMANDS } from "../core/commands.ts";
import { errnoOf, strerror } from "../core/libc.ts";
import { sigbusGuardStatus } from "../core/sigbus_guard.ts";
import { ShardPool } from "../workers/shard_pool.ts";
import type { FsyncPolicy } from "../workers/wire.ts";
import { BindingCatalog } from "./catalog.ts";
import { Cluster } from "./cluster/cluster.ts";
import { clusterHost, clusterStarted } from "./cluster/host.ts";
import { ShardCalls } from "./cluster/shard_calls.ts";
import { ClientPause } from "./client_pause.ts";
import { CommandStats } from "./command_stats.ts";
import { COMMAND_CATALOG, COMMANDS } from "./command_table.ts";
import type { Config } from "./config.ts";
import { Clients } from "./clients.ts";
import type { Connection } from "./connection.ts";
import type { ServerContext } from "./context.ts";
import { Dispatcher } from "./dispatch.ts";
import { log } from "./log.ts";
import { Monitors } from "./monitor.ts";
import { exitAfterReplies, FlushAll, SERVER_FLUSH_SEQ, SHUTDOWN_FLUSH_MS } from "./shutdown.ts";
import { SlowLog } from "./slowlog.ts";
import { Stats } from "./stats.ts";
import { Transactions, WATCH_SEQ } from "./transactions.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import { Turn } from "./turn.ts";

/** The port could not be listened on (what went wrong is logged already, as Redis words it). */
export class ListenError extends Error {}

export class MmapdServer implements ServerContext {
  readonly stats = new Stats();
  readonly commands = COMMAND_CATALOG;
  readonly transactions: Transactions;
  readonly catalog: BindingCatalog;
  readonly pool: ShardPool;
  readonly turn: Turn;
  private readonly dispatcher: Dispatcher;
  private readonly clients: Clients;
  private readonly flushAll: FlushAll;
  private listener: TCPSocketListener<Connection> | null = null;
  private shuttingDown = false;
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
    this.pause = new ClientPause((conn) => this.clients.runHeld(conn));
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
        formatThreads: config.streamFormatThreads,
        timing: this.commandStats.timing,
      },
      {
        deliver: (conn, seq, buf, start, end) => this.clients.deliver(conn, seq, buf, start, end),
        partial: (conn, seq, buf, start, end) => this.clients.deliverPart(conn, seq, buf, start, end),
        abort: (conn, seq, reason) => this.clients.abortStream(conn, seq, reason),
        midReply: (conn, seq) => this.connections.get(conn)?.midReply(seq) ?? false,
        slow: (conn, buf, start) => this.commandStats.shardSlow(this.connections.get(conn), buf, start),
        inTurn: (conn, seq) => this.clients.inTurn(conn, seq),
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
      if (seq === SERVER_FLUSH_SEQ) this.flushAll.take(reply);
      else if (this.shardCalls.owns(seq)) this.shardCalls.take(seq, reply);
      else if (seq !== WATCH_SEQ) this.catalog.onRestoreReply(shard, reply);
    };
    this.turn = new Turn(this.pool, config, this.stats, (conn) => this.clients.close(conn));
    this.transactions = new Transactions(
      config,
      this.cluster,
      this.pool,
      this.catalog,
      (conn, command, a, w) => this.dispatcher.runInto(conn, command, a, w),
      (conn, command, a) => this.dispatcher.countInto(conn, command, a),
    );
    this.dispatcher = new Dispatcher(this, config, this.pool, this.turn, this.catalog);
    const { stats, commandStats, catalog, pool, turn, dispatcher, transactions, cluster } = this;
    this.clients = new Clients({ config, stats, commandStats, catalog, pool, turn, dispatcher, transactions, cluster });
    this.flushAll = new FlushAll(config.workers, this.pool, this.catalog, this.stats, this.registryFile);
  }

  /** Every client connected now. */
  get connections(): ReadonlyMap<number, Connection> {
    return this.clients.byId;
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
    if (this.cluster !== null) clusterStarted(this.cluster);
    this.clients.serve();
    if (this.config.timeout > 0) this.clients.watchIdle();
    // The instantaneous rates and the memory peak (INFO), sampled as Redis does, ten times a second.
    setInterval(() => this.stats.sample(this.commandStats.commandsProcessed()), 100).unref();
    return this.listener.port;
  }

  /** Opens the listening socket; fails with Redis's text (`Could not create server TCP listening socket ...`). */
  private listen(): TCPSocketListener<Connection> {
    const clients = this.clients;
    const turn = this.turn;
    try {
      return Bun.listen<Connection>({
        hostname: this.config.bind,
        port: this.config.port,
        socket: {
          open(socket) {
            clients.open(socket);
          },
          data(socket, data) {
            try {
              clients.data(socket.data, data);
            } catch (e) {
              // A bug while serving one client must not take the others down: drop that client.
              log("warning", `Internal error serving client ${socket.data?.address}: ${(e as Error).stack ?? e}; closing it`);
              socket.terminate();
              clients.close(socket.data);
            }
          },
          drain(socket) {
            const conn = socket.data;
            if (conn === undefined) return;
            conn.drainBacklog();
            if (conn.writeFailed) clients.close(conn);
            else turn.resumeIfDrained(conn);
          },
          close(socket) {
            clients.close(socket.data);
          },
          error(socket) {
            clients.close(socket.data);
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
    this.clients.close(conn);
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

  /** Sets the idle timeout (CONFIG SET timeout). */
  setTimeoutSeconds(seconds: number): void {
    this.config.timeout = seconds;
    if (seconds > 0) this.clients.watchIdle();
  }

  /** Flushes every file and the registry, then calls `done` (SAVE, BGSAVE, SHUTDOWN). */
  flushEverything(done: (error: string | null) => void): void {
    this.flushAll.run(done);
  }

  /** Stops accepting clients, flushes replies, files and bindings, and exits with `code`. */
  shutdown(code = 0, reason = "shutdown"): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.clients.refusing = true;
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
      exitAfterReplies(this.connections, code);
    });
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
