/**
 * The server's client connections: each opened (or refused), read, and closed; its parsed
 * commands handed to dispatch in order; the shards' replies delivered to it; commands held back
 * (MMAP, CLIENT PAUSE) run once their turn comes; idle clients closed.
 */
import type { Socket } from "bun";
import type { ShardPool } from "../workers/shard_pool.ts";
import type { BindingCatalog } from "./catalog.ts";
import type { Cluster } from "./cluster/cluster.ts";
import { clusterConnectionClosed } from "./cluster/host.ts";
import type { CommandStats } from "./command_stats.ts";
import type { Config } from "./config.ts";
import { Connection } from "./connection.ts";
import type { Dispatcher } from "./dispatch.ts";
import { log } from "./log.ts";
import { PROTECTED_MODE_DENIED, refusedByProtectedMode } from "./protected_mode.ts";
import type { Stats } from "./stats.ts";
import type { Transactions } from "./transactions.ts";
import { MAX_OWED_REPLIES, type Turn } from "./turn.ts";

const NO_BYTES = new Uint8Array(0);

/** How long after the last part of a streamed reply the heap is collected (so RSS goes back after big replies). */
const COLLECT_AFTER_STREAMS_MS = 1000;

/** What the clients' handling uses of the server. */
export interface ClientsDeps {
  readonly config: Config;
  readonly stats: Stats;
  readonly commandStats: CommandStats;
  readonly catalog: BindingCatalog;
  readonly pool: ShardPool;
  readonly turn: Turn;
  readonly dispatcher: Dispatcher;
  readonly transactions: Transactions;
  readonly cluster: Cluster | null;
}

export class Clients {
  readonly byId = new Map<number, Connection>();
  private nextConnectionId = 1;
  /** False until the bindings are restored: connections made meanwhile wait (see serve). */
  private started = false;
  private readonly waitingForStart: Connection[] = [];
  /** True once shutdown began: new connections are closed at once. */
  refusing = false;
  private idleTimer: ReturnType<typeof setInterval> | null = null;
  private collectAfterStreams: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly server: ClientsDeps) {}

  /** The bindings are restored: the clients that connected meanwhile are read from now on. */
  serve(): void {
    this.started = true;
    for (const conn of this.waitingForStart.splice(0)) {
      if (conn.closed) continue;
      conn.socket.resume();
      this.processCommands(conn);
    }
  }

  /** A client connected (called by the listener). */
  open(socket: Socket<Connection>): void {
    const { config, stats } = this.server;
    stats.connectionsReceived++;
    if (this.refusing) {
      socket.end();
      return;
    }
    if (this.byId.size >= config.maxclients) {
      stats.rejectedConnections++;
      socket.write("-ERR max number of clients reached\r\n");
      socket.end();
      return;
    }
    if (refusedByProtectedMode(config, socket.remoteAddress)) {
      stats.rejectedConnections++;
      log("verbose", `Refused client ${socket.remoteAddress}: protected mode`);
      socket.write(PROTECTED_MODE_DENIED);
      socket.end();
      return;
    }
    const id = this.nextConnectionId++;
    const address = `${socket.remoteAddress}:${socket.remotePort}`;
    const limits = { maxBulkLength: config.protoMaxBulkLen };
    const conn = new Connection(id, socket, address, limits, config.requirepass !== "", stats);
    socket.data = conn;
    socket.setNoDelay?.(true);
    this.byId.set(id, conn);
    log("verbose", `Accepted ${address}`);
    if (!this.started) {
      // The bindings are still being restored: this client's commands wait for them.
      socket.pause();
      this.waitingForStart.push(conn);
    }
  }

  /** Forgets a closed connection (called by the listener). */
  close(conn: Connection | undefined): void {
    if (conn === undefined || conn.closed) return;
    const { catalog, cluster } = this.server;
    conn.closed = true;
    this.byId.delete(conn.id);
    this.server.transactions.unwatch(conn);
    log("verbose", `Client closed connection id=${conn.id} addr=${conn.address} name=${conn.name}`);
    // Its MMAPs' replies will find no connection: their claims end now (bindings they make still arrive as events).
    if (conn.writerClaims !== null) for (const seq of [...conn.writerClaims.keys()]) catalog.releaseWriterClaims(conn, seq);
    if (cluster !== null) clusterConnectionClosed(cluster, conn);
    // A streamed reply still in progress stops being produced.
    if (conn.streamed) this.server.pool.cancelStreams(conn.id);
    this.server.turn.forget(conn);
  }

  /** Handles one socket read (called by the listener). */
  data(conn: Connection | undefined, data: Uint8Array): void {
    if (conn === undefined || conn.closed || conn.closeAfterReplies) return;
    conn.lastActive = Date.now();
    this.server.stats.netInputBytes += data.length;
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
    const { config, commandStats, turn } = this.server;
    const parser = conn.parser;
    while (conn.held === null) {
      const r = parser.next();
      if (r === 0) break;
      if (r < 0) {
        this.server.stats.protocolErrors++;
        commandStats.errorReply(parser.error);
        turn.replyNow(conn, (w) => w.error(parser.error));
        conn.closeAfterReplies = true;
        log("verbose", `Protocol error from client ${conn.address}: ${parser.error}`);
        break;
      }
      this.server.dispatcher.execute(conn, parser);
      if (conn.closeAfterReplies) break;
    }
    commandStats.batchDone();
    // A held command stops parsing: keep the unparsed rest, as the socket may reuse its buffer.
    if (conn.held !== null) parser.feed(NO_BYTES);
    if (parser.buffered() > config.clientQueryBufferLimit) {
      log("warning", `Closing client ${conn.address}: query buffer over ${config.clientQueryBufferLimit} bytes`);
      conn.socket.end();
      this.close(conn);
      return;
    }
    turn.touch(conn);
    turn.endSoon();
    // Bound the replies a client may have outstanding: stop reading until they are written.
    if (!conn.paused && conn.owed > MAX_OWED_REPLIES) turn.pauseReading(conn);
  }

  /** True when the reply for (conn, seq) would go straight to the client's output (or nowhere). */
  inTurn(connId: number, seq: number): boolean {
    const conn = this.byId.get(connId);
    return conn === undefined || conn.inTurn(seq);
  }

  /** A shard's reply for (conn, seq). */
  deliver(connId: number, seq: number, buf: Uint8Array, start: number, end: number): void {
    const conn = this.byId.get(connId);
    if (conn === undefined) return;
    const catalog = this.server.catalog;
    if (conn.mmapsInFlight !== null) catalog.mmapAnswered(conn, seq, buf, start, end);
    // A binding change is durable before any later reply leaves.
    catalog.registry.syncIfNeeded();
    if (!conn.gatherPart(seq, buf, start, end)) conn.complete(seq, buf, start, end);
    this.runHeld(conn);
    this.server.turn.touch(conn);
  }

  /** A part of a streamed reply for (conn, seq): written out now if in turn (see Connection.partial). */
  deliverPart(connId: number, seq: number, buf: Uint8Array, start: number, end: number): void {
    const conn = this.byId.get(connId);
    if (conn === undefined) return;
    conn.partial(seq, buf, start, end);
    this.server.turn.touch(conn);
    // Once streams have been quiet for a while, collect: their chunks' garbage is most of the heap.
    if (this.collectAfterStreams === null) {
      this.collectAfterStreams = setTimeout(() => {
        this.collectAfterStreams = null;
        Bun.gc(true);
      }, COLLECT_AFTER_STREAMS_MS);
      this.collectAfterStreams.unref();
    } else this.collectAfterStreams.refresh();
  }

  /** A streamed reply that cannot be finished: the client has part of it, so it is dropped. */
  abortStream(connId: number, seq: number, reason: string): void {
    const conn = this.byId.get(connId);
    if (conn === undefined) return;
    log("warning", `Closing client ${conn.address}: its reply ${seq} could not be finished (${reason.trim()})`);
    conn.socket.terminate();
    this.close(conn);
  }

  /** Runs a held command (MMAP, CLIENT PAUSE) once every earlier reply has arrived, then the input that waited behind it. */
  runHeld(conn: Connection): void {
    if (conn.held === null || conn.owed !== 0 || conn.closed) return;
    const held = conn.held;
    conn.held = null;
    this.server.dispatcher.execute(conn, held);
    this.processCommands(conn);
  }

  /** Closes clients idle longer than `timeout` seconds (checked every second, once the timeout is set). */
  watchIdle(): void {
    if (this.idleTimer !== null) return;
    this.idleTimer = setInterval(() => {
      const limit = this.server.config.timeout * 1000;
      if (limit <= 0) return;
      const now = Date.now();
      for (const conn of this.byId.values()) {
        if (conn.owed === 0 && now - conn.lastActive > limit) {
          log("verbose", `Closing idle client ${conn.address}`);
          conn.socket.end();
          this.close(conn);
        }
      }
    }, 1000);
  }
}
