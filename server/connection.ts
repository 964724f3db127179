/**
 * One client connection: its parser, its protocol version, and the replies it is owed.
 *
 * Every command gets a sequence number. A reply that is ready when all earlier ones have been
 * written goes straight into `out`; one that overtakes an earlier reply (another shard answered
 * first) waits in `parked` until its turn. So replies always leave in request order.
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
  /** Bytes the socket did not take yet. */
  backlog: Uint8Array | null = null;
  backlogStart = 0;
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
  paused = false;
  /** Commands queued since MULTI, or null outside a transaction. */
  tx: QueuedTransaction | null = null;
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
    return this.out.length + (this.backlog === null ? 0 : this.backlog.length - this.backlogStart);
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
      this.parked.set(seq, new Uint8Array(buf.subarray(start, end)));
      return;
    }
    this.out.raw(buf, start, end);
    this.doneSeq++;
    this.releaseParked();
  }

  /** Records that the reply for `doneSeq` was written into `out` directly. */
  wroteInTurn(): void {
    this.doneSeq++;
    this.releaseParked();
  }

  /** Writes parked replies that are now in turn. */
  private releaseParked(): void {
    if (this.parked.size === 0) return;
    for (let next = this.parked.get(this.doneSeq); next instanceof Uint8Array; next = this.parked.get(this.doneSeq)) {
      this.parked.delete(this.doneSeq);
      this.out.raw(next, 0, next.length);
      this.doneSeq++;
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
    if (this.out.length > 0) {
      if (this.backlog === null) {
        const n = this.socket.write(this.out.buf, 0, this.out.length);
        if (n > 0) this.traffic.netOutputBytes += n;
        if (n < this.out.length) {
          this.backlog = this.out.buf.slice(Math.max(n, 0), this.out.length);
          this.backlogStart = 0;
        }
      } else {
        const rest = this.backlog.length - this.backlogStart;
        const merged = new Uint8Array(rest + this.out.length);
        merged.set(this.backlog.subarray(this.backlogStart));
        merged.set(this.out.buf.subarray(0, this.out.length), rest);
        this.backlog = merged;
        this.backlogStart = 0;
      }
      this.out.reset();
      if (this.out.buf.length > 4 * 1024 * 1024) this.out.buf = new Uint8Array(16 * 1024); // give back a huge reply's buffer
    }
    if (this.backlog !== null && this.unsent > outputLimit) return false;
    if (this.closeAfterReplies && this.owed === 0 && this.backlog === null) this.socket.end();
    return true;
  }

  /** Writes what the socket did not take before (on `drain`). */
  drainBacklog(): void {
    if (this.backlog === null) return;
    const n = this.socket.write(this.backlog, this.backlogStart, this.backlog.length - this.backlogStart);
    if (n > 0) {
      this.backlogStart += n;
      this.traffic.netOutputBytes += n;
    }
    if (this.backlogStart >= this.backlog.length) {
      this.backlog = null;
      this.backlogStart = 0;
      if (this.closeAfterReplies && this.owed === 0) this.socket.end();
    }
  }
}
