/**
 * Bindings and values across clean restarts and damage found at start: SHUTDOWN, SHUTDOWN
 * NOSAVE and SIGTERM bring back every key of every type with identical values; a bound file
 * deleted while the server was down is reported and never recreated, and its key answers why
 * (through redis-cli, node-redis and ioredis) until DEL forgets it or MMAP binds it again once the
 * file is back; a torn or corrupt registry still lets the server start with its intact records;
 * one data directory serves one server at a time; a restart with 10,000 bindings is timed.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { createClient } from "redis";
import { encodeRecord, REGISTRY_FILE } from "../../core/registry.ts";
import { call, ErrorReply, type Reply, resp, RespClient } from "../../bench/resp_client.ts";
import { hasTool, startServer, tempDir, type TestServer } from "../helpers/server.ts";
import { encodeFile, TYPE_CASES } from "../commands/type_cases.ts";

setDefaultTimeout(60_000);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function freshDir(): string {
  const d = tempDir("mmapd-restart-");
  dirs.push(d);
  return d;
}

/** Runs `body` with a client on `server`, closing it after. */
async function withClient<T>(server: TestServer, body: (c: RespClient) => Promise<T>): Promise<T> {
  const c = await RespClient.connect(server.port);
  try {
    return await body(c);
  } finally {
    c.close();
  }
}

/** VALL's reply bytes for `key`, exactly as sent (RESP2 and RESP3). */
async function rawValues(server: TestServer, key: string, proto: 2 | 3): Promise<string> {
  return withClient(server, async (c) => {
    c.write(resp("HELLO", String(proto)));
    await c.readReplies(1);
    c.write(resp("VALL", key));
    return (await c.readReplies(1)).toString("latin1");
  });
}

/** Every key's VALL (both protocols), VTYPE, VSIZE and VINFO, for comparing two runs. */
async function snapshot(server: TestServer, keys: string[]): Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  for (const key of keys) {
    const info = await withClient(server, async (c) => [
      await call(c, "VTYPE", key),
      await call(c, "VSIZE", key),
      await call(c, "VINFO", key),
    ]);
    const [resp2, resp3] = [await rawValues(server, key, 2), await rawValues(server, key, 3)];
    out.set(key, { info: stringify(info), resp2, resp3 });
  }
  return out;
}

function stringify(reply: Reply): string {
  return JSON.stringify(reply, (_k, v) => (typeof v === "bigint" ? `${v}n` : v instanceof ErrorReply ? `-${v.message}` : v));
}

/** Waits for the process to exit after a command that ends it; returns the exit code. */
async function exitCode(server: TestServer): Promise<number> {
  const timer = setTimeout(() => server.proc.kill(9), 10_000);
  const code = await server.proc.exited;
  clearTimeout(timer);
  return code;
}

describe("clean restarts", () => {
  test("SHUTDOWN, SHUTDOWN NOSAVE and SIGTERM: every key of all 12 types comes back identical", async () => {
    const dir = freshDir();
    let server = await startServer({ dir, args: ["--workers", "2"] });
    const keys: string[] = [];
    try {
      await withClient(server, async (c) => {
        for (const t of TYPE_CASES) {
          const inputs = t.samples.map((s) => s.input);
          // Writable, filled through VADD and changed by VSET.
          const key = `w:${t.name}`;
          expect(await call(c, "MMAP", key, `${t.name}.w`, ...t.mmapArgs, "WRITABLE")).toBe(0n);
          expect(await call(c, "VADD", key, ...inputs)).toBe(BigInt(inputs.length));
          expect(await call(c, "VSET", key, "0", inputs[inputs.length - 1])).toBe(1n);
          // Read-only, over a file written outside mmapd.
          fs.writeFileSync(path.join(dir, `${t.name}.ro`), encodeFile(t, inputs));
          expect(await call(c, "MMAP", `ro:${t.name}`, `${t.name}.ro`, ...t.mmapArgs)).toBe(BigInt(inputs.length));
          keys.push(key, `ro:${t.name}`);
        }
        // The blog form (double, writable) too.
        expect(await call(c, "MMAP", "blog", "blog.f64")).toBe(0n);
        expect(await call(c, "VADD", "blog", "1.5", "-2")).toBe(2n);
        keys.push("blog");
      });
      expect(keys.length).toBe(25);
      const before = await snapshot(server, keys);

      for (const how of ["SHUTDOWN", "SHUTDOWN NOSAVE", "SIGTERM"]) {
        if (how === "SIGTERM") expect(await server.stop()).toBe(0);
        else {
          const c = await RespClient.connect(server.port);
          c.write(resp(...how.split(" ")));
          expect(await c.waitClosed()).toBe(true);
          expect(await exitCode(server)).toBe(0);
        }
        expect(server.output()).toContain("ready to exit");
        server = await startServer({ dir, args: ["--workers", "2"] });
        expect(server.output()).not.toContain("not restored");
        expect({ how, after: await snapshot(server, keys) }).toEqual({ how, after: before });
        expect(await withClient(server, (c) => call(c, "DBSIZE"))).toBe(BigInt(keys.length));
      }
      // What is on disk is what was written: the writable files hold the values sent.
      for (const t of TYPE_CASES) {
        const inputs = t.samples.map((s) => s.input);
        const expected = encodeFile(t, [inputs[inputs.length - 1], ...inputs.slice(1)]);
        expect({ type: t.name, bytes: [...fs.readFileSync(path.join(dir, `${t.name}.w`))] }).toEqual({
          type: t.name,
          bytes: [...expected],
        });
      }
    } finally {
      await server.stop();
      server.cleanup();
    }
  });

  test("SAVE and LASTSAVE; a second server on the same directory is refused", async () => {
    const dir = freshDir();
    const server = await startServer({ dir, args: ["--workers", "2", "--fsync", "no"] });
    try {
      await withClient(server, async (c) => {
        expect(await call(c, "MMAP", "k", "k.i32", "int32", "WRITABLE")).toBe(0n);
        expect(await call(c, "VADD", "k", "1", "2")).toBe(2n);
        const last = (await call(c, "LASTSAVE")) as bigint;
        expect(await call(c, "SAVE")).toBe("OK");
        expect((await call(c, "LASTSAVE")) as bigint).toBeGreaterThanOrEqual(last);
        expect(await call(c, "BGSAVE")).toBe("Background saving started");
      });
      let second: TestServer | null = null;
      let failure = "";
      try {
        second = await startServer({ dir, args: ["--workers", "1"] });
      } catch (e) {
        failure = (e as Error).message;
      }
      second?.cleanup();
      expect(second).toBe(null);
      expect(failure).toContain("is in use by another mmapd process");
      expect(failure).toContain("exit 1");
      // The first server is untouched by the attempt.
      expect(await withClient(server, (c) => call(c, "VALL", "k"))).toEqual([1n, 2n]);
    } finally {
      await server.stop();
      server.cleanup();
    }
  });
});

describe("damage found at start", () => {
  test("a bound file deleted while the server was down is reported, not recreated, and can be forgotten", async () => {
    const dir = freshDir();
    let server = await startServer({ dir, args: ["--workers", "2"] });
    try {
      await withClient(server, async (c) => {
        expect(await call(c, "MMAP", "gone", "gone.f64")).toBe(0n);
        expect(await call(c, "VADD", "gone", "1", "2")).toBe(2n);
        expect(await call(c, "MMAP", "kept", "kept.i16", "int16", "WRITABLE")).toBe(0n);
        expect(await call(c, "VADD", "kept", "7")).toBe(1n);
      });
      expect(await server.stop()).toBe(0);
      fs.rmSync(path.join(dir, "gone.f64"));

      const kept = [7n];
      for (let restart = 0; restart < 2; restart++) {
        server = await startServer({ dir, args: ["--workers", "2"] });
        expect(server.output()).toMatch(
          /Binding of key 'gone' not restored on shard \d: ERR cannot open 'gone\.f64': No such file or directory/,
        );
        await withClient(server, async (c) => {
          const info = (await call(c, "INFO", "persistence")) as string;
          expect(info).toContain("bindings_failed:1\r\n");
          expect(info).toContain("gone:ERR cannot open 'gone.f64': No such file or directory");
          expect(await call(c, "VALL", "kept")).toEqual(kept);
          expect(await call(c, "VADD", "kept", String(8 + restart))).toBe(1n);
          kept.push(BigInt(8 + restart));
          // The key stays, answering why and how to recover (issue #11).
          const failed =
            "ERR binding of 'gone' failed at start: cannot open 'gone.f64': No such file or directory; MMAP it again or DEL it";
          expect(await call(c, "VGET", "gone", "0")).toEqual(new ErrorReply(failed));
          expect(await call(c, "VADD", "gone", "3")).toEqual(new ErrorReply(failed));
          expect(await call(c, "EXISTS", "gone")).toBe(1n);
          expect(await call(c, "DBSIZE")).toBe(2n);
        });
        expect(fs.existsSync(path.join(dir, "gone.f64"))).toBe(false);
        // Still registered: it is tried again at the next start (the file may come back from a backup).
        expect(fs.readFileSync(path.join(dir, REGISTRY_FILE), "utf8")).toContain('"key":"gone"');
        if (restart === 0) expect(await server.stop()).toBe(0);
      }

      // DEL forgets the binding for good.
      await withClient(server, async (c) => {
        expect(await call(c, "DEL", "gone")).toBe(1n);
        expect((await call(c, "INFO", "persistence")) as string).toContain("bindings_failed:0\r\n");
      });
      expect(await server.stop()).toBe(0);
      expect(fs.readFileSync(path.join(dir, REGISTRY_FILE), "utf8")).toContain('{"op":"unbind","key":"gone"}');
      server = await startServer({ dir, args: ["--workers", "2"] });
      expect(server.output()).not.toContain("not restored");
      expect(await withClient(server, (c) => call(c, "VALL", "kept"))).toEqual(kept);
      expect(fs.existsSync(path.join(dir, "gone.f64"))).toBe(false);
    } finally {
      await server.stop();
      server.cleanup();
    }
  });

  test("a torn last record and a corrupt middle one: the server starts with the intact records and says so", async () => {
    const dir = freshDir();
    let server = await startServer({ dir, args: ["--workers", "2"] });
    const names = ["a", "b", "c", "d", "e"];
    try {
      await withClient(server, async (c) => {
        for (const k of names) {
          expect(await call(c, "MMAP", k, `${k}.u8`, "uint8", "WRITABLE")).toBe(0n);
          expect(await call(c, "VADD", k, String(k.charCodeAt(0)))).toBe(1n);
        }
      });
      expect(await server.stop()).toBe(0);
      const log = path.join(dir, REGISTRY_FILE);
      const lines = fs.readFileSync(log, "utf8").split("\n");
      expect(lines.length).toBe(names.length + 1);
      // Line 2 (b) gets one byte wrong; the last record (e) loses its last 10 bytes.
      lines[1] = lines[1].replace('"b.u8"', '"x.u8"');
      fs.writeFileSync(log, lines.join("\n").slice(0, -11));

      server = await startServer({ dir, args: ["--workers", "2"] });
      const out = server.output();
      expect(out).toMatch(/Bindings registry: corrupt record on line 2 of bindings\.log \(\d+ bytes\) ignored/);
      expect(out).toMatch(/Bindings registry: torn record at the end of bindings\.log \(\d+ bytes\) ignored/);
      expect(out).toContain("kept as bindings.log.damaged");
      await withClient(server, async (c) => {
        for (const k of ["a", "c", "d"]) expect(await call(c, "VALL", k)).toEqual([BigInt(k.charCodeAt(0))]);
        for (const k of ["b", "e"]) expect(await call(c, "VALL", k)).toEqual(new ErrorReply("ERR You must do MMAP first"));
        expect(await call(c, "DBSIZE")).toBe(3n);
        // A lost binding is bound again by hand, over its intact file.
        expect(await call(c, "MMAP", "e", "e.u8", "uint8", "WRITABLE")).toBe(1n);
      });
      expect(await server.stop()).toBe(0);
      // The log was rewritten clean: the next start reports nothing.
      server = await startServer({ dir, args: ["--workers", "2"] });
      expect(server.output()).not.toContain("Bindings registry");
      expect(await withClient(server, (c) => call(c, "DBSIZE"))).toBe(4n);
    } finally {
      await server.stop();
      server.cleanup();
    }
  });
});

describe("a failed binding through clients, across restarts", () => {
  const failedY = "ERR binding of 'y' failed at start: cannot open 'y.f64': No such file or directory; MMAP it again or DEL it";
  const haveCli = hasTool("redis-cli");
  let server: TestServer;
  let dir: string;

  beforeAll(async () => {
    dir = freshDir();
    server = await startServer({ dir, args: ["--workers", "2"] });
    const c = new Redis({ port: server.port, lazyConnect: true });
    await c.connect();
    expect(await c.call("MMAP", "y", "y.f64")).toBe(0);
    expect(await c.call("VADD", "y", "1", "2")).toBe(2);
    expect(await c.call("MMAP", "kept", "kept.i16", "int16", "WRITABLE")).toBe(0);
    await c.quit();
    expect(await server.stop()).toBe(0);
    fs.rmSync(path.join(dir, "y.f64"));
    server = await startServer({ dir, args: ["--workers", "2"] });
  });

  afterAll(async () => {
    await server?.stop();
  });

  test.skipIf(!haveCli)("redis-cli: the failed binding's error, and every count agrees", () => {
    const cli = (...args: string[]) => spawnSync(["redis-cli", "-p", String(server.port), ...args]).stdout.toString();
    expect(server.output()).toContain("Binding of key 'y' not restored");
    expect(cli("VGET", "y", "0")).toBe(`${failedY}\n\n`);
    expect(cli("EXISTS", "y")).toBe("1\n");
    expect(cli("DBSIZE")).toBe("2\n");
    expect(cli("TYPE", "y")).toBe("list\n");
    expect(cli("KEYS", "*").split("\n").sort()).toEqual(["", "kept", "y"]);
    expect(cli("--scan").split("\n").sort()).toEqual(["", "kept", "y"]);
    expect(cli("INFO", "keyspace")).toContain("db0:keys=2,expires=0,avg_ttl=0");
    expect(cli("INFO", "persistence")).toContain("bindings_failed:1\r\n");
    expect(cli("VINFO", "y")).toContain("failed\ncannot open 'y.f64': No such file or directory\n");
  });

  test("node-redis (RESP3) sees the same; DEL answers 1 and forgets it for good", async () => {
    const client = createClient({ socket: { host: "127.0.0.1", port: server.port, reconnectStrategy: false }, RESP: 3 });
    await client.connect();
    try {
      await expect(client.sendCommand(["VALL", "y"])).rejects.toThrow(failedY);
      expect<unknown>(await client.sendCommand(["EXISTS", "y", "kept"])).toBe(2);
      expect<unknown>(await client.sendCommand(["DEL", "y"])).toBe(1);
      expect<unknown>(await client.sendCommand(["EXISTS", "y"])).toBe(0);
      expect<unknown>(await client.sendCommand(["DBSIZE"])).toBe(1);
      expect(String(await client.sendCommand(["INFO", "persistence"]))).toContain("bindings_failed:0\r\n");
      expect(String(await client.sendCommand(["INFO", "keyspace"]))).toContain("db0:keys=1,");
      await expect(client.sendCommand(["VALL", "y"])).rejects.toThrow("ERR You must do MMAP first");
    } finally {
      await client.close();
    }
    expect(await server.stop()).toBe(0);
    server = await startServer({ dir, args: ["--workers", "2"] });
    expect(server.output()).not.toContain("not restored");
  });

  test("ioredis: MMAP again recovers a binding whose file came back", async () => {
    const c = new Redis({ port: server.port, lazyConnect: true });
    await c.connect();
    try {
      expect(await c.call("MMAP", "back", "back.u8", "uint8", "WRITABLE")).toBe(0);
      expect(await c.call("VADD", "back", "9")).toBe(1);
      await c.call("SAVE");
      fs.copyFileSync(path.join(dir, "back.u8"), path.join(dir, "back.u8.saved"));
      await c.quit();
    } catch (e) {
      c.disconnect();
      throw e;
    }
    expect(await server.stop()).toBe(0);
    fs.rmSync(path.join(dir, "back.u8"));
    server = await startServer({ dir, args: ["--workers", "2"] });
    const d = new Redis({ port: server.port, lazyConnect: true });
    await d.connect();
    try {
      await expect(d.call("VGET", "back", "0")).rejects.toThrow("ERR binding of 'back' failed at start: cannot open 'back.u8'");
      fs.renameSync(path.join(dir, "back.u8.saved"), path.join(dir, "back.u8"));
      expect(await d.call("MMAP", "back", "back.u8", "uint8", "WRITABLE")).toBe(1);
      expect(await d.call("VGET", "back", "0")).toBe(9);
      expect(await d.call("INFO", "persistence")).toContain("bindings_failed:0\r\n");
      // The binding in place is named, and what differs.
      expect(await d.call("MMAP", "back", "back.u8", "uint8", "WRITABLE")).toBe(1);
      await expect(d.call("MMAP", "back", "back.u8", "int8", "WRITABLE")).rejects.toThrow(
        "ERR key 'back' is already bound as uint8 (1 byte, writable) to 'back.u8'; DEL it first to bind it as int8",
      );
      // The type before the file's writer (the main thread checks the writer first for other keys).
      await expect(d.call("MMAP", "other", "back.u8", "bogus")).rejects.toThrow("ERR value_type must be");
      await expect(d.call("MMAP", "other", "back.u8", "string")).rejects.toThrow(
        "ERR invalid value_size: string needs a size from 1 to 255",
      );
      await expect(d.call("MMAP", "other", "back.u8", "uint8")).rejects.toThrow("ERR file is already bound writable to key 'back'");
    } finally {
      await d.quit();
    }
  });
});

describe("restart time", () => {
  test("10,000 bindings are all back after a restart (time to ready is printed)", async () => {
    const dir = freshDir();
    const count = 10_000;
    const values = new Float64Array([1.5, 2.5, 3.5]);
    let log = "";
    for (let i = 0; i < count; i++) {
      fs.writeFileSync(path.join(dir, `f${i}.f64`), new Uint8Array(values.buffer));
      log += encodeRecord({ op: "bind", key: `key:${i}`, path: `f${i}.f64`, type: "double", size: 8, writable: i % 2 === 0 });
    }
    fs.writeFileSync(path.join(dir, REGISTRY_FILE), log);
    const started = performance.now();
    const server = await startServer({ dir, args: ["--workers", "2"] });
    const readyMs = performance.now() - started;
    try {
      console.log(`restart with ${count} bindings: ready after ${readyMs.toFixed(0)} ms (process start included)`);
      await withClient(server, async (c) => {
        expect(await call(c, "DBSIZE")).toBe(BigInt(count));
        expect((await call(c, "INFO", "persistence")) as string).toContain("bindings_failed:0\r\n");
        for (const i of [0, 1, 4999, 9998, 9999]) {
          expect(await call(c, "VALL", `key:${i}`)).toEqual(["1.5", "2.5", "3.5"]);
          expect(await call(c, "VADD", `key:${i}`, "4")).toEqual(i % 2 === 0 ? 1n : new ErrorReply("ERR The file is not writable"));
        }
      });
    } finally {
      await server.stop();
      server.cleanup();
    }
  });
});
