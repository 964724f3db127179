/**
 * mmapd from Node.js with ioredis (RESP2). ioredis has no methods for mmapd's commands, so they go
 * through `call` (text replies) and `callBuffer` (raw bytes); pipelines work the same way.
 *
 * Binds a float32 file, appends and overwrites values, reads them back as text, as raw bytes into
 * a Float32Array, and as statistics; shows how an error reply arrives and how uint64 values above
 * 2^63-1 come back (as strings). Every reply is checked; a mismatch exits with code 1.
 *
 *   npm start                          # in another terminal: mmapd on 127.0.0.1:6379
 *   node examples/node_ioredis.mjs
 *
 * MMAPD_HOST and MMAPD_PORT choose the server (default 127.0.0.1:6379). The files it creates
 * (example_ioredis.f32, example_ioredis.u64) are relative to the server's data directory and are
 * left there empty.
 */
import assert from "node:assert/strict";
import Redis from "ioredis";

const host = process.env.MMAPD_HOST ?? "127.0.0.1";
const port = Number(process.env.MMAPD_PORT ?? "6379");
const TEMPS = "example:ioredis:temps";
const IDS = "example:ioredis:ids";

/** Sends a command with `call`, checks the reply, prints `command -> reply`. */
async function expectReply(redis, args, expected) {
  const reply = await redis.call(...args);
  assert.deepEqual(reply, expected, `${args.join(" ")}`);
  console.log(`${args.join(" ")} -> ${JSON.stringify(reply)}`);
  return reply;
}

/** Binds `key` writable and makes sure its file starts empty (an earlier run may have stopped half-way). */
async function bindEmpty(redis, key, file, type) {
  const count = await redis.call("MMAP", key, file, type, "WRITABLE");
  if (count !== 0) await redis.call("VCLEAR", key);
  console.log(`MMAP ${key} ${file} ${type} WRITABLE -> bound, empty`);
}

// No reconnecting and no retries: an example should fail at once when no server is there.
const redis = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
redis.on("error", () => {}); // errors reach the awaited calls below
try {
  await redis.connect().catch((e) => {
    throw new Error(`cannot connect to mmapd at ${host}:${port} (${e.message}); start it with npm start`);
  });
  console.log(`connected to mmapd at ${host}:${port}`);
  await redis.del(TEMPS, IDS);

  // float32 values: replies are bulk strings holding the shortest text that reads back the same.
  await bindEmpty(redis, TEMPS, "example_ioredis.f32", "float");
  await expectReply(redis, ["VADD", TEMPS, "21.5", "22", "19.25"], 3);
  await expectReply(redis, ["VSET", TEMPS, "1", "23.5"], 1);
  await expectReply(redis, ["VGET", TEMPS, "1"], "23.5");
  await expectReply(redis, ["VALL", TEMPS], ["21.5", "23.5", "19.25"]);

  // Raw bytes: callBuffer returns a Buffer; the file's layout is little-endian float32.
  const raw = await redis.callBuffer("VRANGE", TEMPS, "0", "-1", "RAW");
  const floats = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  assert.deepEqual([...floats], [21.5, 23.5, 19.25], "VRANGE RAW");
  console.log(`VRANGE ${TEMPS} 0 -1 RAW -> ${raw.length} bytes -> Float32Array [${[...floats].join(", ")}]`);

  // VSTATS replies a flat array in RESP2: name, value, name, value ...
  const flat = await redis.call("VSTATS", TEMPS);
  const stats = Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]));
  assert.deepEqual(stats, { count: 3, sum: "64.25", min: "19.25", max: "23.5", mean: "21.416666666666668", nan_count: 0 }, "VSTATS");
  console.log(`VSTATS ${TEMPS} -> ${JSON.stringify(stats)}`);

  // A pipeline: one round trip, one [error, reply] pair per command.
  const results = await redis.pipeline().call("VCOUNT", TEMPS).call("VGET", TEMPS, "0").call("VTYPE", TEMPS).exec();
  assert.deepEqual(
    results,
    [
      [null, 3],
      [null, "21.5"],
      [null, "float"],
    ],
    "pipeline",
  );
  console.log(`pipeline VCOUNT, VGET 0, VTYPE -> ${JSON.stringify(results.map(([, reply]) => reply))}`);

  // An error reply rejects the promise with its text.
  await assert.rejects(redis.call("VGET", TEMPS, "99"), /ERR index exceeds size/);
  console.log(`VGET ${TEMPS} 99 -> rejected: ERR index exceeds size`);

  // uint64: values up to 2^63-1 are integer replies (JavaScript numbers; exact only up to 2^53),
  // values above 2^63-1 are bulk strings. BigInt() makes both exact.
  await bindEmpty(redis, IDS, "example_ioredis.u64", "uint64");
  await expectReply(redis, ["VADD", IDS, "18446744073709551615", "42"], 2);
  const ids = await redis.call("VALL", IDS);
  assert.deepEqual(ids.map(BigInt), [2n ** 64n - 1n, 42n], "VALL of uint64");
  console.log(`VALL ${IDS} -> ${JSON.stringify(ids)} -> as BigInt: ${ids.map(BigInt).join(", ")}`);

  // Leave the files empty and unbind the keys (DEL never deletes a file).
  await expectReply(redis, ["VCLEAR", TEMPS], 3);
  await expectReply(redis, ["VCLEAR", IDS], 2);
  await expectReply(redis, ["DEL", TEMPS, IDS], 2);
  console.log("node_ioredis: all replies as expected");
} catch (e) {
  console.error(`node_ioredis FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await redis.quit().catch(() => redis.disconnect());
}
