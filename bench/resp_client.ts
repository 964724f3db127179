/**
 * A minimal RESP2 client for the benchmark's set-up and checks: one command at a time, or a
 * pipelined batch whose replies are counted. It speaks to mmapd and to Redis alike, so both are
 * prepared and verified by the same code.
 */
import net from "node:net";

/** An error reply (`-ERR ...`), kept as a value so a caller can tell it from a string. */
export class ErrorReply {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type Reply = string | number | null | ErrorReply | Reply[];

const CRLF = Buffer.from("\r\n");
const REPLY_TIMEOUT_MS = 60_000;

/** Encodes a command as a RESP array of bulk strings. */
function encodeText(args: readonly string[]): string {
  let text = `*${args.length}\r\n`;
  for (const arg of args) text += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  return text;
}

/** Parses one reply starting at `at`; null when the buffer does not hold all of it yet. */
function parseReply(buffer: Buffer, at: number): { reply: Reply; end: number } | null {
  const lineEnd = buffer.indexOf(CRLF, at);
  if (lineEnd < 0) return null;
  const line = buffer.toString("latin1", at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (buffer[at]) {
    case 0x2b: // +
      return { reply: line, end: next };
    case 0x2d: // -
      return { reply: new ErrorReply(line), end: next };
    case 0x3a: // :
      return { reply: Number(line), end: next };
    case 0x24: {
      // $
      const length = Number(line);
      if (length < 0) return { reply: null, end: next };
      if (buffer.length < next + length + 2) return null;
      return { reply: buffer.toString("utf8", next, next + length), end: next + length + 2 };
    }
    case 0x2a: {
      // *
      const count = Number(line);
      if (count < 0) return { reply: null, end: next };
      const items: Reply[] = [];
      let end = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buffer, end);
        if (item === null) return null;
        items.push(item.reply);
        end = item.end;
      }
      return { reply: items, end };
    }
    default:
      throw new Error(`unexpected reply byte ${JSON.stringify(String.fromCharCode(buffer[at]))}`);
  }
}

export class RespClient {
  private received: Buffer = Buffer.alloc(0);
  private readonly replies: Reply[] = [];
  private wake: (() => void) | null = null;
  private closedWith: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
      let at = 0;
      for (;;) {
        const parsed = parseReply(this.received, at);
        if (parsed === null) break;
        this.replies.push(parsed.reply);
        at = parsed.end;
      }
      this.received = this.received.subarray(at);
      this.wake?.();
    });
    socket.on("close", () => {
      this.closedWith ??= new Error("the server closed the connection");
      this.wake?.();
    });
    socket.on("error", (e) => {
      this.closedWith = e;
    });
  }

  static connect(port: number): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => {
        socket.off("error", reject);
        resolve(new RespClient(socket));
      });
      socket.once("error", reject);
    });
  }

  /** Sends one command and returns its reply (an error reply is returned, not thrown). */
  async command(...args: string[]): Promise<Reply> {
    this.socket.write(encodeText(args));
    return (await this.takeReplies(1))[0];
  }

  /** Sends one command and returns its reply; an error reply is thrown, naming the command. */
  async expect(...args: string[]): Promise<Reply> {
    const reply = await this.command(...args);
    if (reply instanceof ErrorReply) throw new Error(`${args.slice(0, 3).join(" ")}: ${reply.text}`);
    return reply;
  }

  /** Sends commands in batches of `batchSize` without waiting in between; returns the error replies seen. */
  async pipeline(commands: Iterable<string[]>, batchSize = 10_000): Promise<{ replies: number; errors: ErrorReply[] }> {
    let replies = 0;
    const errors: ErrorReply[] = [];
    let batch = "";
    let batched = 0;
    const flush = async () => {
      if (batched === 0) return;
      this.socket.write(batch);
      for (const reply of await this.takeReplies(batched)) if (reply instanceof ErrorReply) errors.push(reply);
      replies += batched;
      batch = "";
      batched = 0;
    };
    for (const args of commands) {
      batch += encodeText(args);
      if (++batched === batchSize) await flush();
    }
    await flush();
    return { replies, errors };
  }

  close(): void {
    this.socket.destroy();
  }

  private async takeReplies(count: number): Promise<Reply[]> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    while (this.replies.length < count) {
      if (this.closedWith) throw this.closedWith;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${REPLY_TIMEOUT_MS / 1000} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    return this.replies.splice(0, count);
  }
}
