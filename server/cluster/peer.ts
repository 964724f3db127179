/**
 * A node's RESP connection to another node (the source of a slot migration talks to its target):
 * commands go out as RESP arrays, pipelined, and replies come back in order, decoded.
 */
import type { Socket } from "bun";

/** A decoded reply: strings as text, integers as numbers, arrays, nil as null. Errors reject. */
export type PeerReply = string | number | null | PeerReply[];

/** An error reply from the peer (its text without the leading `-`). */
export class PeerError extends Error {}

/** A peer that owes replies and sends nothing for this long is taken for dead. */
const REPLY_TIMEOUT_MS = 30_000;

export class Peer {
  private buffer = Buffer.alloc(0);
  private lastHeard = Date.now();
  private readonly watchdog = setInterval(() => {
    if (this.waiting.length > 0 && Date.now() - this.lastHeard > REPLY_TIMEOUT_MS) {
      this.fail(new Error(`no reply within ${REPLY_TIMEOUT_MS / 1000} s`));
      this.socket?.terminate();
    }
  }, 1000);
  private readonly waiting: { resolve: (r: PeerReply) => void; reject: (e: Error) => void }[] = [];
  private closedWith: Error | null = null;

  private constructor(private socket: Socket<undefined> | null) {}

  /** Connects to `host:port`; rejects if it cannot within `timeoutMs`. */
  static async connect(host: string, port: number, timeoutMs = 5000): Promise<Peer> {
    const peer = new Peer(null);
    const connecting = Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_s, data) => peer.onData(data),
        close: () => peer.fail(new Error(`connection to ${host}:${port} closed`)),
        error: (_s, e) => peer.fail(e),
      },
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`cannot connect to ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      peer.socket = await Promise.race([connecting, timeout]);
    } catch (e) {
      peer.fail(e as Error);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    peer.socket.setNoDelay(true);
    return peer;
  }

  /** Sends one command; resolves with its reply, rejects with a PeerError for an error reply. */
  call(...args: (string | number | Uint8Array)[]): Promise<PeerReply> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    const parts: Uint8Array[] = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const bytes = typeof a === "string" ? Buffer.from(a) : typeof a === "number" ? Buffer.from(String(a)) : a;
      parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
    }
    if (this.waiting.length === 0) this.lastHeard = Date.now();
    const promise = new Promise<PeerReply>((resolve, reject) => this.waiting.push({ resolve, reject }));
    for (const p of parts) this.write(p);
    return promise;
  }

  close(): void {
    this.socket?.end();
    this.fail(new Error("connection closed"));
  }

  private pendingWrites: Uint8Array[] = [];

  /** Writes all of `bytes`, keeping what the socket does not take for its next drain. */
  private write(bytes: Uint8Array): void {
    const socket = this.socket!;
    if (this.pendingWrites.length > 0) {
      this.pendingWrites.push(bytes);
      return;
    }
    const n = socket.write(bytes);
    if (n < bytes.length) {
      this.pendingWrites.push(bytes.subarray(Math.max(0, n)));
      this.flushLater();
    }
  }

  private flushing = false;

  private flushLater(): void {
    if (this.flushing) return;
    this.flushing = true;
    const step = () => {
      while (this.pendingWrites.length > 0 && this.closedWith === null) {
        const head = this.pendingWrites[0];
        const n = this.socket!.write(head);
        if (n < head.length) {
          this.pendingWrites[0] = head.subarray(Math.max(0, n));
          setTimeout(step, 1);
          return;
        }
        this.pendingWrites.shift();
      }
      this.flushing = false;
    };
    setTimeout(step, 0);
  }

  private fail(e: Error): void {
    clearInterval(this.watchdog);
    if (this.closedWith !== null) return;
    this.closedWith = e;
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  private onData(data: Uint8Array): void {
    this.lastHeard = Date.now();
    this.buffer = this.buffer.length === 0 ? Buffer.from(data) : Buffer.concat([this.buffer, data]);
    let at = 0;
    for (;;) {
      const parsed = parseReply(this.buffer, at);
      if (parsed === null) break;
      at = parsed.end;
      const waiter = this.waiting.shift();
      if (waiter === undefined) continue;
      if (parsed.reply instanceof PeerError) waiter.reject(parsed.reply);
      else waiter.resolve(parsed.reply);
    }
    this.buffer = this.buffer.subarray(at);
  }
}

/** The reply at `at`, and where it ends; null while it is incomplete. */
function parseReply(b: Buffer, at: number): { reply: PeerReply | PeerError; end: number } | null {
  const lf = b.indexOf(10, at);
  if (lf < 0) return null;
  const line = b.toString("latin1", at + 1, lf - 1);
  const end = lf + 1;
  switch (b[at]) {
    case 43: // +
      return { reply: line, end };
    case 45: // -
      return { reply: new PeerError(line), end };
    case 58: // :
      return { reply: Number(line), end };
    case 36: {
      // $
      const n = Number(line);
      if (n < 0) return { reply: null, end };
      if (end + n + 2 > b.length) return null;
      return { reply: b.toString("utf8", end, end + n), end: end + n + 2 };
    }
    case 42: {
      // *
      const n = Number(line);
      if (n < 0) return { reply: null, end };
      const items: PeerReply[] = [];
      let p = end;
      for (let k = 0; k < n; k++) {
        const item = parseReply(b, p);
        if (item === null) return null;
        if (item.reply instanceof PeerError) return { reply: item.reply, end: item.end };
        items.push(item.reply);
        p = item.end;
      }
      return { reply: items, end: p };
    }
    default:
      return {
        reply: new PeerError(`unexpected reply from the peer: ${JSON.stringify(b.toString("latin1", at, Math.min(b.length, at + 40)))}`),
        end: b.length,
      };
  }
}
