/**
 * LLEN, LRANGE and LINDEX answer for bindings as Redis answers for a list of the same values
 * (TYPE says `list`, so list tools ask them): compared byte for byte with a real redis-server
 * holding the values as a list, over every index pair in a window around the ends.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { RespClient } from "../../bench/resp_client.ts";
import { type RealRedis, startRealRedis } from "../helpers/redis.ts";
import { hasTool, startServer, type TestServer } from "../helpers/server.ts";

const VALUES = ["1.5", "2", "-3.25", "0.1", "1e+21"];
let server: TestServer;
let redis: RealRedis;
let ours: RespClient;
let theirs: RespClient;

beforeAll(async () => {
  hasTool("redis-server");
  server = await startServer({ args: ["--workers", "2"] });
  redis = await startRealRedis();
  ours = await RespClient.connect(server.port);
  theirs = await RespClient.connect(redis.port);
  await ours.expect("MMAP", "l", "l.f64");
  await ours.expect("VADD", "l", ...VALUES);
  await theirs.expect("RPUSH", "l", ...VALUES);
});

afterAll(async () => {
  ours?.close();
  theirs?.close();
  await server?.stop();
  server?.cleanup();
  await redis?.stop();
});

test("LRANGE over every start and stop from -8 to 8: the same replies as Redis's list", async () => {
  for (let start = -8; start <= 8; start++) {
    for (let stop = -8; stop <= 8; stop++) {
      const args = ["LRANGE", "l", String(start), String(stop)];
      expect({ args, reply: await ours.text(...args) }).toEqual({ args, reply: await theirs.text(...args) });
    }
  }
});

test("LINDEX from -8 to 8, LLEN, and a key that does not exist: the same replies as Redis's", async () => {
  for (let index = -8; index <= 8; index++) {
    const args = ["LINDEX", "l", String(index)];
    expect({ args, reply: await ours.text(...args) }).toEqual({ args, reply: await theirs.text(...args) });
  }
  for (const args of [
    ["LLEN", "l"],
    ["LLEN", "nokey"],
    ["LRANGE", "nokey", "0", "-1"],
    ["LINDEX", "nokey", "0"],
    ["LRANGE", "l", "x", "1"],
    ["LINDEX", "l", "1.5"],
    ["LRANGE", "l", "0"],
  ]) {
    expect({ args, reply: await ours.text(...args) }).toEqual({ args, reply: await theirs.text(...args) });
  }
  expect(await ours.text("TYPE", "l")).toBe(await theirs.text("TYPE", "l"));
});
