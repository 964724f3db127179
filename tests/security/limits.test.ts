/**
 * The named client limits, each through a real server with the limit set low: a query buffer over
 * client-query-buffer-limit closes that client; a bulk over proto-max-bulk-len is a protocol error;
 * a client that never reads its replies is dropped at client-output-buffer-limit (logged, others
 * unaffected); maxclients + 1 is refused; 1,000 simultaneous clients are all served; and `timeout`
 * closes idle clients only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { call, ErrorReply, resp, RespClient } from "../../bench/resp_client.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

/** Writes `count` float64 values i + 0.5 into the data directory. */
function writeValues(dir: string, name: string, count: number): void {
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = i + 0.5;
  fs.writeFileSync(path.join(dir, name), new Uint8Array(values.buffer));
}

/** Resolves once `predicate(server output)` holds, or fails after `timeoutMs`. */
async function waitForLog(server: TestServer, predicate: (log: string) => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate(server.output())) {
    if (Date.now() > deadline) throw new Error(`log line not seen; log:\n${server.output()}`);
    await Bun.sleep(20);
  }
}

describe("input and output limits", () => {
  let server: TestServer;
  let bystander: RespClient;

  beforeAll(async () => {
    server = await startServer({
      args: [
        "--workers",
        "2",
        "--client-query-buffer-limit",
        "100000",
        "--proto-max-bulk-len",
        "32768",
        "--client-output-buffer-limit",
        "1048576",
      ],
    });
    writeValues(server.dir, "big.f64", 100_000); // VALL replies about 1.3 MB
    bystander = await RespClient.connect(server.port);
    expect(await call(bystander, "MMAP", "big", "big.f64", "double")).toBe(100_000n);
  });

  afterAll(async () => {
    bystander?.close();
    await server?.stop();
    server?.cleanup();
  });

  test("a command growing past client-query-buffer-limit closes the client; others go on", async () => {
    const c = await RespClient.connect(server.port);
    // Many small arguments: each is within proto-max-bulk-len, the whole command is not.
    const header = Buffer.from("*100000\r\n");
    const arg = Buffer.from("$10\r\n0123456789\r\n");
    c.write(Buffer.concat([header, ...Array.from({ length: 8000 }, () => arg)])); // 128 kB, incomplete
    expect(await c.waitClosed()).toBe(true);
    await waitForLog(server, (log) => log.includes("query buffer over 100000 bytes"));
    expect(await call(bystander, "PING")).toBe("PONG");
  });

  test("an inline request without newline past 64 kB is a protocol error", async () => {
    const c = await RespClient.connect(server.port);
    c.write(Buffer.alloc(70_000, "a"));
    const reply = (await c.readUntil((b) => b.includes("\r\n"))).toString();
    expect(reply).toBe("-ERR Protocol error: too big inline request\r\n");
    expect(await c.waitClosed()).toBe(true);
  });

  test("a bulk longer than proto-max-bulk-len is a protocol error, and closes the client", async () => {
    const c = await RespClient.connect(server.port);
    c.write("*2\r\n$4\r\nECHO\r\n$32769\r\n");
    expect((await c.readUntil((b) => b.includes("\r\n"))).toString()).toBe("-ERR Protocol error: invalid bulk length\r\n");
    expect(await c.waitClosed()).toBe(true);
    const ok = await RespClient.connect(server.port);
    ok.write(resp("ECHO", "x".repeat(32768)));
    expect((await ok.readReplies(1)).length).toBe(32768 + 10);
    ok.close();
  });

  test("a client that never reads its replies is dropped at client-output-buffer-limit, logged", async () => {
    const lazy = net.connect({ host: "127.0.0.1", port: server.port });
    await new Promise<void>((resolve) => lazy.once("connect", () => resolve()));
    lazy.pause(); // never read: replies pile up in the kernel, then in the server
    let closed = false;
    lazy.on("close", () => (closed = true));
    lazy.on("error", () => {});
    const vall = resp("VALL", "big");
    for (let i = 0; i < 20; i++) lazy.write(vall); // about 26 MB of replies asked for: more than kernel buffers hold
    await waitForLog(
      server,
      (log) => /Closing client 127\.0\.0\.1:\d+: \d+ bytes of replies unread \(client-output-buffer-limit\)/.test(log),
      15_000,
    );
    // Others are served meanwhile, big replies included.
    expect(await call(bystander, "PING")).toBe("PONG");
    const all = await call(bystander, "VALL", "big");
    expect(Array.isArray(all) && all.length).toBe(100_000);
    // The dropped client gets what was already on its way, then the end of the stream.
    let received = 0;
    lazy.on("data", (d: Buffer) => (received += d.length));
    lazy.resume();
    const deadline = Date.now() + 10_000;
    while (!closed && Date.now() < deadline) await Bun.sleep(20);
    expect(closed).toBe(true);
    expect(received).toBeLessThan(20 * 1_300_000);
    const info = await call(bystander, "INFO", "stats");
    expect(String(info)).toMatch(/client_output_buffer_limit_disconnections:[1-9]/);
  }, 30_000);
});

describe("maxclients", () => {
  test("maxclients + 1 is refused with Redis's error; a freed place can be taken again", async () => {
    const server = await startServer({ args: ["--workers", "1", "--maxclients", "5"] });
    const clients: RespClient[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const c = await RespClient.connect(server.port);
        clients.push(c);
        expect(await call(c, "PING")).toBe("PONG");
      }
      const extra = await RespClient.connect(server.port);
      expect((await extra.readUntil((b) => b.includes("\r\n"))).toString()).toBe("-ERR max number of clients reached\r\n");
      expect(await extra.waitClosed()).toBe(true);
      for (const c of clients) expect(await call(c, "PING")).toBe("PONG");
      clients.pop()!.close();
      const deadline = Date.now() + 5000;
      let reply: unknown = null;
      while (Date.now() < deadline) {
        const again = await RespClient.connect(server.port);
        clients.push(again);
        reply = await call(again, "PING").catch(() => null);
        if (reply === "PONG") break;
        await Bun.sleep(50);
      }
      expect(reply).toBe("PONG");
    } finally {
      for (const c of clients) c.close();
      await server.stop();
      server.cleanup();
    }
  });

  test("1,000 simultaneous clients are all served", async () => {
    const server = await startServer({ args: ["--workers", "2"] });
    writeValues(server.dir, "v.f64", 1000);
    const sockets: net.Socket[] = [];
    try {
      const admin = await RespClient.connect(server.port);
      expect(await call(admin, "MMAP", "v", "v.f64", "double")).toBe(1000n);
      admin.close();
      const replies = await Promise.all(
        Array.from(
          { length: 1000 },
          (_, i) =>
            new Promise<string>((resolve, reject) => {
              const s = net.connect({ host: "127.0.0.1", port: server.port }, () =>
                s.write(Buffer.concat([resp("PING"), resp("VGET", "v", String(i))])),
              );
              sockets.push(s);
              let text = "";
              const expected = `+PONG\r\n$${String(i + 0.5).length}\r\n${i + 0.5}\r\n`;
              s.on("data", (d) => {
                text += d.toString();
                if (text.length >= expected.length) resolve(text);
              });
              s.on("error", reject);
              s.on("close", () => resolve(text));
            }),
        ),
      );
      const wrong = replies.filter((text, i) => text !== `+PONG\r\n$${String(i + 0.5).length}\r\n${i + 0.5}\r\n`);
      expect(wrong).toEqual([]);
      const info = await RespClient.connect(server.port);
      expect(String(await call(info, "INFO", "clients"))).toMatch(/connected_clients:100[01]\r\n/);
      info.close();
    } finally {
      for (const s of sockets) s.destroy();
      await server.stop();
      server.cleanup();
    }
  }, 30_000);
});

describe("timeout", () => {
  test("an idle client is closed after `timeout` seconds; a busy one is not", async () => {
    const server = await startServer({ args: ["--workers", "1", "--timeout", "1", "--loglevel", "verbose"] });
    try {
      const idle = await RespClient.connect(server.port);
      const busy = await RespClient.connect(server.port);
      expect(await call(idle, "PING")).toBe("PONG");
      const started = Date.now();
      while (!idle.closed && Date.now() - started < 5000) {
        expect(await call(busy, "PING")).toBe("PONG");
        await Bun.sleep(200);
      }
      expect(idle.closed).toBe(true);
      const after = (Date.now() - started) / 1000;
      expect(after).toBeGreaterThanOrEqual(1);
      expect(after).toBeLessThan(3.5);
      expect(busy.closed).toBe(false);
      expect(await call(busy, "PING")).toBe("PONG");
      expect(server.output()).toContain("Closing idle client 127.0.0.1:");
      // CONFIG SET timeout 0 turns it off.
      expect(await call(busy, "CONFIG", "SET", "timeout", "0")).toBe("OK");
      const lingering = await RespClient.connect(server.port);
      await Bun.sleep(2500);
      expect(lingering.closed).toBe(false);
      expect(await call(lingering, "PING")).toBe("PONG");
      lingering.close();
      busy.close();
    } finally {
      await server.stop();
      server.cleanup();
    }
  }, 20_000);
});

test("limits are visible in CONFIG GET", async () => {
  const server = await startServer({ args: ["--workers", "1", "--maxclients", "7", "--client-output-buffer-limit", "2048"] });
  try {
    const c = await RespClient.connect(server.port);
    const reply = await call(
      c,
      "CONFIG",
      "GET",
      "maxclients",
      "client-output-buffer-limit",
      "client-query-buffer-limit",
      "proto-max-bulk-len",
      "timeout",
    );
    expect(reply).toEqual([
      "maxclients",
      "7",
      "client-output-buffer-limit",
      "2048",
      "client-query-buffer-limit",
      "1073741824",
      "proto-max-bulk-len",
      "536870912",
      "timeout",
      "0",
    ]);
    expect(await call(c, "CONFIG", "SET", "maxclients", "0")).toBeInstanceOf(ErrorReply);
    c.close();
  } finally {
    await server.stop();
    server.cleanup();
  }
});
