/**
 * Start-up and shutdown as a process, and what the log says: a taken port fails as Redis fails
 * (same words) and leaves nothing in the data directory; the process exits promptly once its last
 * reply is out; the start-up log counts the bindings restored and names those that failed;
 * connections are logged at verbose, refused MMAPs all the same way, and nothing per command at
 * notice.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn, spawnSync } from "bun";
import fs from "node:fs";
import path from "node:path";
import { RespClient } from "../../bench/resp_client.ts";
import { redisServerCommand } from "../helpers/redis.ts";
import { hasTool, redisCli, startServer, tempDir } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const ROOT = path.resolve(import.meta.dir, "../..");
const ENTRY = path.join(ROOT, "server.ts");

/** A log line without its `pid:M date time ` prefix. */
const LOG_PREFIX = /^\d+:M \d\d \w{3} \d{4} [\d:.]+ /;

describe("a port that is taken", () => {
  test("fails as redis-server fails, exit 1, and leaves nothing behind", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = holder.port;
    const parent = tempDir("mmapd-taken-");
    try {
      const fresh = path.join(parent, "data");
      const empty = path.join(parent, "empty");
      fs.mkdirSync(empty);
      for (const dir of [fresh, empty]) {
        const r = spawnSync([process.execPath, ENTRY, "--port", String(port), "--dir", dir, "--workers", "1"], {
          cwd: ROOT,
          timeout: 20_000,
        });
        expect(r.exitCode).toBe(1);
        const lines = r.stdout
          .toString()
          .trim()
          .split("\n")
          .slice(-2)
          .map((l) => l.replace(LOG_PREFIX, ""));
        expect(lines).toEqual([
          `# Warning: Could not create server TCP listening socket 127.0.0.1:${port}: bind: Address already in use`,
          `# Failed listening on port ${port} (TCP), aborting.`,
        ]);
        // Redis's own words, on the same port.
        if (hasTool("redis-server")) {
          const redis = spawnSync(redisServerCommand(port, parent), { timeout: 20_000 });
          const theirs = redis.stdout
            .toString()
            .trim()
            .split("\n")
            .slice(-2)
            .map((l) => l.replace(LOG_PREFIX, ""));
          expect(lines).toEqual(theirs);
        }
      }
      expect(fs.existsSync(fresh)).toBe(false);
      expect(fs.readdirSync(empty)).toEqual([]);
    } finally {
      holder.stop(true);
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("shutdown", () => {
  /** Milliseconds from the moment `close` resolves (the last reply is in) to the process's exit. */
  async function exitDelay(trigger: "SHUTDOWN" | "SIGTERM" | "redis-cli SHUTDOWN"): Promise<number> {
    const s = await startServer({ args: ["--workers", "2"] });
    try {
      const c = await RespClient.connect(s.port);
      expect(await c.text("MMAP", "k", "k.f64")).toBe(":0\r\n");
      expect(await c.text("VADD", "k", "1.5")).toBe(":1\r\n");
      let closed: number;
      if (trigger === "redis-cli SHUTDOWN") {
        c.close();
        // redis-cli returns once the server has closed its connection.
        expect(redisCli(s.port, "SHUTDOWN")).toBe("");
        closed = performance.now();
      } else {
        if (trigger === "SHUTDOWN") c.write("*1\r\n$8\r\nSHUTDOWN\r\n");
        else s.proc.kill("SIGTERM");
        expect(await c.waitClosed(10_000)).toBe(true);
        closed = performance.now();
      }
      await s.proc.exited;
      const delay = performance.now() - closed;
      expect(s.proc.exitCode).toBe(0);
      expect(s.output()).toContain("bye bye");
      return delay;
    } finally {
      await s.stop();
      s.cleanup();
    }
  }

  for (const trigger of ["SHUTDOWN", "SIGTERM", "redis-cli SHUTDOWN"] as const) {
    test(`${trigger}: the process is gone within 200 ms of its last reply`, async () => {
      const delays: number[] = [];
      for (let i = 0; i < 3; i++) delays.push(await exitDelay(trigger));
      // The median, so that one descheduling on a busy machine does not decide.
      expect(delays.sort((a, b) => a - b)[1]).toBeLessThan(200);
    });
  }
});

describe("the start-up log", () => {
  test("counts the bindings restored and names those that failed", async () => {
    const dir = tempDir();
    try {
      const first = await startServer({ dir, args: ["--workers", "2"] });
      try {
        const c = await RespClient.connect(first.port);
        for (const key of ["a", "b", "gone", "also gone"]) expect(await c.text("MMAP", key, `${key}.f64`)).toBe(":0\r\n");
        c.close();
        expect(first.output()).toMatch(/\* Restored 0 bindings from .*bindings\.log\n/);
      } finally {
        expect(await first.stop()).toBe(0);
      }
      fs.rmSync(path.join(dir, "gone.f64"));
      fs.rmSync(path.join(dir, "also gone.f64"));
      const second = await startServer({ dir, args: ["--workers", "2"] });
      try {
        const line = second
          .output()
          .split("\n")
          .find((l) => l.includes("Restored"))!;
        expect(line.replace(LOG_PREFIX, "")).toMatch(
          new RegExp(
            `^# Restored 2 bindings from ${fs.realpathSync(dir)}/bindings\\.log; 2 failed: ('gone', 'also gone'|'also gone', 'gone') \\(see INFO persistence\\)$`,
          ),
        );
        // The ready line comes after it: clients are served once the bindings are back.
        expect(second.output().indexOf("Restored")).toBeLessThan(second.output().indexOf("Ready to accept"));
      } finally {
        expect(await second.stop()).toBe(0);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("logs", () => {
  test("at verbose, each connection's opening and closing", async () => {
    const s = await startServer({ args: ["--workers", "1", "--loglevel", "verbose"] });
    try {
      const c = await RespClient.connect(s.port);
      const address = `127.0.0.1:${c.socket.localPort}`;
      expect(await c.text("CLIENT", "SETNAME", "logged")).toBe("+OK\r\n");
      c.close();
      const deadline = Date.now() + 5000;
      while (!s.output().includes(`Client closed connection`) && Date.now() < deadline) await Bun.sleep(20);
      expect(s.output()).toMatch(new RegExp(`- Accepted ${address}\\n`));
      expect(s.output()).toMatch(new RegExp(`- Client closed connection id=\\d+ addr=${address} name=logged\\n`));
    } finally {
      expect(await s.stop()).toBe(0);
      s.cleanup();
    }
  });

  test("at notice, nothing per command; a refused MMAP is one line of one format, whatever refused it", async () => {
    const s = await startServer({ args: ["--workers", "2"] });
    try {
      fs.writeFileSync(path.join(s.dir, "odd.bin"), new Uint8Array(7));
      const before = s.output();
      // Commands that succeed, fail or are refused, from redis-cli and a raw client: no line.
      if (hasTool("redis-cli"))
        for (const args of [["PING"], ["MMAP", "w", "w.f64"], ["VADD", "w", "1"], ["VGET", "w", "5"], ["NOSUCH"], ["DEL", "w"]])
          redisCli(s.port, ...args);
      const c = await RespClient.connect(s.port);
      try {
        await c.pipeline(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? ["PING"] : ["VGET", "nokey", "0"])));
        await Bun.sleep(100);
        expect(s.output()).toBe(before);
        // Four reasons, found on the main thread or in a shard: the same line each time.
        expect(await c.text("MMAP", "k1", "../outside.f64", "double")).toBe("-ERR path is outside the data directory\r\n");
        expect(await c.text("MMAP", "k2", "missing.f64", "double")).toBe("-ERR cannot open 'missing.f64': No such file or directory\r\n");
        expect(await c.text("MMAP", "k3", "odd.bin", "double")).toStartWith("-ERR ");
        expect(await c.text("MMAP", "k4", "w4.f64", "double", "WRITABLE")).toBe(":0\r\n");
        expect(await c.text("MMAP", "k5", "w4.f64", "double", "WRITABLE")).toBe("-ERR file is already bound writable to key 'k4'\r\n");
      } finally {
        c.close();
      }
      const deadline = Date.now() + 3000;
      const added = () =>
        s
          .output()
          .slice(before.length)
          .split("\n")
          .filter((l) => l !== "");
      while (added().length < 4 && Date.now() < deadline) await Bun.sleep(20);
      const lines = added().map((l) => l.replace(LOG_PREFIX, ""));
      expect(lines).toHaveLength(4);
      const port = String(lines[0].match(/from client 127\.0\.0\.1:(\d+):/)?.[1]);
      const refused = (given: string) =>
        new RegExp(`^# Refused MMAP of '${given.replace(/\./g, "\\.")}' from client 127\\.0\\.0\\.1:${port}: ERR .+$`);
      ["../outside.f64", "missing.f64", "odd.bin", "w4.f64"].forEach((given, i) => {
        expect(lines[i]).toMatch(refused(given));
      });
    } finally {
      expect(await s.stop()).toBe(0);
      s.cleanup();
    }
  });
});

describe("clients that connect during the start", () => {
  test("wait until the bindings are restored, then are served", async () => {
    const dir = tempDir();
    try {
      const first = await startServer({ dir, args: ["--workers", "2"] });
      const keys = Array.from({ length: 300 }, (_, i) => `key${i}`);
      try {
        const c = await RespClient.connect(first.port);
        const { errors } = await c.pipeline(
          keys.flatMap((k) => [
            ["MMAP", k, `${k}.f64`],
            ["VADD", k, "2.5"],
          ]),
        );
        expect(errors).toEqual([]);
        c.close();
      } finally {
        expect(await first.stop()).toBe(0);
      }
      // The same port again, known before the server says it is ready: connect as soon as it listens.
      const port = first.port;
      const proc = spawn([process.execPath, ENTRY, "--port", String(port), "--dir", dir, "--workers", "2"], { cwd: ROOT, stdout: "pipe" });
      try {
        let c: RespClient | null = null;
        const deadline = Date.now() + 20_000;
        while (c === null && Date.now() < deadline) c = await RespClient.connect(port).catch(() => null);
        expect(c).not.toBeNull();
        const replies = await c!.replies(keys.slice(-3).map((k) => ["VGET", k, "0"]));
        expect(replies.toString()).toBe("$3\r\n2.5\r\n".repeat(3));
        c!.close();
      } finally {
        proc.kill("SIGTERM");
        expect(await proc.exited).toBe(0);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("pidfile", () => {
  test("written at start with the process id, removed at exit", async () => {
    const dir = tempDir();
    try {
      const pidfile = path.join(dir, "p.pid");
      const proc = spawn([process.execPath, ENTRY, "--port", "0", "--dir", path.join(dir, "d"), "--workers", "1", "--pidfile", pidfile], {
        cwd: ROOT,
        stdout: "pipe",
      });
      const deadline = Date.now() + 20_000;
      while (!fs.existsSync(pidfile) && Date.now() < deadline) await Bun.sleep(20);
      expect(fs.readFileSync(pidfile, "utf8")).toBe(`${proc.pid}\n`);
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
      expect(fs.existsSync(pidfile)).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
