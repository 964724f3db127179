/**
 * Appends in one batch grow the file once (ahead of the batch) and the file ends exactly at the
 * last value appended: a refused VADD in the middle, or a DEL at the end of the same pipeline,
 * leaves no extra bytes on disk.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { RawClient, resp, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "1"] });
});

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
});

const doubles = (file: string) => {
  const b = fs.readFileSync(path.join(server.dir, file));
  return Array.from({ length: b.length / 8 }, (_, i) => b.readDoubleLE(i * 8));
};

test("a refused VADD inside a pipelined batch of appends leaves the file at its exact size", async () => {
  const c = await RawClient.connect(server.port);
  try {
    c.write(resp("MMAP", "k", "k.f64"));
    expect((await c.readReplies(1)).toString()).toBe(":0\r\n");
    const batch = [resp("VADD", "k", "1", "2"), resp("VADD", "k", "3", "oops", "4"), resp("VADD", "k", "5"), resp("VCOUNT", "k")];
    c.write(Buffer.concat(batch));
    expect((await c.readReplies(4)).toString()).toBe(":2\r\n-ERR value must be double\r\n:1\r\n:3\r\n");
    expect(doubles("k.f64")).toEqual([1, 2, 5]);
  } finally {
    c.close();
  }
});

test("a DEL in the same batch as appends unbinds a file of exactly the appended values", async () => {
  const c = await RawClient.connect(server.port);
  try {
    c.write(resp("MMAP", "d", "d.f64"));
    expect((await c.readReplies(1)).toString()).toBe(":0\r\n");
    c.write(Buffer.concat([resp("VADD", "d", "7", "8", "9"), resp("VADD", "d", "nope"), resp("DEL", "d")]));
    expect((await c.readReplies(3)).toString()).toBe(":3\r\n-ERR value must be double\r\n:1\r\n");
    expect(doubles("d.f64")).toEqual([7, 8, 9]);
  } finally {
    c.close();
  }
});
