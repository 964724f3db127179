/**
 * mmapd from Node.js with node-redis v5 over RESP3. mmapd's commands go through `sendCommand`,
 * which takes the command and its arguments as one array of strings.
 *
 * RESP3 replies are typed: doubles arrive as numbers, VSTATS and VINFO as objects. Raw bytes
 * (VRANGE ... RAW) need a type mapping that keeps bulk strings as Buffers. Every reply is
 * checked; a mismatch exits with code 1.
 *
 *   npm start                          # in another terminal: mmapd on 127.0.0.1:6379
 *   node examples/node_redis.mjs
 *
 * MMAPD_HOST and MMAPD_PORT choose the server (default 127.0.0.1:6379). The files it creates
 * (example_node_redis.f64, example_node_redis.u64) are relative to the server's data directory
 * and are left there empty.
 */
import assert from "node:assert/strict";
import { createClient, RESP_TYPES } from "redis";

const host = process.env.MMAPD_HOST ?? "127.0.0.1";
const port = Number(process.env.MMAPD_PORT ?? "6379");
const PRICES = "example:node_redis:prices";
const COUNTERS = "example:node_redis:counters";

// No reconnecting: an example should fail at once when no server is there.
const client = createClient({ socket: { host, port, reconnectStrategy: false, connectTimeout: 5000 }, RESP: 3 });
client.on("error", () => {}); // errors reach the awaited calls below

/** Sends a command, checks the reply, prints `command -> reply`. */
async function expectReply(args, expected) {
  const reply = await client.sendCommand(args);
  assert.deepEqual(reply, expected, args.join(" "));
  console.log(`${args.join(" ")} -> ${JSON.stringify(reply)}`);
  return reply;
}

/** Binds `key` writable and makes sure its file starts empty (an earlier run may have stopped half-way). */
async function bindEmpty(key, file, type) {
  const count = await client.sendCommand(["MMAP", key, file, type, "WRITABLE"]);
  if (count !== 0) await client.sendCommand(["VCLEAR", key]);
  console.log(`MMAP ${key} ${file} ${type} WRITABLE -> bound, empty`);
}

let connected = false;
try {
  await client.connect().catch((e) => {
    throw new Error(`cannot connect to mmapd at ${host}:${port} (${e.message}); start it with npm start`);
  });
  connected = true;
  console.log(`connected to mmapd at ${host}:${port} (RESP3)`);
  await client.sendCommand(["DEL", PRICES, COUNTERS]);

  // Doubles: RESP3 double replies, so numbers in JavaScript.
  await bindEmpty(PRICES, "example_node_redis.f64", "double");
  await expectReply(["VADD", PRICES, "101.5", "102.25", "99.75"], 3);
  await expectReply(["VMGET", PRICES, "0", "2"], [101.5, 99.75]);
  await expectReply(["VRANGE", PRICES, "1", "-1"], [102.25, 99.75]);

  // Maps come back as objects.
  const stats = await client.sendCommand(["VSTATS", PRICES]);
  assert.deepEqual({ ...stats }, { count: 3, sum: 303.5, min: 99.75, max: 102.25, mean: 303.5 / 3, nan_count: 0 }, "VSTATS");
  console.log(`VSTATS ${PRICES} -> ${JSON.stringify(stats)}`);
  const info = await client.sendCommand(["VINFO", PRICES]);
  assert.equal(info.type, "double", "VINFO type");
  assert.equal(info.count, 3, "VINFO count");
  console.log(`VINFO ${PRICES} -> ${JSON.stringify(info)}`);

  // Raw bytes: ask for bulk strings as Buffers for this one command.
  const raw = await client.sendCommand(["VRANGE", PRICES, "0", "-1", "RAW"], { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } });
  const doubles = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  assert.deepEqual([...doubles], [101.5, 102.25, 99.75], "VRANGE RAW");
  console.log(`VRANGE ${PRICES} 0 -1 RAW -> ${raw.length} bytes -> Float64Array [${[...doubles].join(", ")}]`);

  // An error reply rejects the promise with its text.
  await assert.rejects(client.sendCommand(["VGET", PRICES, "3"]), /ERR index exceeds size/);
  console.log(`VGET ${PRICES} 3 -> rejected: ERR index exceeds size`);

  // uint64 above 2^63-1: exact (BigInt() accepts the reply whether it is a BigInt or a string).
  await bindEmpty(COUNTERS, "example_node_redis.u64", "uint64");
  await expectReply(["VADD", COUNTERS, "18446744073709551615", "7"], 2);
  const counters = await client.sendCommand(["VALL", COUNTERS]);
  assert.deepEqual(
    counters.map((v) => BigInt(v)),
    [2n ** 64n - 1n, 7n],
    "VALL of uint64",
  );
  console.log(`VALL ${COUNTERS} -> ${counters.map(String).join(", ")}`);

  // Leave the files empty and unbind the keys (DEL never deletes a file).
  await expectReply(["VCLEAR", PRICES], 3);
  await expectReply(["VCLEAR", COUNTERS], 2);
  await expectReply(["DEL", PRICES, COUNTERS], 2);
  console.log("node_redis: all replies as expected");
} catch (e) {
  console.error(`node_redis FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  if (connected) await client.close().catch(() => client.destroy());
}
