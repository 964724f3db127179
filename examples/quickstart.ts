/**
 * Quick start with Bun's built-in Redis client: the RedisMMap module's walkthrough, step by step.
 *
 * A file of doubles grows with VADD, is read with VGET / VMGET, written with VSET, shrinks with
 * VPOP; DEL unbinds the key but leaves the file, which is then bound again under another key and
 * cleared with VCLEAR. Every reply is checked; the first mismatch stops the program with exit 1.
 *
 *   npm start                                   # in another terminal: mmapd on 127.0.0.1:6379
 *   node_modules/.bin/bun examples/quickstart.ts
 *
 * MMAPD_HOST and MMAPD_PORT choose the server (default 127.0.0.1:6379). The file it creates,
 * `example_quickstart.f64`, is relative to the server's data directory (`--dir`, default ./data);
 * it is left there empty.
 */
import { RedisClient } from "bun";

const host = process.env.MMAPD_HOST ?? "127.0.0.1";
const port = Number(process.env.MMAPD_PORT ?? "6379");
const KEY = "example:quickstart:db";
const OTHER_KEY = "example:quickstart:dba";
const FILE = "example_quickstart.f64";

/** Sends one command and checks its reply; prints `command -> reply`, or throws on a mismatch. */
async function expectReply(client: RedisClient, command: string[], expected: unknown, quiet = false): Promise<void> {
  const reply = await client.send(command[0]!, command.slice(1));
  const shown = JSON.stringify(reply);
  if (shown !== JSON.stringify(expected)) throw new Error(`${command.join(" ")}: expected ${JSON.stringify(expected)}, got ${shown}`);
  if (!quiet) console.log(`${command.join(" ")} -> ${shown}`);
}

// Bun's client speaks RESP3: doubles come back as numbers, counts as integers.
const client = new RedisClient(`redis://${host}:${port}`, { autoReconnect: false, connectionTimeout: 5000 });
try {
  await client.connect().catch((e: Error) => {
    throw new Error(`cannot connect to mmapd at ${host}:${port} (${e.message}); start it with npm start`);
  });
  console.log(`connected to mmapd at ${host}:${port}`);
  // A clean start, in case an earlier run stopped half-way.
  await client.send("DEL", [KEY, OTHER_KEY]);

  // MMAP key path (no type): doubles, writable, the file is created if missing.
  const count = Number(await client.send("MMAP", [KEY, FILE]));
  if (count !== 0) {
    console.log(`${FILE} still holds ${count} values from an earlier run: clearing it`);
    await client.send("VCLEAR", [KEY]);
  }
  console.log(`MMAP ${KEY} ${FILE} -> bound (${FILE} under the server's data directory)`);

  // Append ten values one at a time, then six at once: VADD replies how many it appended.
  for (const v of ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"])
    await expectReply(client, ["VADD", KEY, v], 1, true);
  console.log(`VADD ${KEY} 0.0, then 0.1, ... 0.9 -> 1 each`);
  await expectReply(client, ["VCOUNT", KEY], 10);
  await expectReply(client, ["VADD", KEY, "1.0", "1.1", "1.2", "1.3", "1.4", "1.5"], 6);
  await expectReply(client, ["VCOUNT", KEY], 16);

  // Read one value, then several (in argument order).
  await expectReply(client, ["VGET", KEY, "5"], 0.5);
  await expectReply(client, ["VMGET", KEY, "1", "2", "3", "4", "5"], [0.1, 0.2, 0.3, 0.4, 0.5]);

  // Write index/value pairs; VPOP removes and returns the last value.
  await expectReply(client, ["VSET", KEY, "5", "50", "10", "100"], 2);
  await expectReply(client, ["VPOP", KEY], 1.5);
  await expectReply(client, ["VCOUNT", KEY], 15);
  await expectReply(client, ["VTYPE", KEY], "double");
  await expectReply(client, ["VSIZE", KEY], 8);
  await expectReply(client, ["VFILEPATH", KEY], FILE);
  await expectReply(client, ["VRANGE", KEY, "-3", "-1"], [1.2, 1.3, 1.4]);

  // DEL unbinds the key; the file keeps its 15 values and can be bound again under another key.
  await expectReply(client, ["DEL", KEY], 1);
  await expectReply(client, ["EXISTS", KEY], 0);
  await expectReply(client, ["MMAP", OTHER_KEY, FILE], 15);
  await expectReply(client, ["VGET", OTHER_KEY, "5"], 50);
  await expectReply(client, ["VGET", OTHER_KEY, "10"], 100);

  // VCLEAR empties the file (truncated to 0 bytes) and replies the count it had.
  await expectReply(client, ["VCLEAR", OTHER_KEY], 15);
  await expectReply(client, ["VCOUNT", OTHER_KEY], 0);
  await expectReply(client, ["DEL", OTHER_KEY], 1);
  console.log("quickstart: all replies as expected");
} catch (e) {
  console.error(`quickstart FAILED: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  client.close();
}
