/**
 * The clients the command tests speak through: ioredis over RESP2, node-redis v5 over RESP3 (both
 * as applications use them, and in an "exact" form that hands every number back as its text), and
 * a raw session that sends one command and returns its reply bytes for byte-exact checks.
 */
import { expect } from "bun:test";
import Redis from "ioredis";
import { createClient, RESP_TYPES } from "redis";
import fs from "node:fs";
import path from "node:path";
import { RawClient, resp } from "../helpers/server.ts";
import type { Sample } from "./type_cases.ts";

/** One protocol's client, as the type tests drive it. */
export interface ProtocolClient {
  label: string;
  proto: 2 | 3;
  /** Sends a command; the reply decoded as the library does by default (doubles as text in RESP3). */
  send(...args: string[]): Promise<unknown>;
  /** Sends a command; every number in the reply comes back as its exact text. */
  exact(...args: string[]): Promise<unknown>;
  /** What `send` yields for a sample's reply. */
  decoded(s: Pick<Sample, "text" | "kind">): unknown;
  close(): Promise<void>;
}

/**
 * An integer reply as a library decodes it into a JavaScript number: exactly when it is safe;
 * beyond 2^53 each library rounds in its own way, so only its being a number is checked here (the
 * `exact` form checks the digits).
 */
function integerAsNumber(text: string): unknown {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : expect.any(Number);
}

/** ioredis, RESP2: integers as numbers (lossy past 2^53), everything else as strings. */
export async function connectIoredis(port: number): Promise<ProtocolClient> {
  const options = { host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 };
  const plain = new Redis(options);
  const exact = new Redis({ ...options, stringNumbers: true });
  await Promise.all([plain.connect(), exact.connect()]);
  return {
    label: "RESP2 (ioredis)",
    proto: 2,
    send: (...args) => plain.call(args[0]!, ...args.slice(1)),
    exact: (...args) => exact.call(args[0]!, ...args.slice(1)),
    decoded: (s) => (s.kind === "integer" ? integerAsNumber(s.text) : s.text),
    async close() {
      await Promise.all([plain.quit().catch(() => plain.disconnect()), exact.quit().catch(() => exact.disconnect())]);
    },
  };
}

/**
 * node-redis v5 with `RESP: 3`: integers as numbers, big numbers as BigInt, and doubles mapped to
 * their text (its own double parser is approximate, and the text is what mmapd promises).
 */
export async function connectNodeRedis(port: number): Promise<ProtocolClient> {
  const client = createClient({ socket: { host: "127.0.0.1", port, reconnectStrategy: false }, RESP: 3 });
  client.on("error", () => {});
  await client.connect();
  const plain = { typeMapping: { [RESP_TYPES.DOUBLE]: String } };
  const exact = { typeMapping: { [RESP_TYPES.DOUBLE]: String, [RESP_TYPES.NUMBER]: String, [RESP_TYPES.BIG_NUMBER]: String } };
  return {
    label: "RESP3 (node-redis)",
    proto: 3,
    send: (...args) => client.sendCommand(args, plain),
    exact: (...args) => client.sendCommand(args, exact),
    decoded: (s) => (s.kind === "integer" ? integerAsNumber(s.text) : s.kind === "big" ? BigInt(s.text) : s.text),
    async close() {
      await client.close();
    },
  };
}

/** The message of the error a command is answered with (fails the test if it succeeds). */
export async function errorOf(reply: Promise<unknown>): Promise<string> {
  try {
    const value = await reply;
    return `no error: ${String(value)}`;
  } catch (e) {
    return (e as Error).message;
  }
}

/** A raw connection in RESP2 or RESP3 that returns each reply as text, for byte-exact checks. */
export class RawSession {
  private constructor(private readonly raw: RawClient) {}

  static async open(port: number, proto: 2 | 3 = 2): Promise<RawSession> {
    const session = new RawSession(await RawClient.connect(port));
    if (proto === 3) {
      const hello = await session.command("HELLO", "3");
      if (!hello.startsWith("%")) throw new Error(`HELLO 3 refused: ${hello}`);
    }
    return session;
  }

  /** Sends one command; resolves with its whole reply, as UTF-8 text. */
  async command(...args: (string | Uint8Array)[]): Promise<string> {
    this.raw.write(resp(...args));
    return (await this.raw.readReplies(1)).toString("utf8");
  }

  /** Sends commands in one write; resolves with the replies' bytes, in order. */
  async pipeline(commands: string[][]): Promise<Buffer> {
    this.raw.write(Buffer.concat(commands.map((c) => resp(...c))));
    return this.raw.readReplies(commands.length, 30_000);
  }

  close(): void {
    this.raw.close();
  }
}

/** The RESP error line for a message. */
export const err = (message: string): string => `-${message}\r\n`;

/** The bytes of a file in the data directory (empty when it does not exist). */
export function fileBytes(dir: string, name: string): Uint8Array {
  const file = path.join(dir, name);
  return fs.existsSync(file) ? new Uint8Array(fs.readFileSync(file)) : new Uint8Array(0);
}
