/**
 * The turn: how replies reach clients. Commands parsed from the socket reads that are ready now
 * are published to the shards once; the turn then waits briefly for their replies and writes
 * each client's replies with one socket write, always in request order (see Connection).
 */
import { ReplyWriter } from "../protocol/reply_writer.ts";
import type { ShardPool } from "../workers/shard_pool.ts";
import type { Config } from "./config.ts";
import type { Connection } from "./connection.ts";
import { log } from "./log.ts";
import type { Stats } from "./stats.ts";

/** Replies a client may be owed before its socket stops being read. */
export const MAX_OWED_REPLIES = 100_000;
/** Unsent bytes past which a client's streamed replies are held in the shards; they go on below a quarter of it. */
const STREAM_HOLD_BYTES = 8 * 1024 * 1024;
/** Owed replies under which a paused client is read again. */
const RESUME_OWED_REPLIES = 10_000;

/**
 * How long a turn waits for the shards to answer its commands before writing replies; past it,
 * replies are written as they arrive. Only the turn's own commands are waited for.
 */
const TURN_REPLY_WAIT_MS = 5;

export class Turn {
  private readonly dirty = new Set<Connection>();
  private readonly scratch = new ReplyWriter(4096);
  private endScheduled = false;
  private readonly endBound = () => this.end();

  constructor(
    private readonly pool: ShardPool,
    private readonly config: Config,
    private readonly stats: Stats,
    /** Forgets a connection the turn had to drop. */
    private readonly drop: (conn: Connection) => void,
  ) {}

  /** Notes that `conn` has replies to write at the end of the turn. */
  touch(conn: Connection): void {
    this.dirty.add(conn);
  }

  /** Forgets a closed connection. */
  forget(conn: Connection): void {
    this.dirty.delete(conn);
  }

  /**
   * Schedules the end of the turn after the socket reads that are ready now, as Redis writes its
   * replies before it sleeps: each shard is woken once and each client gets one write per turn.
   */
  endSoon(): void {
    if (this.endScheduled) return;
    this.endScheduled = true;
    setImmediate(this.endBound);
  }

  /** Publishes the turn's commands, waits briefly for their replies, then writes every client's. */
  private end(): void {
    this.pool.publishAll();
    this.pool.awaitReplies(TURN_REPLY_WAIT_MS);
    this.endScheduled = false;
    // Replies delivered meanwhile may have released held commands that sent more.
    if (this.pool.hasUnpublished) this.endSoon();
    for (const conn of this.dirty) this.flush(conn);
    this.dirty.clear();
  }

  /** Writes a connection's ready replies; drops the client if it stopped reading past the limit. */
  private flush(conn: Connection): void {
    const withinLimit = conn.flush(this.config.clientOutputBufferLimit);
    if (conn.writeFailed) {
      this.drop(conn);
      return;
    }
    if (!withinLimit) {
      this.stats.outputLimitDisconnects++;
      log("warning", `Closing client ${conn.address}: ${conn.unsent} bytes of replies unread (client-output-buffer-limit)`);
      conn.socket.terminate();
      this.drop(conn);
      return;
    }
    // A client whose replies the socket did not take stops being read until they drain.
    if (conn.backlog !== null && !conn.paused) this.pauseReading(conn);
    this.resumeIfDrained(conn);
  }

  /** Holds a slow reader's streamed replies in the shards, and lets them go once it has read most of what waits. */
  private pace(conn: Connection): void {
    if (!conn.streamed || conn.closed) return;
    const unsent = conn.unsent;
    if (!conn.streamsHeld && unsent > STREAM_HOLD_BYTES) conn.streamsHeld = true;
    else if (conn.streamsHeld && unsent <= STREAM_HOLD_BYTES / 4) conn.streamsHeld = false;
    else return;
    this.pool.paceStreams(conn.id, conn.streamsHeld);
  }

  pauseReading(conn: Connection): void {
    conn.paused = true;
    conn.socket.pause();
  }

  resumeIfDrained(conn: Connection): void {
    this.pace(conn);
    if (conn.paused && conn.owed <= RESUME_OWED_REPLIES && conn.backlog === null && !conn.closed) {
      conn.paused = false;
      conn.socket.resume();
    }
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
    this.dirty.add(conn);
    this.endSoon();
  }

  /** Where the reply for `seq` is written: `out` when it is in turn, else a scratch writer. */
  writerFor(conn: Connection, seq: number): ReplyWriter {
    if (seq === conn.doneSeq) return conn.out;
    const w = this.scratch;
    w.reset();
    w.proto = conn.out.proto;
    return w;
  }

  /** Completes the reply for `seq` written into `w` by `writerFor`. */
  finish(conn: Connection, seq: number, w: ReplyWriter): void {
    if (w === conn.out) conn.wroteInTurn();
    else conn.complete(seq, w.buf, 0, w.length);
  }
}
