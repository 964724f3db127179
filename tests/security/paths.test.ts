/**
 * The Binding rules on paths (COMMANDS.md), end to end through a real server: paths that leave the
 * data directory by `..`, by being absolute or through a symlink are refused, and logged at warning
 * level with the client's address; directories, devices, FIFOs and kernel files are refused even
 * with --allow-any-path; and a symlink or directory swapped in between the check and the open never
 * leads the server to open anything outside (watched with inotify while another thread flips them).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { dlopen } from "bun:ffi";
import fs from "node:fs";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { call, ErrorReply, resp, RespClient } from "../../bench/resp_client.ts";
import { startServer, tempDir, type TestServer } from "../helpers/server.ts";

const OUTSIDE = new ErrorReply("ERR path is outside the data directory");
const notRegular = (given: string) => new ErrorReply(`ERR '${given}' is not a regular file`);

let base: string; // holds data/ and outside/
let data: string;
let outside: string;
let server: TestServer;
let client: RespClient;

/** Writes float64 values to a file. */
function writeDoubles(file: string, values: number[]): void {
  fs.writeFileSync(file, new Uint8Array(new Float64Array(values).buffer));
}

/** A snapshot of every file under `dir` (name -> bytes as hex), to prove nothing changed there. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const full = path.join(dir, name);
    const stats = fs.lstatSync(full);
    out[name] = stats.isFile() ? fs.readFileSync(full).toString("hex") : stats.isDirectory() ? "dir" : "other";
  }
  return out;
}

beforeAll(async () => {
  base = fs.realpathSync(tempDir("mmapd-paths-"));
  data = path.join(base, "data");
  outside = path.join(base, "outside");
  fs.mkdirSync(path.join(data, "sub"), { recursive: true });
  fs.mkdirSync(path.join(data, "adir"));
  fs.mkdirSync(path.join(outside, "odir"), { recursive: true });
  writeDoubles(path.join(outside, "secret.f64"), [666, 667]);
  writeDoubles(path.join(outside, "odir", "f.f64"), [666, 667]);
  writeDoubles(path.join(data, "in.f64"), [0.5, 1.5]);
  writeDoubles(path.join(data, "sub", "f.f64"), [0.5, 1.5]);
  fs.symlinkSync(path.join(outside, "secret.f64"), path.join(data, "out_link.f64"));
  fs.symlinkSync("../outside/secret.f64", path.join(data, "relative_out_link.f64"));
  fs.symlinkSync(outside, path.join(data, "out_dir"));
  fs.symlinkSync("in.f64", path.join(data, "in_link.f64"));
  expect(spawnSync(["mkfifo", path.join(data, "fifo")]).exitCode).toBe(0);
  server = await startServer({ dir: data, args: ["--workers", "2"] });
  client = await RespClient.connect(server.port);
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  fs.rmSync(base, { recursive: true, force: true });
});

describe("paths that leave the data directory are refused", () => {
  const cases: [string, string[]][] = [
    ["../x.f64", []],
    ["../outside/secret.f64", ["double"]],
    ["/etc/passwd", ["uint8"]],
    ["a/../../x.f64", []],
    ["sub/../../outside/secret.f64", ["double"]],
    ["out_link.f64", ["double"]],
    ["relative_out_link.f64", ["double"]],
    ["out_link.f64", []], // writable: must neither open nor create anything outside
    ["out_dir/secret.f64", ["double"]],
    ["out_dir/new.f64", []],
    ["/dev/zero", ["uint8"]],
    ["/proc/self/mem", ["uint8", "WRITABLE"]],
  ];
  for (const [given, rest] of cases) {
    test(`MMAP k ${given} ${rest.join(" ")}`, async () => {
      const before = snapshot(outside);
      expect(await call(client, "MMAP", "k", given, ...rest)).toEqual(OUTSIDE);
      expect(snapshot(outside)).toEqual(before);
      expect(await call(client, "EXISTS", "k")).toBe(0n);
    });
  }

  test("every refusal is logged at warning level with the client's address", async () => {
    const port = (client.socket.localPort ?? 0).toString();
    const deadline = Date.now() + 3000;
    const wanted = `# Refused MMAP of '../x.f64' from client 127.0.0.1:${port}: ERR path is outside the data directory`;
    while (!server.output().includes(wanted) && Date.now() < deadline) await Bun.sleep(20);
    expect(server.output()).toContain(wanted);
    expect(server.output()).toContain(`# Refused MMAP of '/proc/self/mem' from client 127.0.0.1:${port}`);
  });

  test("a path with CR/LF cannot forge a log line", async () => {
    expect(await call(client, "MMAP", "k", "../x\r\n123:M fake # line", "double")).toEqual(OUTSIDE);
    await Bun.sleep(50);
    expect(server.output()).not.toMatch(/\n123:M fake/);
  });
});

describe("files that are not regular files are refused", () => {
  for (const [given, rest] of [
    ["fifo", ["double"]],
    ["fifo", []],
    ["adir", ["double"]],
    ["adir", []],
    ["sub", []],
    [".", []],
  ] as [string, string[]][]) {
    test(`MMAP k ${given} ${rest.join(" ")}`, async () => {
      expect(await call(client, "MMAP", "k", given, ...rest)).toEqual(notRegular(given));
    });
  }

  test("...and logged", () => {
    expect(server.output()).toContain("# Refused MMAP of 'fifo' from client 127.0.0.1:");
  });
});

describe("paths inside the data directory work", () => {
  test("plain, in a subdirectory, through an inside symlink, with a harmless ..", async () => {
    for (const [key, given] of [
      ["p1", "in.f64"],
      ["p2", "sub/f.f64"],
      ["p3", "in_link.f64"],
      ["p4", "sub/../in.f64"],
      ["p5", path.join(data, "in.f64")], // absolute, but inside
    ]) {
      expect(await call(client, "MMAP", key, given, "double")).toBe(2n);
      expect(await call(client, "VGET", key, "1")).toBe("1.5");
    }
  });
});

/** inotify on a directory: counts IN_OPEN events of its files (and of itself). */
function watchOpens(dir: string): { opens(): number; close(): void } {
  const libc = dlopen("libc.so.6", {
    inotify_init1: { args: ["i32"], returns: "i32" },
    inotify_add_watch: { args: ["i32", "ptr", "u32"], returns: "i32" },
    read: { args: ["i32", "ptr", "u64"], returns: "i64" },
    close: { args: ["i32"], returns: "i32" },
  });
  const IN_NONBLOCK = 0x800;
  const IN_OPEN = 0x20;
  const fd = libc.symbols.inotify_init1(IN_NONBLOCK);
  const watches: number[] = [];
  for (const d of [dir, ...(fs.readdirSync(dir, { recursive: true }) as string[]).map((n) => path.join(dir, n))]) {
    if (fs.lstatSync(d).isDirectory()) watches.push(libc.symbols.inotify_add_watch(fd, Buffer.from(d + "\0"), IN_OPEN));
  }
  expect(fd).toBeGreaterThanOrEqual(0);
  expect(watches.every((w) => w >= 0)).toBe(true);
  let count = 0;
  const buffer = new Uint8Array(64 * 1024);
  return {
    opens() {
      for (;;) {
        const n = Number(libc.symbols.read(fd, buffer, buffer.length));
        if (n <= 0) return count;
        const view = new DataView(buffer.buffer, 0, n);
        for (let at = 0; at < n; at += 16 + view.getUint32(at + 12, true)) if (view.getUint32(at + 4, true) & IN_OPEN) count++;
      }
    },
    close() {
      libc.symbols.close(fd);
      libc.close();
    },
  };
}

describe("symlinks swapped in between check and open", () => {
  test("while another thread flips paths to point outside, nothing outside is ever opened", async () => {
    // Targets: a directory and a file inside, each swapped in a loop for a symlink to outside.
    fs.mkdirSync(path.join(data, "flip_dir"));
    writeDoubles(path.join(data, "flip_dir", "f.f64"), [0.5, 1.5]);
    writeDoubles(path.join(data, "flip_file.f64"), [0.5, 1.5]);
    const flipper = path.join(base, "flipper.ts");
    fs.writeFileSync(
      flipper,
      `import fs from "node:fs";
import { workerData, parentPort } from "node:worker_threads";
const { data, outside, stop } = workerData;
const stopFlag = new Int32Array(stop);
const swaps = [
  [data + "/flip_dir", outside + "/odir"],
  [data + "/flip_file.f64", outside + "/secret.f64"],
];
let flips = 0;
for (const [target, link] of swaps) { try { fs.unlinkSync(target + ".link"); } catch {} fs.symlinkSync(link, target + ".link"); }
while (Atomics.load(stopFlag, 0) === 0) {
  for (const [target] of swaps) {
    fs.renameSync(target, target + ".hold");
    fs.renameSync(target + ".link", target); // now a symlink to outside
    fs.renameSync(target, target + ".link");
    fs.renameSync(target + ".hold", target); // the real one again
    flips++;
  }
}
parentPort.postMessage(flips);
`,
    );
    const watcher = watchOpens(outside);
    const stop = new SharedArrayBuffer(4);
    const worker = new Worker(flipper, { workerData: { data, outside, stop } });
    const flipped = new Promise<number>((resolve) => worker.once("message", resolve));

    const outcomes = new Map<string, number>();
    let flips = 0;
    let opens = -1;
    try {
      const ATTEMPTS = 400;
      for (let i = 0; i < ATTEMPTS; i++) {
        const given = i % 2 === 0 ? "flip_dir/f.f64" : "flip_file.f64";
        const key = `race${i}`;
        // Read-only and writable (which would create a missing file) in turn.
        const reply = await call(client, "MMAP", key, given, ...(i % 4 < 2 ? ["double"] : ["double", "WRITABLE"]));
        let outcome: string;
        if (reply === 2n) {
          // Bound: it must be the inside file (the outside one holds 666, 667).
          expect(await call(client, "VGET", key, "0")).toBe("0.5");
          expect(await call(client, "DEL", key)).toBe(1n);
          outcome = "bound inside";
        } else if (reply === 0n) {
          // Writable, at a moment the file was moved away: a new empty file was created in its place.
          expect(await call(client, "DEL", key)).toBe(1n);
          outcome = "created inside";
        } else if (reply instanceof ErrorReply) {
          outcome = reply.message.replace(/'[^']*'/g, "'…'");
        } else throw new Error(`unexpected reply ${String(reply)}`);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    } finally {
      // Stopped whatever happened, so that nothing renames files while they are cleaned up.
      Atomics.store(new Int32Array(stop), 0, 1);
      flips = await Promise.race([flipped, Bun.sleep(5000).then(() => -1)]);
      await worker.terminate();
      opens = watcher.opens();
      watcher.close();
    }

    expect(flips).toBeGreaterThan(100);
    expect(opens).toBe(0);
    // Every outcome is a bind of the inside file or a refusal; both must have happened for the
    // race to have been run at all.
    for (const outcome of outcomes.keys()) {
      expect(["bound inside", "created inside", OUTSIDE.message, "ERR cannot open '…': No such file or directory"]).toContain(outcome);
    }
    expect(outcomes.get("bound inside") ?? 0).toBeGreaterThan(0);
    expect(outcomes.get(OUTSIDE.message) ?? 0).toBeGreaterThan(0);
    expect(fs.readdirSync(outside, { recursive: true }).sort()).toEqual(["odir", "odir/f.f64", "secret.f64"]);
  }, 60_000);
});

describe("--allow-any-path", () => {
  test("absolute and .. paths work; directories, devices, FIFOs and kernel files are still refused", async () => {
    const open = await startServer({ args: ["--workers", "1", "--allow-any-path"] });
    const c = await RespClient.connect(open.port);
    try {
      expect(await call(c, "MMAP", "abs", path.join(outside, "secret.f64"), "double")).toBe(2n);
      expect(await call(c, "VGET", "abs", "1")).toBe("667");
      expect(await call(c, "MMAP", "link", path.join(data, "out_link.f64"), "double")).toBe(2n);
      for (const given of [
        "/dev/zero",
        "/proc/self/mem",
        "/sys/kernel/mm/transparent_hugepage/enabled",
        path.join(data, "fifo"),
        outside,
        "/",
      ]) {
        for (const rest of [["uint8"], ["uint8", "WRITABLE"]]) {
          const reply = await call(c, "MMAP", "bad", given, ...rest);
          if (!fs.existsSync(given)) continue;
          expect(reply).toEqual(notRegular(given));
        }
      }
      expect(await call(c, "EXISTS", "bad")).toBe(0n);
      c.write(resp("PING"));
      expect((await c.readReplies(1)).toString()).toBe("+PONG\r\n");
    } finally {
      c.close();
      await open.stop();
      open.cleanup();
    }
  });
});
