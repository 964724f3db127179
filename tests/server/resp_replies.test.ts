/**
 * Byte-exact replies over a real socket: every reply type the server emits, in RESP2 and after
 * HELLO 3 in RESP3, checked against the exact bytes a Redis client library expects.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import path from "node:path";
import { replyEnd, resp, RespClient } from "../../bench/resp_client.ts";
import { startServer, type TestServer, writeRawFile } from "../helpers/server.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
  writeRawFile(path.join(server.dir, "big.u64"), 8, [0, 0], (v, at) => v.setBigUint64(at, 0n, true));
  const c = await RespClient.connect(server.port);
  try {
    c.write(resp("MMAP", "half", "half.f64"));
    c.write(resp("VADD", "half", "0.5", "2", "-0.25"));
    c.write(resp("MMAP", "big", "big.u64", "uint64", "WRITABLE"));
    c.write(resp("VSET", "big", "0", "18446744073709551615", "1", "9223372036854775807"));
    expect((await c.readReplies(4)).toString()).toBe(":0\r\n:3\r\n:2\r\n:2\r\n");
  } finally {
    c.close();
  }
});

afterAll(async () => {
  await server.stop();
  server.cleanup();
});

/** A connection in the given protocol version (HELLO 3's reply is consumed). */
async function connect(proto: 2 | 3): Promise<RespClient> {
  const c = await RespClient.connect(server.port);
  if (proto === 3) {
    c.write(resp("HELLO", "3"));
    await c.readReplies(1);
  }
  return c;
}

/** Sends one command and returns its reply as latin1 text. */
async function ask(c: RespClient, ...args: string[]): Promise<string> {
  c.write(resp(...args));
  return (await c.readReplies(1)).toString("latin1");
}

function helloReply(proto: 2 | 3, id: number): string {
  const pairs =
    "$6\r\nserver\r\n$5\r\nmmapd\r\n" +
    "$7\r\nversion\r\n$5\r\n0.1.0\r\n" +
    `$5\r\nproto\r\n:${proto}\r\n` +
    `$2\r\nid\r\n:${id}\r\n` +
    "$4\r\nmode\r\n$10\r\nstandalone\r\n" +
    "$4\r\nrole\r\n$6\r\nmaster\r\n" +
    "$7\r\nmodules\r\n*0\r\n";
  return (proto === 3 ? "%7\r\n" : "*14\r\n") + pairs;
}

describe.each([2, 3] as const)("RESP%d", (proto) => {
  let c: RespClient;
  beforeAll(async () => {
    c = await connect(proto);
  });
  afterAll(() => c.close());

  test("simple string: PING", async () => {
    expect(await ask(c, "PING")).toBe("+PONG\r\n");
  });

  test("error: unknown command", async () => {
    expect(await ask(c, "NOSUCH", "x")).toBe("-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n");
  });

  test("integer: VCOUNT and uint64 up to 2^63-1", async () => {
    expect(await ask(c, "VCOUNT", "half")).toBe(":3\r\n");
    expect(await ask(c, "VGET", "big", "1")).toBe(":9223372036854775807\r\n");
  });

  test("bulk string: ECHO, PING with a message", async () => {
    expect(await ask(c, "ECHO", "hello world")).toBe("$11\r\nhello world\r\n");
    expect(await ask(c, "PING", "")).toBe("$0\r\n\r\n");
  });

  test("null: CLIENT GETNAME without a name", async () => {
    expect(await ask(c, "CLIENT", "GETNAME")).toBe(proto === 3 ? "_\r\n" : "$-1\r\n");
  });

  test("null array inside an array: COMMAND INFO of an unknown command", async () => {
    expect(await ask(c, "COMMAND", "INFO", "nosuch")).toBe(proto === 3 ? "*1\r\n_\r\n" : "*1\r\n*-1\r\n");
  });

  test("array: VALL of a double file", async () => {
    const expected = proto === 3 ? "*3\r\n,0.5\r\n,2\r\n,-0.25\r\n" : "*3\r\n$3\r\n0.5\r\n$1\r\n2\r\n$5\r\n-0.25\r\n";
    expect(await ask(c, "VALL", "half")).toBe(expected);
  });

  test("map: HELLO", async () => {
    const id = Number((await ask(c, "CLIENT", "ID")).slice(1, -2));
    expect(await ask(c, "HELLO", String(proto))).toBe(helloReply(proto, id));
  });

  test("double: VGET of a double", async () => {
    expect(await ask(c, "VGET", "half", "0")).toBe(proto === 3 ? ",0.5\r\n" : "$3\r\n0.5\r\n");
  });

  test("uint64 above 2^63-1: its exact decimal as a bulk string in both protocols", async () => {
    const expected = "$20\r\n18446744073709551615\r\n";
    expect(await ask(c, "VGET", "big", "0")).toBe(expected);
  });

  test("verbatim string: CLIENT INFO and INFO", async () => {
    for (const command of [
      ["CLIENT", "INFO"],
      ["INFO", "server"],
    ]) {
      const reply = Buffer.from(await ask(c, ...command), "latin1");
      const headerEnd = reply.indexOf("\r\n");
      const length = Number(reply.subarray(1, headerEnd).toString());
      const body = reply.subarray(headerEnd + 2, reply.length - 2).toString();
      expect(String.fromCharCode(reply[0]!)).toBe(proto === 3 ? "=" : "$");
      expect(body.length).toBe(length);
      expect(reply.subarray(reply.length - 2).toString()).toBe("\r\n");
      const text = proto === 3 ? body.slice(4) : body;
      if (proto === 3) expect(body.slice(0, 4)).toBe("txt:");
      if (command[0] === "CLIENT") expect(text).toMatch(new RegExp(`^id=\\d+ addr=127\\.0\\.0\\.1:\\d+ .* resp=${proto} .*\\n$`));
      else expect(text.startsWith("# Server\r\nmmapd_version:0.1.0\r\n")).toBe(true);
    }
  });

  test("set: the flags in COMMAND INFO", async () => {
    const reply = await ask(c, "COMMAND", "INFO", "ping");
    const set = proto === 3 ? "~" : "*";
    const acl = `${set}2\r\n+@fast\r\n+@connection\r\n`;
    expect(reply).toBe(`*1\r\n*10\r\n$4\r\nping\r\n:-1\r\n${set}1\r\n+fast\r\n:0\r\n:0\r\n:0\r\n${acl}*0\r\n*0\r\n*0\r\n`);
  });

  test("nil from a shard: VPOP of an empty file", async () => {
    expect(await ask(c, "MMAP", `empty${proto}`, `empty${proto}.f64`)).toBe(":0\r\n");
    expect(await ask(c, "VPOP", `empty${proto}`)).toBe(proto === 3 ? "_\r\n" : "$-1\r\n");
  });
});

test("HELLO 2 after HELLO 3 goes back to RESP2 replies", async () => {
  const c = await connect(3);
  try {
    expect(await ask(c, "VGET", "half", "0")).toBe(",0.5\r\n");
    expect((await ask(c, "HELLO", "2")).startsWith("*14\r\n")).toBe(true);
    expect(await ask(c, "VGET", "half", "0")).toBe("$3\r\n0.5\r\n");
    expect(await ask(c, "HELLO", "4")).toBe("-NOPROTO unsupported protocol version\r\n");
  } finally {
    c.close();
  }
});

test("replyEnd splits replies of every type", () => {
  const replies = ["%1\r\n$1\r\na\r\n~2\r\n:1\r\n,2.5\r\n", "=8\r\ntxt:a\r\nb\r\n", "_\r\n", "*-1\r\n", "(18446744073709551615\r\n"];
  const bytes = Buffer.from(replies.join(""));
  let at = 0;
  for (const r of replies) {
    expect(replyEnd(bytes, at)).toBe(at + r.length);
    at += r.length;
  }
  expect(replyEnd(bytes.subarray(0, replies[0]!.length - 1), 0)).toBe(-1);
});
