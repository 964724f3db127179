/**
 * The server as a process: command-line flags and --config files, --help / --version, bad flags
 * and values (exit 2, one line on stderr), the ready line, the default data directory, clean
 * exits on SIGINT / SIGTERM / SHUTDOWN after every owed reply is written, and maxclients.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { resp, RespClient } from "../../bench/resp_client.ts";
import { launchServer, startServer, tempDir, writeRawFile } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const ROOT = path.resolve(import.meta.dir, "../..");
const ENTRY = path.join(ROOT, "server.ts");

/** Runs the server to completion (for flags that exit at once). */
function runToExit(args: string[], cwd = ROOT): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync([process.execPath, ENTRY, ...args], { cwd, timeout: 20_000 });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

async function ask(c: RespClient, ...args: string[]): Promise<string> {
  c.write(resp(...args));
  return (await c.readReplies(1)).toString();
}

/** CONFIG GET of one parameter, as its value. */
async function configValue(port: number, name: string): Promise<string> {
  const c = await RespClient.connect(port);
  try {
    const reply = await ask(c, "CONFIG", "GET", name);
    return reply.split("\r\n")[4]!;
  } finally {
    c.close();
  }
}

/** The last line printed before the server starts: port, data directory and worker count. */
const READY_LINE = /^\d+:M \d\d \w{3} \d{4} [\d:.]+ \* Ready to accept connections tcp on 127\.0\.0\.1:(\d+), dir=(.+), workers=(\d+)$/m;

describe("flags", () => {
  test("--port, --dir and --workers, echoed by the ready line", async () => {
    const port = await freePort();
    const dir = tempDir();
    const s = await startServer({ port, dir, args: ["--workers", "3"] });
    try {
      const m = READY_LINE.exec(s.output())!;
      expect(m).not.toBeNull();
      expect([Number(m[1]), m[2], Number(m[3])]).toEqual([port, fs.realpathSync(dir), 3]);
      expect(s.port).toBe(port);
      expect(await configValue(port, "workers")).toBe("3");
      expect(await configValue(port, "dir")).toBe(fs.realpathSync(dir));
      const c = await RespClient.connect(port);
      try {
        expect((await ask(c, "INFO", "shards")).match(/shard\d:alive=1/g)?.length).toBe(3);
      } finally {
        c.close();
      }
    } finally {
      expect(await s.stop()).toBe(0);
      s.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--config FILE: redis.conf lines; flags after it override it, flags before it do not", async () => {
    const confDir = tempDir();
    const conf = path.join(confDir, "mmapd.conf");
    fs.writeFileSync(
      conf,
      ["# mmapd test configuration", "", "maxclients 77", 'requirepass "pass word"', "fsync always", "  timeout   30  ", "workers 3"].join(
        "\n",
      ),
    );
    const s = await startServer({ args: ["--maxclients", "5", "--config", conf, "--workers", "1", "--requirepass", "pw"] });
    try {
      const c = await RespClient.connect(s.port);
      try {
        expect(await ask(c, "AUTH", "pw")).toBe("+OK\r\n");
        const reply = await ask(c, "CONFIG", "GET", "maxclients", "fsync", "timeout", "workers");
        expect(reply).toBe(
          "*8\r\n$10\r\nmaxclients\r\n$2\r\n77\r\n$5\r\nfsync\r\n$6\r\nalways\r\n$7\r\ntimeout\r\n$2\r\n30\r\n$7\r\nworkers\r\n$1\r\n1\r\n",
        );
      } finally {
        c.close();
      }
      expect(READY_LINE.exec(s.output())![3]).toBe("1");
    } finally {
      expect(await s.stop()).toBe(0);
      s.cleanup();
      fs.rmSync(confDir, { recursive: true, force: true });
    }
  });

  test("a quoted requirepass from a config file is the password without quotes", async () => {
    const confDir = tempDir();
    const conf = path.join(confDir, "mmapd.conf");
    fs.writeFileSync(conf, 'requirepass "pass word"\n');
    const s = await startServer({ args: ["--config", conf] });
    try {
      const c = await RespClient.connect(s.port);
      try {
        expect(await ask(c, "AUTH", "pass word")).toBe("+OK\r\n");
      } finally {
        c.close();
      }
    } finally {
      expect(await s.stop()).toBe(0);
      s.cleanup();
      fs.rmSync(confDir, { recursive: true, force: true });
    }
  });

  test("--help prints the usage and exits 0", () => {
    const r = runToExit(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("Usage: mmapd [FILE] [options]\n");
    for (const flag of ["--port", "--dir", "--workers", "--config", "--requirepass", "--maxclients", "--help", "--version"])
      expect(r.stdout).toContain(flag);
    expect(r.stderr).toBe("");
  });

  test("--version prints the version and exits 0", () => {
    const r = runToExit(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`mmapd v=0.1.0 bun=${Bun.version}\n`);
  });

  const bad: [string, string[], RegExp][] = [
    ["an unknown flag", ["--no-such-flag"], /^mmapd: unknown option '--no-such-flag' \(see --help\)\n$/],
    // A first bare word is a config file, as redis-server takes one; a later one is an error.
    ["a bare word first: a config file that is missing", ["6379"], /^mmapd: cannot read config file '6379': ENOENT\n$/],
    ["a bare word after the config file", ["/dev/null", "6379"], /^mmapd: unexpected argument '6379'.*\n$/],
    ["a port that is not a number", ["--port", "abc"], /^mmapd: port: 'abc' is not an integer\n$/],
    ["a port out of range", ["--port", "70000"], /^mmapd: port: 70000 is out of range \[0, 65535\]\n$/],
    ["zero workers", ["--workers", "0"], /^mmapd: workers: 0 is out of range \[1, 256\]\n$/],
    ["a bad fsync policy", ["--fsync", "sometimes"], /^mmapd: fsync: 'sometimes' must be always, everysec or no\n$/],
    ["a flag without its value", ["--port"], /^mmapd: --port needs a value\n$/],
    [
      "a missing config file",
      ["--config", "/nonexistent/mmapd.conf"],
      /^mmapd: cannot read config file '\/nonexistent\/mmapd\.conf': ENOENT\n$/,
    ],
  ];
  for (const [name, args, message] of bad) {
    test(`${name}: exit 2 with one line on stderr`, () => {
      const r = runToExit(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    });
  }

  test("a bad line in a config file: exit 2 naming the file and line", () => {
    const confDir = tempDir();
    try {
      const conf = path.join(confDir, "bad.conf");
      fs.writeFileSync(conf, "maxclients 10\n\nmaxclients lots\n");
      const r = runToExit(["--config", conf]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`mmapd: ${conf}:3: maxclients: 'lots' is not an integer\n`);
    } finally {
      fs.rmSync(confDir, { recursive: true, force: true });
    }
  });

  test("the default data directory is ./data under the working directory, created if missing", async () => {
    const cwd = tempDir();
    try {
      const s = await launchServer(["--port", "0", "--workers", "1"], cwd);
      try {
        const m = READY_LINE.exec(s.output())!;
        expect(m[2]).toBe(fs.realpathSync(path.join(cwd, "data")));
        expect(fs.statSync(path.join(cwd, "data")).isDirectory()).toBe(true);
        const c = await RespClient.connect(s.port);
        try {
          expect(await ask(c, "MMAP", "k", "k.f64")).toBe(":0\r\n");
        } finally {
          c.close();
        }
        expect(fs.existsSync(path.join(cwd, "data", "k.f64"))).toBe(true);
      } finally {
        expect(await s.stop()).toBe(0);
      }
    } finally {
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe("shutdown", () => {
  /** A file whose VALL reply is megabytes: more than the socket takes while the client does not read. */
  const VALUES = 400_000;

  /** Waits until the named client has reply bytes the socket did not take (CLIENT LIST omem). */
  async function unsentReplyBytes(port: number, name: string): Promise<number> {
    const observer = await RespClient.connect(port);
    try {
      for (let attempt = 0; attempt < 100; attempt++) {
        const list = await ask(observer, "CLIENT", "LIST");
        const omem = Number(new RegExp(`name=${name} .* omem=(\\d+)`).exec(list)?.[1] ?? 0);
        if (omem > 0) return omem;
        await Bun.sleep(20);
      }
      return 0;
    } finally {
      observer.close();
    }
  }

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    test(`${signal}: exit 0 after every owed reply is written`, async () => {
      const s = await startServer({ args: ["--workers", "2"] });
      try {
        writeRawFile(
          path.join(s.dir, "big.f64"),
          8,
          new Array(VALUES).fill(0).map((_, i) => i + 0.5),
          (v, at, x) => v.setFloat64(at, x, true),
        );
        const c = await RespClient.connect(s.port);
        try {
          expect(await ask(c, "MMAP", "big", "big.f64")).toBe(`:${VALUES}\r\n`);
          expect(await ask(c, "CLIENT", "SETNAME", "big-reader")).toBe("+OK\r\n");
          // Stop reading, so the reply piles up in the server, then ask for the signal.
          c.socket.pause();
          c.write(Buffer.concat([resp("VALL", "big"), resp("PING")]));
          expect(await unsentReplyBytes(s.port, "big-reader")).toBeGreaterThan(0);
          s.proc.kill(signal);
          // A slow reader: the server must wait for it rather than exit with replies unsent.
          await Bun.sleep(300);
          c.socket.resume();
          const got = await c.readUntil(() => false, 20_000);
          const header = `*${VALUES}\r\n`;
          expect(got.subarray(0, header.length).toString()).toBe(header);
          expect(got.subarray(got.length - 40).toString()).toEndWith(`$8\r\n${VALUES - 1}.5\r\n+PONG\r\n`);
          const items = got.toString().split("\r\n").length;
          expect(items).toBe(1 + 2 * VALUES + 2);
          expect(c.closed).toBe(true);
        } finally {
          c.close();
        }
        expect(await s.proc.exited).toBe(0);
        expect(s.output()).toContain(`User requested ${signal} scheduling shutdown`);
        expect(s.output()).toContain("ready to exit");
      } finally {
        await s.stop();
        s.cleanup();
      }
    });
  }

  test("SHUTDOWN closes the connection and exits 0, answering earlier commands first", async () => {
    const s = await startServer({ args: ["--workers", "2"] });
    try {
      const c = await RespClient.connect(s.port);
      try {
        c.write(Buffer.concat([resp("MMAP", "k", "k.f64"), resp("VADD", "k", "1.5"), resp("SHUTDOWN", "NOSAVE")]));
        const got = await c.readUntil(() => false, 20_000);
        expect(got.toString()).toBe(":0\r\n:1\r\n");
        expect(c.closed).toBe(true);
      } finally {
        c.close();
      }
      expect(await s.proc.exited).toBe(0);
      expect(s.output()).toContain("User requested SHUTDOWN");
      // The value written just before reached the file.
      expect(new DataView(fs.readFileSync(path.join(s.dir, "k.f64")).buffer).getFloat64(0, true)).toBe(1.5);
    } finally {
      await s.stop();
      s.cleanup();
    }
  });

  test("SHUTDOWN with a bad argument is refused and the server keeps running", async () => {
    const s = await startServer({ args: ["--workers", "1"] });
    try {
      const c = await RespClient.connect(s.port);
      try {
        expect(await ask(c, "SHUTDOWN", "LATER")).toBe("-ERR syntax error\r\n");
        expect(await ask(c, "PING")).toBe("+PONG\r\n");
      } finally {
        c.close();
      }
    } finally {
      expect(await s.stop()).toBe(0);
      s.cleanup();
    }
  });
});

describe("maxclients", () => {
  test("with --maxclients 3 the 4th connection is refused; the others go on", async () => {
    const s = await startServer({ args: ["--workers", "1", "--maxclients", "3"] });
    const clients: RespClient[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const c = await RespClient.connect(s.port);
        clients.push(c);
        expect(await ask(c, "PING")).toBe("+PONG\r\n");
      }
      const fourth = await RespClient.connect(s.port);
      clients.push(fourth);
      const got = await fourth.readUntil(() => false, 5000);
      expect(got.toString()).toBe("-ERR max number of clients reached\r\n");
      expect(fourth.closed).toBe(true);
      for (const c of clients.slice(0, 3)) expect(await ask(c, "ECHO", "ok")).toBe("$2\r\nok\r\n");

      // A freed place can be taken again.
      clients[0]!.close();
      let accepted = false;
      for (let attempt = 0; attempt < 50 && !accepted; attempt++) {
        const again = await RespClient.connect(s.port);
        clients.push(again);
        again.write(resp("PING"));
        accepted = (await again.readReplies(1, 2000)).toString() === "+PONG\r\n";
        if (!accepted) await Bun.sleep(50);
      }
      expect(accepted).toBe(true);
      const stats = await ask(clients[1]!, "INFO", "stats");
      expect(Number(/rejected_connections:(\d+)/.exec(stats)![1])).toBeGreaterThanOrEqual(1);
    } finally {
      for (const c of clients) c.close();
      expect(await s.stop()).toBe(0);
      s.cleanup();
    }
  });
});
