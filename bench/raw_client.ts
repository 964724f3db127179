/**
 * A lean RESP connection for the measurements redis-benchmark cannot make: replies of hundreds
 * of megabytes (time to first byte, total time, throughput), pipelined transactions, and the
 * soak's mixed load. It never builds a reply: a scanner walks the headers, skips bulk payloads
 * by their length and counts whole top-level replies, so the client reads at close to the speed
 * of the socket and costs the same against mmapd and Redis.
 */
import type { Socket } from "bun";

const MINUS = 45;
const CR = 13;
const LF = 10;
/** Error texts kept for the report; later ones are only counted. */
const ERRORS_KEPT = 5;

/** What a reply's type byte says about its header, as bit flags in a table indexed by the byte. */
const NUMBERED = 1;
const AGGREGATE = 2;
const MAP = 4;
const BULK = 8;
const ERROR = 16;
const KIND = (() => {
  const kind = new Uint8Array(256);
  for (const c of "*~>") kind[c.charCodeAt(0)] = NUMBERED | AGGREGATE;
  for (const c of "%|") kind[c.charCodeAt(0)] = NUMBERED | MAP;
  for (const c of "$=") kind[c.charCodeAt(0)] = NUMBERED | BULK;
  kind["!".charCodeAt(0)] = NUMBERED | BULK | ERROR;
  kind[":".charCodeAt(0)] = NUMBERED;
  kind["-".charCodeAt(0)] = ERROR;
  return kind;
})();

/**
 * Counts whole RESP2/RESP3 replies in a byte stream fed in arbitrary chunks, and notes what the
 * benchmark checks: error replies (at any depth), null replies at the top level, and the number
 * in the last top-level header (an integer reply's value, or an array's element count).
 */
class ReplyScanner {
  /** Whole top-level replies seen. */
  replies = 0;
  bytes = 0;
  errorCount = 0;
  readonly errors: string[] = [];
  /** Top-level null replies (`*-1`, `$-1`, `_`): an EXEC that WATCH refused, for one. */
  nulls = 0;
  /** The number in the last top-level reply's header. */
  lastTopNumber = 0;

  /** Values still owed by the reply being read (0 between replies). */
  private pending = 0;
  /** Payload bytes (with their CRLF) still to pass. */
  private skip = 0;
  private inHeader = false;
  private type = 0;
  private number = 0;
  private negative = false;
  private topLevel = false;
  private errorText = "";

  feed(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - i);
        this.skip -= take;
        i += take;
        if (this.skip === 0 && this.pending === 0) this.replies++;
        continue;
      }
      if (!this.inHeader) {
        const type = chunk[i];
        this.startHeader(type);
        // The common case, a numbered header whole in this chunk, in one tight loop.
        if (KIND[type] & NUMBERED) {
          let j = i + 1;
          let negative = false;
          if (j < n && chunk[j] === MINUS) {
            negative = true;
            j++;
          }
          let number = 0;
          let c = 0;
          while (j < n && (c = chunk[j]) !== CR) {
            number = number * 10 + (c - 48);
            j++;
          }
          if (j + 1 < n) {
            this.number = number;
            this.negative = negative;
            i = j + 2;
            this.endHeader();
            continue;
          }
        }
        i++;
        continue;
      }
      const b = chunk[i++];
      if (b === LF) this.endHeader();
      else if (b === CR) continue;
      else if (KIND[this.type] & NUMBERED) {
        if (b === MINUS) this.negative = true;
        else this.number = this.number * 10 + (b - 48);
      } else if (this.type === MINUS && this.errorText.length < 200) this.errorText += String.fromCharCode(b);
    }
  }

  private startHeader(type: number): void {
    this.inHeader = true;
    this.type = type;
    this.number = 0;
    this.negative = false;
    this.topLevel = this.pending === 0;
    if (this.topLevel) this.pending = 1;
    if (KIND[type] & ERROR) this.errorText = "";
  }

  private endHeader(): void {
    this.inHeader = false;
    const type = this.type;
    const kind = KIND[type];
    const value = this.negative ? -this.number : this.number;
    this.pending--;
    if (this.topLevel) {
      this.lastTopNumber = value;
      if (value < 0 || type === 95 /* _ */) this.nulls++;
    }
    if (type === MINUS) this.noteError(this.errorText);
    if (kind & AGGREGATE && value > 0) this.pending += value;
    else if (kind & MAP && value > 0) this.pending += 2 * value;
    else if (kind & BULK && value >= 0) {
      this.skip = value + 2;
      // A blob error's text is its payload; it is counted, not kept.
      if (kind & ERROR) this.noteError("(RESP3 blob error)");
      return;
    }
    if (this.pending === 0) this.replies++;
  }

  private noteError(text: string): void {
    this.errorCount++;
    if (this.errors.length < ERRORS_KEPT) this.errors.push(text);
  }
}

/** A TCP connection that sends prepared bytes and waits for a number of whole replies. */
export class RawConnection {
  readonly scanner = new ReplyScanner();
  /** performance.now() of the first byte received since `resetClock()`, or 0. */
  firstByteAt = 0;
  closed = false;
  private socket!: Socket<undefined>;
  private unsent: Uint8Array[] = [];
  private waiter: { replies: number; resolve: () => void; reject: (e: Error) => void } | null = null;

  private constructor() {}

  static async connect(port: number, host = "127.0.0.1"): Promise<RawConnection> {
    const connection = new RawConnection();
    connection.socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        // Plain Uint8Array chunks: no Buffer object made per read.
        binaryType: "uint8array",
        data: (_socket, chunk: Uint8Array) => connection.received(chunk),
        drain: () => connection.flush(),
        close: () => connection.ended(new Error("the server closed the connection")),
        error: (_socket, error) => connection.ended(error),
      },
    });
    return connection;
  }

  private received(chunk: Uint8Array): void {
    if (this.firstByteAt === 0) this.firstByteAt = performance.now();
    this.scanner.feed(chunk);
    const waiter = this.waiter;
    if (waiter !== null && this.scanner.replies >= waiter.replies) {
      this.waiter = null;
      waiter.resolve();
    }
  }

  private ended(error: Error): void {
    this.closed = true;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(error);
  }

  /** Forgets the first byte's time, before a request that is timed on its own. */
  resetClock(): void {
    this.firstByteAt = 0;
  }

  /** Sends bytes; what the socket does not take now goes out when it drains. */
  send(bytes: Uint8Array): void {
    if (this.unsent.length > 0) {
      this.unsent.push(bytes);
      return;
    }
    const written = this.socket.write(bytes);
    if (written < bytes.length) this.unsent.push(bytes.subarray(Math.max(0, written)));
  }

  private flush(): void {
    while (this.unsent.length > 0) {
      const next = this.unsent[0];
      const written = this.socket.write(next);
      if (written < next.length) {
        this.unsent[0] = next.subarray(Math.max(0, written));
        return;
      }
      this.unsent.shift();
    }
  }

  /** Resolves once `replies` whole replies have arrived in all (counted since the connection opened). */
  until(replies: number, timeoutMs = 120_000): Promise<void> {
    if (this.scanner.replies >= replies) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error("the connection is closed"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(
          new Error(`no reply within ${timeoutMs / 1000} s (${this.scanner.replies} of ${replies} replies, ${this.scanner.bytes} bytes)`),
        );
      }, timeoutMs);
      this.waiter = {
        replies,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  close(): void {
    this.closed = true;
    this.socket.end();
  }
}
