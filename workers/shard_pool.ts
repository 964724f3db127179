/**
 * The main thread's side of the shard workers: starts them, puts commands on their request
 * rings, drains their reply rings, and brings a worker back if it dies.
 *
 * Commands from one socket read are reserved on the rings and published together (`publishAll`),
 * so a pipeline costs one wake-up per shard, not one per command. Replies are drained when a
 * shard signals (Atomics.waitAsync) and handed to the `ReplySink` in each shard's order.
 */
import { Worker } from "node:worker_threads";
import type { ArgList } from "../core/args.ts";
import type { CatalogEvent } from "../core/shard.ts";
import { BARRIER_WORDS } from "../core/commands/transaction.ts";
import { sigbusGuardHandle } from "../core/sigbus_guard.ts";
import { Ring } from "./ring.ts";
import type { FsyncPolicy, ShardMessage, ShardWorkerConfig } from "./wire.ts";
import {
  FLAG_OUT_OF_BAND,
  KIND_ABORT,
  KIND_EVENT,
  KIND_PARTIAL,
  KIND_REPLY,
  KIND_SLOW,
  REPLY_HEADER_WORDS,
  REQUEST_HEADER_WORDS,
} from "./wire.ts";

/** Where replies go: the server's connections. */
export interface ReplySink {
  /** A reply for (conn, seq): bytes [start, end) of `buf`, valid only during the call. */
  deliver(conn: number, seq: number, buf: Uint8Array, start: number, end: number): void;
  /** A part of a streamed reply for (conn, seq), not its end: bytes [start, end) of `buf`, valid only during the call. */
  partial(conn: number, seq: number, buf: Uint8Array, start: number, end: number): void;
  /** True when part of the streamed reply for (conn, seq) came (an error cannot follow it). */
  midReply(conn: number, seq: number): boolean;
  /** A streamed reply for (conn, seq) that cannot be finished (`reason`): the client must be dropped. */
  abort(conn: number, seq: number, reason: string): void;
  /** A slow-log entry for a command of `conn`: bytes of `buf` from `start` (see command_timing.ts). */
  slow(conn: number, buf: Uint8Array, start: number): void;
  /** A bindings change, applied before any later reply of that shard is delivered. */
  catalog(shard: number, event: CatalogEvent): void;
  /** True when a reply for (conn, seq) would be written at once rather than parked (or the connection is gone). */
  inTurn(conn: number, seq: number): boolean;
  /** End of a drain: write out what the delivered replies produced. */
  flush(): void;
  /** A shard's worker died (and is being restarted); its commands in flight were answered with errors. */
  shardRestarted(shard: number, reason: string): void;
}

export interface ShardPoolOptions {
  count: number;
  dataDir: string;
  allowAnyPath: boolean;
  fsync: FsyncPolicy;
  /** Bytes per ring. */
  ringBytes: number;
  /** Threads of each shard's format pool (0: none). */
  formatThreads: number;
  /** Each shard's timing buffer (see command_timing.ts). */
  timing: SharedArrayBuffer[];
}

/** A request that did not fit the ring when it was sent; it goes in order once there is room. */
interface Overflow {
  payload: Uint8Array;
  outOfBand: boolean;
}

/** Transactions across shards that can be in flight at once. */
export const TRANSACTION_SLOTS = 4096;

/** How long `awaitReplies` polls a reply ring before it blocks on it. */
const REPLY_SPIN_MS = 0.02;
/**
 * A shard whose turns have recently taken longer than this to answer (big VMGETs, a long
 * command) is not waited for: the main thread goes back to reading sockets, and its replies
 * arrive through the event loop (a wake-up costs tens of microseconds, nothing next to such a
 * turn), so other clients are not held up behind it.
 */
const WORTH_WAITING_MS = 1;
/** A turn's answer time counts at most this much, so one long stream does not keep its shard unwaited for long. */
const TURN_TIME_CAP_MS = 10;

class ShardHost {
  requests!: Ring;
  replies!: Ring;
  worker!: Worker;
  /** (conn, seq) of every request in flight, oldest first: answered with errors if the worker dies. */
  inFlight = new Int32Array(2 * 1024);
  inFlightHead = 0;
  inFlightCount = 0;
  overflow: Overflow[] = [];
  needsPublish = false;
  /** Requests sent since the last `awaitReplies`. */
  sentThisTurn = 0;
  /** Whether the current `awaitReplies` waits for this shard's replies. */
  awaited = false;
  alive = false;
  commandsSent = 0;
  /** Recent time from publishing a turn's requests to their last reply (a moving average, ms). */
  turnMs = 0;
  /** The turn being timed: when it was published (0: none), and the answers that complete it. */
  private turnPublishedAt = 0;
  private turnAnswers = 0;
  private answersSinceStart = 0;
  private sentSinceStart = 0;

  /** Starts timing the requests published now, unless a turn is being timed already. */
  timeTurn(): void {
    if (this.turnPublishedAt !== 0 || this.sentSinceStart === this.answersSinceStart) return;
    this.turnPublishedAt = performance.now();
    this.turnAnswers = this.sentSinceStart;
  }

  /** Forgets turn timing (a new worker starts with nothing in flight). */
  resetTurnTiming(): void {
    this.turnMs = 0;
    this.turnPublishedAt = 0;
    this.answersSinceStart = 0;
    this.sentSinceStart = 0;
  }

  trackSent(conn: number, seq: number): void {
    const cap = this.inFlight.length >> 1;
    if (this.inFlightCount === cap) {
      const grown = new Int32Array(this.inFlight.length * 2);
      for (let k = 0; k < this.inFlightCount; k++) {
        const at = ((this.inFlightHead + k) % cap) * 2;
        grown[2 * k] = this.inFlight[at];
        grown[2 * k + 1] = this.inFlight[at + 1];
      }
      this.inFlight = grown;
      this.inFlightHead = 0;
    }
    const at = ((this.inFlightHead + this.inFlightCount) % (this.inFlight.length >> 1)) * 2;
    this.inFlight[at] = conn;
    this.inFlight[at + 1] = seq;
    this.inFlightCount++;
    this.sentThisTurn++;
    this.commandsSent++;
    this.sentSinceStart++;
  }

  /** Forgets the request (conn, seq): usually the oldest, but a streamed reply lets later ones overtake it. */
  trackAnswered(conn: number, seq: number): void {
    const cap = this.inFlight.length >> 1;
    let k = 0;
    for (; k < this.inFlightCount; k++) {
      const at = ((this.inFlightHead + k) % cap) * 2;
      if (this.inFlight[at] === conn && this.inFlight[at + 1] === seq) break;
    }
    if (k === this.inFlightCount) k = 0;
    // Close the gap: the entries before it move up one place.
    for (; k > 0; k--) {
      const to = ((this.inFlightHead + k) % cap) * 2;
      const from = ((this.inFlightHead + k - 1) % cap) * 2;
      this.inFlight[to] = this.inFlight[from];
      this.inFlight[to + 1] = this.inFlight[from + 1];
    }
    this.inFlightHead = (this.inFlightHead + 1) % cap;
    this.inFlightCount--;
    if (++this.answersSinceStart === this.turnAnswers && this.turnPublishedAt !== 0) {
      const ms = Math.min(performance.now() - this.turnPublishedAt, TURN_TIME_CAP_MS);
      this.turnMs = 0.75 * this.turnMs + 0.25 * ms;
      this.turnPublishedAt = 0;
    }
  }
}

export class ShardPool {
  private readonly hosts: ShardHost[] = [];
  private fsync: FsyncPolicy;
  private stopping = false;
  /** Barrier slots for transactions across shards, shared with every worker (see core/commands/transaction.ts). */
  readonly barriers = new Int32Array(new SharedArrayBuffer(TRANSACTION_SLOTS * BARRIER_WORDS * 4));

  constructor(
    private readonly options: ShardPoolOptions,
    private readonly sink: ReplySink,
    /** The bindings of a shard, as `_bind` requests to replay when its worker starts again. */
    private readonly restoreRequests: (shard: number) => { cmdId: number; args: ArgList }[],
  ) {
    this.fsync = options.fsync;
  }

  get count(): number {
    return this.options.count;
  }

  /** Starts every worker and resolves when all are running. */
  async start(): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let i = 0; i < this.options.count; i++) {
      const host = new ShardHost();
      this.hosts.push(host);
      ready.push(this.spawn(i, host));
    }
    await Promise.all(ready);
  }

  private spawn(index: number, host: ShardHost): Promise<void> {
    host.requests = Ring.create(this.options.ringBytes);
    host.replies = Ring.create(this.options.ringBytes);
    host.overflow = [];
    host.resetTurnTiming();
    const config: ShardWorkerConfig = {
      index,
      count: this.options.count,
      dataDir: this.options.dataDir,
      allowAnyPath: this.options.allowAnyPath,
      fsync: this.fsync,
      requests: host.requests.sab,
      replies: host.replies.sab,
      timing: this.options.timing[index],
      sigbusGuard: sigbusGuardHandle(),
      barriers: this.barriers.buffer as SharedArrayBuffer,
      formatThreads: this.options.formatThreads,
    };
    const worker = new Worker(new URL("./shard_worker.ts", import.meta.url), { workerData: config });
    host.worker = worker;
    // Restores go first on the new ring (published once the worker is ready); built while it boots.
    for (const r of this.restoreRequests(index)) this.send(index, 0, 0, 2, r.cmdId, r.args, null);
    const replies = host.replies;
    let started!: () => void;
    const ready = new Promise<void>((resolve) => (started = resolve));
    worker.on("message", (m: ShardMessage) => {
      if (m.type === "ready") {
        host.alive = true;
        started();
        this.publish(index);
        this.watch(index, host, replies);
      } else if (m.type === "reply") {
        this.sink.deliver(m.conn, m.seq, m.bytes, 0, m.bytes.length);
        this.sink.flush();
      }
    });
    const died = (reason: string) => {
      if (host.worker !== worker || this.stopping) return;
      host.alive = false;
      this.restart(index, host, reason);
    };
    // An uncaught error ends the worker; restart once it has exited, so two threads never own one shard.
    let lastError = "";
    worker.on("error", (e) => {
      lastError = e instanceof Error ? e.message : String(e);
    });
    worker.on("exit", (code) => died(lastError !== "" ? lastError : `exit code ${code}`));
    return ready;
  }

  /** Answers what the dead worker had in flight with errors, then starts a new one with the shard's bindings. */
  private restart(index: number, host: ShardHost, reason: string): void {
    // Replies the worker published before dying are still valid: deliver them first.
    this.drain(host, host.replies);
    const errorText = `-ERR shard ${index} restarted (${reason.replace(/[\r\n]/g, " ")}); command not executed or not acknowledged\r\n`;
    const error = new TextEncoder().encode(errorText);
    while (host.inFlightCount > 0) {
      const at = host.inFlightHead * 2;
      const conn = host.inFlight[at];
      const seq = host.inFlight[at + 1];
      host.trackAnswered(conn, seq);
      // The server's own requests (restores, flushes) get the error too, or their waiters would wait forever.
      // A client that has part of a streamed reply cannot be told: it is dropped.
      if (conn !== 0 && this.sink.midReply(conn, seq)) this.sink.abort(conn, seq, errorText);
      else if (conn !== 0) this.sink.deliver(conn, seq, error, 0, error.length);
      else this.serverReplyHandler(index, seq, errorText);
    }
    this.sink.flush();
    this.sink.shardRestarted(index, reason);
    this.spawn(index, host);
  }

  /** Keeps one waitAsync armed on a shard's reply ring; drains on every wake. */
  private watch(index: number, host: ShardHost, replies: Ring): void {
    const arm = (): void => {
      if (host.replies !== replies || this.stopping) return;
      const seen = replies.signal();
      replies.setSleeping(true);
      if (replies.hasRecords()) {
        replies.setSleeping(false);
        this.drainSafely(index, host, replies);
        queueMicrotask(arm);
        return;
      }
      const wake = replies.waitAsync(seen);
      if (wake === null) queueMicrotask(arm);
      else
        wake.then(() => {
          replies.setSleeping(false);
          arm();
        });
    };
    arm();
  }

  /** Drains a reply ring; a bug while delivering one reply must not stop the shard's replies. */
  private drainSafely(index: number, host: ShardHost, replies: Ring): void {
    try {
      this.drain(host, replies);
    } catch (e) {
      console.error(`mmapd: internal error delivering replies of shard ${index}:`, e);
    }
  }

  private drain(host: ShardHost, replies: Ring): void {
    const index = this.hosts.indexOf(host);
    let delivered = false;
    for (let at = replies.next(); at >= 0; at = replies.next()) {
      if (this.take(index, host, replies, at)) delivered = true;
      replies.advance();
    }
    this.finishDrain(index, host, replies);
    if (delivered) this.sink.flush();
  }

  /** Handles the reply-ring record at `at` (not yet advanced past); true if a client got a reply. */
  private take(index: number, host: ShardHost, replies: Ring, at: number): boolean {
    const w = at >> 2;
    const kind = replies.words[w + 2];
    if (kind === KIND_EVENT) {
      const text = new TextDecoder().decode(replies.data.subarray(at + REPLY_HEADER_WORDS * 4, at + replies.length(at)));
      this.sink.catalog(index, JSON.parse(text) as CatalogEvent);
      return false;
    }
    if (kind === KIND_SLOW) {
      this.sink.slow(replies.words[w], replies.data, at + REPLY_HEADER_WORDS * 4);
      return false;
    }
    const conn = replies.words[w];
    if (kind === KIND_PARTIAL) {
      // A stream has begun: its chunks come as they are made, so the turn does not wait for its end.
      host.awaited = false;
      this.sink.partial(conn, replies.words[w + 1], replies.data, at + REPLY_HEADER_WORDS * 4, at + replies.length(at));
      return true;
    }
    host.trackAnswered(conn, replies.words[w + 1]);
    if (kind === KIND_ABORT) {
      const reason = new TextDecoder().decode(replies.data.subarray(at + REPLY_HEADER_WORDS * 4, at + replies.length(at)));
      this.sink.abort(conn, replies.words[w + 1], reason);
      return true;
    }
    // KIND_OUT_OF_BAND: the bytes come by message; the record only kept the count.
    if (kind !== KIND_REPLY) return false;
    if (conn !== 0) {
      this.sink.deliver(conn, replies.words[w + 1], replies.data, at + REPLY_HEADER_WORDS * 4, at + replies.length(at));
    } else {
      // The handler may answer a client (SAVE waits for every shard's _flush): that counts as delivered.
      this.serverReplyHandler(
        index,
        replies.words[w + 1],
        new TextDecoder().decode(replies.data.subarray(at + REPLY_HEADER_WORDS * 4, at + replies.length(at))),
      );
    }
    return true;
  }

  /** Frees what was consumed of a reply ring, and moves requests waiting for room onto the request ring. */
  private finishDrain(index: number, host: ShardHost, replies: Ring): void {
    replies.release();
    if (host.overflow.length > 0) this.moveOverflow(index, host);
  }

  /**
   * Drains every shard's reply ring together: from each ring, records are taken
   * while each is a reply in turn for its connection (or not a client's reply at all), then the
   * next ring goes on. A pipeline whose commands went to several shards then has its replies
   * written straight out, instead of each one that overtakes an earlier one being parked (a copy
   * and a map entry). Replies that no ring can deliver in turn stay for a later call, or with
   * `force` are taken anyway (they are parked).
   */
  private drainInTurn(force: boolean): void {
    let delivered = false;
    for (let progress = true; progress; ) {
      progress = false;
      for (let index = 0; index < this.hosts.length; index++) {
        const host = this.hosts[index];
        if (!host.alive) continue;
        const replies = host.replies;
        for (let at = replies.next(); at >= 0; at = replies.next()) {
          const w = at >> 2;
          const kind = replies.words[w + 2];
          const clientReply = (kind === KIND_REPLY || kind === KIND_PARTIAL) && replies.words[w] !== 0;
          if (clientReply && !this.sink.inTurn(replies.words[w], replies.words[w + 1])) break;
          if (this.take(index, host, replies, at)) delivered = true;
          replies.advance();
          progress = true;
        }
      }
      if (!progress && force) {
        // Every ring waits for a reply that is not here: take the first waiting one out of turn.
        for (let index = 0; index < this.hosts.length && !progress; index++) {
          const host = this.hosts[index];
          if (!host.alive) continue;
          const at = host.replies.next();
          if (at < 0) continue;
          if (this.take(index, host, host.replies, at)) delivered = true;
          host.replies.advance();
          progress = true;
        }
      }
    }
    for (let index = 0; index < this.hosts.length; index++) {
      const host = this.hosts[index];
      if (host.alive) this.finishDrain(index, host, host.replies);
    }
    if (delivered) this.sink.flush();
  }

  /** Replies to commands the server sent itself (restores): errors are logged by the sink. */
  serverReplyHandler: (shard: number, seq: number, reply: string) => void = () => {};

  /**
   * Puts a command on a shard's request ring (visible after `publishAll`). `indices` selects the
   * arguments to send (null: all), for multi-key commands split by shard.
   */
  send(index: number, conn: number, seq: number, proto: number, cmdId: number, a: ArgList, indices: number[] | null): void {
    const host = this.hosts[index];
    const argc = indices === null ? a.argc : indices.length;
    let bytes = 0;
    for (let k = 0; k < argc; k++) {
      const i = indices === null ? k : indices[k];
      bytes += a.argEnd[i] - a.argStart[i];
    }
    const payload = (REQUEST_HEADER_WORDS + argc) * 4 + bytes;
    const ring = host.requests;
    const outOfBand = payload > ring.maxPayload;
    let target: Uint8Array;
    let words: Int32Array;
    let base: number;
    const at = outOfBand || host.overflow.length > 0 ? -1 : ring.reserve(payload);
    if (at >= 0) {
      target = ring.data;
      words = ring.words;
      base = at;
    } else {
      target = new Uint8Array((payload + 3) & ~3);
      words = new Int32Array(target.buffer);
      base = 0;
    }
    const w = base >> 2;
    words[w] = conn;
    words[w + 1] = seq;
    words[w + 2] = cmdId | (proto << 16) | ((outOfBand ? FLAG_OUT_OF_BAND : 0) << 24);
    words[w + 3] = argc;
    let p = base + (REQUEST_HEADER_WORDS + argc) * 4;
    for (let k = 0; k < argc; k++) {
      const i = indices === null ? k : indices[k];
      const len = a.argEnd[i] - a.argStart[i];
      words[w + REQUEST_HEADER_WORDS + k] = len;
      if (target === ring.data) ring.copyIn(p, a.buf, a.argStart[i], a.argEnd[i]);
      else target.set(a.buf.subarray(a.argStart[i], a.argEnd[i]), p);
      p += len;
    }
    host.trackSent(conn, seq);
    if (at < 0) {
      host.overflow.push({ payload: target.subarray(0, payload), outOfBand });
      this.moveOverflow(index, host);
    }
    host.needsPublish = true;
  }

  /** Moves waiting requests onto the ring while there is room, in order. */
  private moveOverflow(index: number, host: ShardHost): void {
    const ring = host.requests;
    while (host.overflow.length > 0) {
      const o = host.overflow[0];
      if (o.outOfBand) {
        const at = ring.reserve(REQUEST_HEADER_WORDS * 4);
        if (at < 0) break;
        const header = new Int32Array(o.payload.buffer, o.payload.byteOffset, REQUEST_HEADER_WORDS);
        ring.words.set(header, at >> 2);
        ring.words[(at >> 2) + 3] = 0;
        host.worker.postMessage({ type: "request", bytes: o.payload } satisfies ShardMessage);
      } else {
        const at = ring.reserve(o.payload.length);
        if (at < 0) break;
        ring.data.set(o.payload, at);
      }
      host.overflow.shift();
      host.needsPublish = true;
    }
    if (host.alive && host.needsPublish) this.publish(index);
  }

  /** Makes every request sent since the last call visible to its shard. */
  publishAll(): void {
    for (let i = 0; i < this.hosts.length; i++) {
      const host = this.hosts[i];
      if (host.needsPublish) this.publish(i);
    }
  }

  /**
   * Blocks for up to `budgetMs` until every shard that was sent requests this turn, and had
   * nothing older in flight, has answered them, delivering replies as they come. The turn's
   * replies then leave in the same turn, without a wake-up through the event loop; and while the
   * main thread blocks, its core is free for the workers. A shard still busy with an earlier
   * turn's requests (a long command) is not waited for.
   */
  awaitReplies(budgetMs: number): void {
    // Every shard's replies are drained together; only the shards sent this turn's commands,
    // with nothing older in flight, are waited for.
    let waiting = 0;
    for (let i = 0; i < this.hosts.length; i++) {
      const host = this.hosts[i];
      host.awaited = host.alive && host.sentThisTurn > 0 && host.inFlightCount === host.sentThisTurn && host.turnMs < WORTH_WAITING_MS;
      host.sentThisTurn = 0;
      if (host.awaited) waiting++;
    }
    let deadline = -1;
    while (waiting > 0) {
      this.drainInTurnSafely(false);
      // The shard to wait for: one that still owes replies and has none waiting. If there is
      // none, every reply is in, or those there wait for one that no awaited shard will send.
      let waitFor: Ring | null = null;
      for (let i = 0; i < this.hosts.length; i++) {
        const host = this.hosts[i];
        // A reply may have released a held command (MMAP) that sent more.
        if (host.needsPublish) this.publish(i);
        if (waitFor === null && host.awaited && host.alive && host.inFlightCount > 0 && !host.replies.hasRecords()) waitFor = host.replies;
      }
      if (waitFor === null) break;
      const now = performance.now();
      if (deadline < 0) deadline = now + budgetMs;
      // A small batch is often answered within microseconds: poll before going to sleep, as a
      // wake-up costs about 10 µs here.
      if (deadline - now <= 0 || !waitFor.waitBlocking(deadline - now, REPLY_SPIN_MS)) break;
    }
    // What is left waits for replies that are not here: it goes out as it is (parked).
    this.drainInTurnSafely(true);
  }

  /** drainInTurn, where a bug while delivering must not stop the other replies. */
  private drainInTurnSafely(force: boolean): void {
    try {
      this.drainInTurn(force);
    } catch (e) {
      console.error("mmapd: internal error delivering replies:", e);
    }
  }

  /** True when requests were sent that no `publishAll` has made visible yet. */
  get hasUnpublished(): boolean {
    for (const host of this.hosts) if (host.needsPublish) return true;
    return false;
  }

  private publish(index: number): void {
    const host = this.hosts[index];
    if (!host.alive) return;
    host.needsPublish = false;
    host.requests.publish();
    host.timeTurn();
  }

  /** Tells every worker that `conn` is gone: its streamed replies stop. */
  cancelStreams(conn: number): void {
    for (const h of this.hosts) if (h.alive) h.worker.postMessage({ type: "cancel", conn } satisfies ShardMessage);
  }

  /** Tells every worker to hold (or go on with) the streamed replies of `conn`, whose client reads slowly. */
  paceStreams(conn: number, hold: boolean): void {
    for (const h of this.hosts) if (h.alive) h.worker.postMessage({ type: "pace", conn, hold } satisfies ShardMessage);
  }

  /** Makes a shard's worker throw (DEBUG CRASH-SHARD, for tests of the restart path). */
  crash(index: number): void {
    this.hosts[index].worker.postMessage({ type: "crash" } satisfies ShardMessage);
  }

  /** Sends the new fsync policy to every worker. */
  setFsync(policy: FsyncPolicy): void {
    this.fsync = policy;
    for (const h of this.hosts) h.worker.postMessage({ type: "fsync", policy } satisfies ShardMessage);
  }

  /** Commands sent to each shard so far, and in flight now (INFO). */
  stats(): { sent: number; inFlight: number; alive: boolean }[] {
    return this.hosts.map((h) => ({ sent: h.commandsSent, inFlight: h.inFlightCount, alive: h.alive }));
  }

  /** Stops watching the rings (the process is about to exit; workers end with it). */
  stop(): void {
    this.stopping = true;
  }
}
