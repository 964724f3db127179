/**
 * One writer per file, when the MMAPs come pipelined in one write: the second key is refused
 * with the contract's error even though the first binding is still in flight on another shard,
 * and an MMAP waits for the connection's earlier commands (a pipelined DEL) before it checks.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { hashSlot } from "../../core/slots.ts";
import { RawClient, resp, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
});

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
});

const shardOf = (key: string) => hashSlot(Buffer.from(key), 0, Buffer.byteLength(key)) % 2;

test("pipelined MMAPs of one file under keys on different shards: the first binds, the others are refused", async () => {
  const keys = ["a", "b", "c", "d", "e", "f"];
  const first = keys[0];
  const other = keys.find((k) => shardOf(k) !== shardOf(first))!;
  const c = await RawClient.connect(server.port);
  try {
    c.write(Buffer.concat([resp("MMAP", first, "F.f64"), resp("MMAP", other, "F.f64"), resp("MMAP", other, "F.f64", "double")]));
    const refused = `-ERR file is already bound writable to key '${first}'\r\n`;
    expect((await c.readReplies(3)).toString()).toBe(`:0\r\n${refused}${refused}`);
    // A refused claim leaves nothing behind: once the writer is unbound, the other key may bind.
    c.write(Buffer.concat([resp("DEL", first), resp("MMAP", other, "F.f64")]));
    expect((await c.readReplies(2)).toString()).toBe(":1\r\n:0\r\n");
  } finally {
    c.close();
  }
});

test("a writable MMAP that fails releases its claim", async () => {
  const c = await RawClient.connect(server.port);
  try {
    c.write(Buffer.concat([resp("MMAP", "bad", "G.f64", "nosuchtype", "WRITABLE"), resp("MMAP", "good", "G.f64")]));
    expect((await c.readReplies(2)).toString()).toBe(
      "-ERR value_type must be int8, uint8, int16, uint16, int32, uint32, int64, uint64, float, double, long_double or string\r\n:0\r\n",
    );
  } finally {
    c.close();
  }
});
