/**
 * Bound files changed by other processes, end to end: a file shrunk (or grown) outside mmapd while
 * bound must not kill the server; that key's commands answer
 * "ERR file '<path>' changed size outside mmapd; MMAP it again" until it is bound again, other keys
 * (on both shards) go on being served, and mmapd never resizes a file someone else resized. Also:
 * a writable binding holds an advisory lock that other processes' `flock -n` sees.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import { LOCK_EX, LOCK_NB, flock } from "../../core/libc.ts";
import { call, ErrorReply, type Reply, RespClient } from "../../bench/resp_client.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let client: RespClient;

/** Writes `count` float64 values i + 0.5; returns the file's path in the data directory. */
function writeValues(name: string, count: number): string {
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = i + 0.5;
  const file = path.join(server.dir, name);
  fs.writeFileSync(file, new Uint8Array(values.buffer));
  return file;
}

const changed = (name: string) => new ErrorReply(`ERR file '${name}' changed size outside mmapd; MMAP it again`);

/** Sends one command on the shared connection; returns the decoded reply. */
async function send(...args: string[]): Promise<Reply> {
  return call(client, ...args);
}

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
  client = await RespClient.connect(server.port);
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  server?.cleanup();
});

describe("a bound file shrunk by another process", () => {
  test("read-only: the server lives, that key answers the error, other keys are served", async () => {
    const file = writeValues("big.f64", 100_000);
    writeValues("other.f64", 1000);
    expect(await send("MMAP", "big", "big.f64", "double")).toBe(100_000n);
    // Keys on both shards besides the broken one.
    for (const key of ["other", "other2", "other3"]) expect(await send("MMAP", key, "other.f64", "double")).toBe(1000n);
    expect(await send("VGET", "big", "99999")).toBe("99999.5");

    fs.truncateSync(file, 800);
    expect(await send("VGET", "big", "99999")).toEqual(changed("big.f64")); // the access past the end
    expect(await send("VALL", "big")).toEqual(changed("big.f64"));
    expect(await send("VGET", "big", "5")).toEqual(changed("big.f64")); // inside the file, still refused
    expect(await send("VCOUNT", "big")).toEqual(changed("big.f64"));
    expect(await send("VRANGE", "big", "0", "-1")).toEqual(changed("big.f64"));
    expect(await send("VSTATS", "big")).toEqual(changed("big.f64"));
    expect(server.proc.exitCode).toBeNull();

    expect(await send("PING")).toBe("PONG");
    for (const key of ["other", "other2", "other3"]) expect(await send("VGET", key, "999")).toBe("999.5");
    const second = await RespClient.connect(server.port);
    expect(await call(second, "VGET", "other", "1")).toBe("1.5");
    second.close();

    // Bound again, the key sees the file as it is now; the binding survives in the keyspace meanwhile.
    expect(await send("EXISTS", "big")).toBe(1n);
    expect(await send("MMAP", "big", "big.f64", "double")).toBe(100n);
    expect(await send("VGET", "big", "99")).toBe("99.5");
    expect(await send("VGET", "big", "100")).toEqual(new ErrorReply("ERR index exceeds size"));
    expect(fs.statSync(file).size).toBe(800);
  });

  test("writable: VADD, VPOP and VCLEAR refuse, and the file keeps the size it was given", async () => {
    const file = writeValues("w.f64", 50_000);
    expect(await send("MMAP", "w", "w.f64", "double", "WRITABLE")).toBe(50_000n);
    fs.truncateSync(file, 80);
    expect(await send("VADD", "w", "1")).toEqual(changed("w.f64"));
    expect(await send("VPOP", "w")).toEqual(changed("w.f64"));
    expect(await send("VCLEAR", "w")).toEqual(changed("w.f64"));
    expect(await send("VSET", "w", "49999", "3")).toEqual(changed("w.f64"));
    expect(fs.statSync(file).size).toBe(80);
    // Bound again (blog form: writable), appending continues from the file's real end.
    expect(await send("MMAP", "w", "w.f64")).toBe(10n);
    expect(await send("VADD", "w", "10.5")).toBe(1n);
    expect(await send("VGET", "w", "10")).toBe("10.5");
    expect(fs.statSync(file).size).toBe(88);
  });

  test("a write past the new end is answered with the error and reaches no file", async () => {
    const file = writeValues("ws.f64", 50_000);
    expect(await send("MMAP", "ws", "ws.f64", "double", "WRITABLE")).toBe(50_000n);
    fs.truncateSync(file, 4096);
    expect(await send("VSET", "ws", "40000", "7")).toEqual(changed("ws.f64"));
    expect(fs.statSync(file).size).toBe(4096);
    await send("SAVE"); // flushing a binding the guard patched must not fail either
    expect(await send("PING")).toBe("PONG");
  });

  test("a file grown outside is noticed too: resizes refuse, MMAP again picks up the new count", async () => {
    const file = writeValues("g.f64", 10);
    expect(await send("MMAP", "g", "g.f64")).toBe(10n);
    fs.appendFileSync(file, new Uint8Array(new Float64Array([10.5, 11.5]).buffer));
    expect(await send("VPOP", "g")).toEqual(changed("g.f64"));
    expect(fs.statSync(file).size).toBe(96);
    expect(await send("MMAP", "g", "g.f64")).toBe(12n);
    expect(await send("VPOP", "g")).toBe("11.5");
  });

  test("a shrink inside the last page (no fault) is noticed within about a second", async () => {
    const file = writeValues("small.f64", 100);
    expect(await send("MMAP", "small", "small.f64", "double")).toBe(100n);
    fs.truncateSync(file, 400);
    const deadline = Date.now() + 5000;
    let reply: Reply = null;
    while (Date.now() < deadline) {
      reply = await send("VCOUNT", "small");
      if (reply instanceof ErrorReply) break;
      await Bun.sleep(200);
    }
    expect(reply).toEqual(changed("small.f64"));
  });

  test("the server survives a SIGBUS storm: many keys shrunk at once, read in one pipeline", async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `storm${i}`);
    for (const key of keys) {
      writeValues(`${key}.f64`, 20_000);
      expect(await send("MMAP", key, `${key}.f64`, "double")).toBe(20_000n);
    }
    for (const key of keys) fs.truncateSync(path.join(server.dir, `${key}.f64`), 0);
    client.write(Buffer.concat(keys.map((key) => Buffer.from(`*2\r\n$4\r\nVALL\r\n$${key.length}\r\n${key}\r\n`))));
    const bytes = (await client.readReplies(keys.length)).toString("latin1");
    expect(bytes).toBe(keys.map((key) => `-ERR file '${key}.f64' changed size outside mmapd; MMAP it again\r\n`).join(""));
    expect(await send("PING")).toBe("PONG");
    expect(server.proc.exitCode).toBeNull();
  });
});

describe("after a shard worker is restarted", () => {
  test("its new worker is guarded too", async () => {
    const other = await startServer({ args: ["--workers", "1", "--enable-debug-command"] });
    const c = await RespClient.connect(other.port);
    try {
      const values = new Float64Array(50_000).map((_, i) => i + 0.5);
      fs.writeFileSync(path.join(other.dir, "r.f64"), new Uint8Array(values.buffer));
      expect(await call(c, "MMAP", "r", "r.f64", "double")).toBe(50_000n);
      expect(await call(c, "DEBUG", "CRASH-SHARD", "0")).toBe("OK");
      // The binding comes back with the restarted worker.
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && !other.output().includes("restarting it with its bindings")) await Bun.sleep(20);
      let reply: Reply = null;
      while (Date.now() < deadline && (reply = await call(c, "VGET", "r", "49999")) !== "49999.5") await Bun.sleep(50);
      expect(reply).toBe("49999.5");
      fs.truncateSync(path.join(other.dir, "r.f64"), 8);
      expect(await call(c, "VGET", "r", "49999")).toEqual(changed("r.f64"));
      expect(await call(c, "PING")).toBe("PONG");
      expect(other.proc.exitCode).toBeNull();
    } finally {
      c.close();
      await other.stop();
      other.cleanup();
    }
  }, 30_000);
});

describe("advisory locks", () => {
  test("flock -n on a file bound writable fails; after DEL it succeeds", async () => {
    const file = writeValues("locked.f64", 10);
    expect(await send("MMAP", "locked", "locked.f64", "double", "WRITABLE")).toBe(10n);
    expect(spawnSync(["flock", "-n", file, "true"]).exitCode).not.toBe(0);
    expect(await send("DEL", "locked")).toBe(1n);
    expect(spawnSync(["flock", "-n", file, "true"]).exitCode).toBe(0);
    // Read-only bindings take no lock: other readers and writers are not blocked by them.
    expect(await send("MMAP", "locked", "locked.f64", "double")).toBe(10n);
    expect(spawnSync(["flock", "-n", file, "true"]).exitCode).toBe(0);
  });

  test("a file locked by another process cannot be bound writable", async () => {
    const file = writeValues("held.f64", 10);
    // This test process is the other process: it holds an exclusive lock of its own.
    const fd = fs.openSync(file, "r");
    try {
      expect(flock(fd, LOCK_EX | LOCK_NB)).toBe(0);
      expect(await send("MMAP", "held", "held.f64", "double", "WRITABLE")).toEqual(
        new ErrorReply("ERR file 'held.f64' is locked by another process"),
      );
      expect(await send("MMAP", "held", "held.f64", "double")).toBe(10n); // reading needs no lock
      expect(await send("DEL", "held")).toBe(1n);
    } finally {
      fs.closeSync(fd); // releases the lock
    }
    expect(await send("MMAP", "held", "held.f64", "double", "WRITABLE")).toBe(10n);
  });
});
