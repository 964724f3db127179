/**
 * One client connection: its parser, its protocol version, and the replies it is owed.
 *
 * Every command gets a sequence number. A reply that is ready when all earlier ones have been
 * written goes straight into `out`; one that overtakes an earlier reply (another shard answered
 * first) waits in `parked` until its turn. So replies always leave in request order.
 *
 * A streamed reply (VALL, VRANGE) comes in parts: a part in turn goes out at once, without
 * completing the reply; parts that come early wait in `partials` until the reply's turn.
 */
import type { Socket } from "bun";
import type { QueuedTransaction } from "./transaction_queue.ts";
import { RequestParser } from "../protocol/request_parser.ts";
import { ReplyWriter } from "../protocol/reply_writer.ts";

/** Replies of a command sent to several shards, merged once all have answered. */
export interface Gather {
  remaining: number;
  parts: Uint8Array[];
  merge: (parts: Uint8Array[], proto: 2 | 3) => Uint8Array;
  /** Sees each part as it arrives; returns true when it sent one more request for the gather (SCAN's hops). */
  more?: (part: Uint8Array) => boolean;
}

export class Connection {
  readonly parser: RequestParser;
  /** Replies ready to be written to the socket. */
  readonly out = new ReplyWriter(16 * 1024);
  /** Sequence number the next command gets. */
  nextSeq = 1;
  /** Every reply before this sequence number is in `out` or sent. */
  doneSeq = 1;
  /** Replies that arrived before their turn, and gathers in progress. */
  readonly parked = new Map<number, Uint8Array | Gather>();
  /** Bytes the socket did not take yet, in the order they go (null when none), from `backlogStart` of the first. */
  backlog: Uint8Array[] | null = null;
  backlogStart = 0;
  private backlogBytes = 0;
  /** Parts of streamed replies that came before their turn, by sequence number. */
  private readonly partials = new Map<number, Uint8Array[]>();
  private partialBytes = 0;
  /** True once a streamed reply came: closing must stop any still in progress. */
  streamed = false;
  /** The streamed reply whose parts are being written out in turn (0: none). */
  private streamingSeq = 0;
  /** True while the shards hold this client's streams (too many bytes unsent; see Turn.pace). */
  streamsHeld = false;
  authenticated: boolean;
  name = "";
  libName = "";
  libVersion = "";
  readonly createdAt = Date.now();
  lastActive = Date.now();
  lastCommand = "NULL";
  /** Close once the replies owed have been written (QUIT, protocol error). */
  closeAfterReplies = false;
  closed = false;
  /**
   * True once a socket write failed (the peer reset the connection): the socket is terminated, and
   * whoever wrote must forget the connection. Bun reports such a failure only by write's -1; no
   * close event follows while the socket is not read.
   */
  writeFailed = false;
  paused = false;
  /** Commands queued since MULTI, or null outside a transaction. */
  tx: QueuedTransaction | null = null;
  /** A finished transaction kept for the next MULTI, so that its buffers are not made again. */
  spareTx: QueuedTransaction | null = null;
  /** Shards where this connection WATCHes keys (they hear of its UNWATCH and EXEC). */
  watchedShards: Set<number> | null = null;
  /** In MONITOR mode: sees every command the server runs. */
  monitoring = false;
  /** A SCAN is going from shard to shard (see scan_pages.ts); later commands are held until it is answered. */
  scanInFlight = false;
  /** A command waiting until every earlier reply has arrived (MMAP, or any after a SCAN in flight); parsing stops meanwhile. */
  held: import("../core/args.ts").Args | null = null;
  /** MMAPs sent to a shard and not answered yet (sequence number -> path given), for the log of refusals. */
  mmapsInFlight: Map<number, string> | null = null;
  /** Writable MMAPs in flight (sequence number -> files), until their replies arrive. */
  writerClaims: Map<number, string[]> | null = null;

  constructor(
    readonly id: number,
    readonly socket: Socket<Connection>,
    readonly address: string,
    parserLimits: { maxBulkLength: number },
    needsAuth: boolean,
    /** Where the bytes written to clients are counted (INFO total_net_output_bytes). */
    private readonly traffic: { netOutputBytes: number },
  ) {
    this.parser = new RequestParser(parserLimits);
    this.authenticated = !needsAuth;
  }

  /** Number of commands whose replies are still owed. */
  get owed(): number {
    return this.nextSeq - this.doneSeq;
  }

  /** Bytes of replies produced but not yet taken by the socket. */
  get unsent(): number {
    return this.out.length + this.backlogBytes + this.partialBytes;
  }

  /** True when a shard's reply for `seq` would be written now, not parked: it is next, or a part of a gather. */
  inTurn(seq: number): boolean {
    if (seq === this.doneSeq) return true;
    if (this.parked.size === 0) return false;
    const parked = this.parked.get(seq);
    return parked !== undefined && !(parked instanceof Uint8Array);
  }

  /** Accepts the reply for `seq`: written now if it is its turn, parked otherwise (copied). */
  complete(seq: number, buf: Uint8Array, start: number, end: number): void {
    if (seq !== this.doneSeq) {
      const parts = this.partials.size === 0 ? undefined : this.partials.get(seq);
      if (parts === undefined) {
        this.parked.set(seq, new Uint8Array(buf.subarray(start, end)));
        return;
      }
      // The end of a streamed reply that came early: its parts wait as one reply.
      parts.push(buf.subarray(start, end));
      this.parked.set(seq, concat(parts));
      this.dropPartials(seq);
      return;
    }
    this.out.raw(buf, start, end);
    if (this.streamingSeq === seq) this.streamingSeq = 0;
    this.doneSeq++;
    this.releaseParked();
  }

  /** Accepts a part of the streamed reply for `seq`: written now if it is its turn, kept otherwise (copied). */
  partial(seq: number, buf: Uint8Array, start: number, end: number): void {
    this.streamed = true;
    if (seq === this.doneSeq) {
      this.streamingSeq = seq;
      if (this.out.length === 0 && !this.closed) {
        // Nothing before it waits: straight from the ring to the socket, without a copy into
        // `out`; or, behind a backlog, copied once to its end (through `out` it would be twice).
        if (this.backlog === null) this.writeOut(buf, start, end);
        else {
          this.backlog.push(buf.slice(start, end));
          this.backlogBytes += end - start;
        }
      } else this.out.raw(buf, start, end);
      return;
    }
    let parts = this.partials.get(seq);
    if (parts === undefined) this.partials.set(seq, (parts = []));
    parts.push(new Uint8Array(buf.subarray(start, end)));
    this.partialBytes += end - start;
  }

  /** True when part of the reply for `seq` came already (written out, or waiting for its turn). */
  midReply(seq: number): boolean {
    return this.streamingSeq === seq || this.partials.has(seq);
  }

  private dropPartials(seq: number): void {
    for (const p of this.partials.get(seq)!) this.partialBytes -= p.length;
    this.partials.delete(seq);
  }

  /** Records that the reply for `doneSeq` was written into `out` directly. */
  wroteInTurn(): void {
    this.doneSeq++;
    this.releaseParked();
  }

  /** Writes parked replies that are now in turn. */
  private releaseParked(): void {
    if (this.parked.size !== 0) {
      for (let next = this.parked.get(this.doneSeq); next instanceof Uint8Array; next = this.parked.get(this.doneSeq)) {
        this.parked.delete(this.doneSeq);
        this.out.raw(next, 0, next.length);
        this.doneSeq++;
      }
    }
    // A streamed reply now in turn: its early parts go out, the rest will follow directly.
    const parts = this.partials.size === 0 ? undefined : this.partials.get(this.doneSeq);
    if (parts !== undefined) {
      for (const p of parts) this.out.raw(p, 0, p.length);
      this.dropPartials(this.doneSeq);
      this.streamingSeq = this.doneSeq;
    }
  }

  /** Adds one shard's part of a gathered reply; completes it when the last part arrives. */
  gatherPart(seq: number, buf: Uint8Array, start: number, end: number): boolean {
    const g = this.parked.get(seq);
    if (g === undefined || g instanceof Uint8Array) return false;
    const part = new Uint8Array(buf.subarray(start, end));
    g.parts.push(part);
    if (g.more?.(part)) g.remaining++;
    if (--g.remaining === 0) {
      this.parked.delete(seq);
      const merged = g.merge(g.parts, this.out.proto);
      this.complete(seq, merged, 0, merged.length);
    }
    return true;
  }

  /**
   * Writes `out` (after any backlog) to the socket; what the socket does not take waits for
   * `drain`. Returns false if the client exceeded the output limit and must be dropped.
   */
  flush(outputLimit: number): boolean {
    if (this.closed) return true;
    if (this.writeFailed) {
      this.out.reset();
      return true;
    }
    if (this.out.length > 0) {
      if (this.backlog === null) this.writeOut(this.out.buf, 0, this.out.length);
      else {
        // Kept as parts: a slow reader's backlog is not copied again with every reply.
        this.backlog.push(this.out.buf.slice(0, this.out.length));
        this.backlogBytes += this.out.length;
      }
      this.out.reset();
      if (this.out.buf.length > 4 * 1024 * 1024) this.out.buf = new Uint8Array(16 * 1024); // give back a huge reply's buffer
    }
    if (this.backlog !== null && this.unsent > outputLimit) return false;
    if (this.closeAfterReplies && this.owed === 0 && this.backlog === null) this.socket.end();
    return true;
  }

  /** Writes bytes [start, end) of `buf` to the socket; what it does not take becomes the backlog (copied). */
  private writeOut(buf: Uint8Array, start: number, end: number): void {
    const n = this.socket.write(buf, start, end - start);
    if (n < 0) {
      this.failWrite();
      return;
    }
    if (n > 0) this.traffic.netOutputBytes += n;
    if (n < end - start) {
      this.backlog = [buf.slice(start + Math.max(n, 0), end)];
      this.backlogStart = 0;
      this.backlogBytes = this.backlog[0].length;
    }
  }

  /** Gives up on a socket whose write failed: nothing more is written or kept for it. */
  private failWrite(): void {
    this.writeFailed = true;
    this.backlog = null;
    this.backlogBytes = 0;
    this.socket.terminate();
  }

  /** Writes what the socket did not take before (on `drain`). */
  drainBacklog(): void {
    const backlog = this.backlog;
    if (backlog === null) return;
    while (backlog.length > 0) {
      const first = backlog[0];
      const rest = first.length - this.backlogStart;
      const n = this.socket.write(first, this.backlogStart, rest);
      if (n < 0) {
        this.failWrite();
        return;
      }
      if (n > 0) {
        this.backlogStart += n;
        this.backlogBytes -= n;
        this.traffic.netOutputBytes += n;
      }
      if (n < rest) return;
      backlog.shift();
      this.backlogStart = 0;
    }
    this.backlog = null;
    this.backlogBytes = 0;
    if (this.closeAfterReplies && this.owed === 0) this.socket.end();
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
