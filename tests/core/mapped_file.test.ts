/**
 * Tests for core/mapped_file.ts and core/libc.ts on real files in a fresh temp dir: mapping,
 * reading and writing against the raw file, growth with and without remapping, shrinking, a 64 GiB
 * sparse file across window boundaries, every error text, locking, and use after close.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  EWOULDBLOCK,
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
  MAP_SHARED,
  MS_ASYNC,
  PAGE_SIZE,
  PROT_READ,
  errno,
  flock,
  mmap,
  msync,
  munmap,
  strerror,
  systemError,
} from "../../core/libc.ts";
import { MappedFile, type MapOptions } from "../../core/mapped_file.ts";
import { replyOf } from "../helpers/command_error.ts";

const GIB = 2 ** 30;

let dir: string;
let opened: MappedFile[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mmapd-mapped-"));
  opened = [];
});

afterEach(() => {
  for (const file of opened) file.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens a file in the temp dir, remembered so afterEach closes it. */
function open(name: string, opts: Partial<MapOptions> = {}): MappedFile {
  const file = MappedFile.open(path.join(dir, name), {
    writable: true,
    create: true,
    valueSize: 8,
    displayPath: name,
    ...opts,
  });
  opened.push(file);
  return file;
}

/** Reads `length` raw bytes of a file at `position` with plain fs calls. */
function readRaw(file: string, position: number, length: number): Buffer {
  const fd = fs.openSync(file, "r");
  try {
    const buffer = Buffer.alloc(length);
    expect(fs.readSync(fd, buffer, 0, length, position)).toBe(length);
    return buffer;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes raw bytes into a file at `position` with plain fs calls. */
function writeRaw(file: string, position: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, "r+");
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, position);
  } finally {
    fs.closeSync(fd);
  }
}

/** The permission field ("rw-s", "r--s") of this process's mappings of `file`. */
function mappingPermissions(file: string): string[] {
  return fs
    .readFileSync("/proc/self/maps", "utf8")
    .split("\n")
    .filter((line) => line.endsWith(" " + file))
    .map((line) => line.split(/\s+/)[1]!);
}

/** Makes a sparse file of `length` bytes. */
function sparseFile(name: string, length: number): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, "");
  fs.truncateSync(file, length);
  return file;
}

describe("libc bindings", () => {
  test("strerror and systemError give the OS text", () => {
    expect(strerror(2)).toBe("No such file or directory");
    expect(strerror(11)).toBe("Resource temporarily unavailable");
    expect(systemError("cannot do it", 13).reply).toBe("ERR cannot do it: Permission denied");
  });

  test("a failed mmap returns -1 and sets errno", () => {
    expect(mmap(PAGE_SIZE, PROT_READ, MAP_SHARED, 987654)).toBe(-1);
    expect(errno()).toBe(9); // EBADF
  });

  test("mmap, msync and munmap on a real file", () => {
    const file = path.join(dir, "raw.bin");
    fs.writeFileSync(file, Buffer.alloc(PAGE_SIZE, 7));
    const fd = fs.openSync(file, "r+");
    try {
      const address = mmap(PAGE_SIZE, PROT_READ | 2, MAP_SHARED, fd);
      expect(address).toBeGreaterThan(0);
      expect(mappingPermissions(file)).toEqual(["rw-s"]);
      expect(msync(address, PAGE_SIZE, MS_ASYNC)).toBe(0);
      expect(munmap(address, PAGE_SIZE)).toBe(0);
      expect(mappingPermissions(file)).toEqual([]);
    } finally {
      fs.closeSync(fd);
    }
  });

  test("flock conflicts between two open file descriptions and is released by LOCK_UN", () => {
    const file = path.join(dir, "lock.bin");
    fs.writeFileSync(file, "");
    const first = fs.openSync(file, "r");
    const second = fs.openSync(file, "r");
    try {
      expect(flock(first, LOCK_EX | LOCK_NB)).toBe(0);
      expect(flock(second, LOCK_EX | LOCK_NB)).toBe(-1);
      expect(errno()).toBe(EWOULDBLOCK);
      expect(flock(first, LOCK_UN)).toBe(0);
      expect(flock(second, LOCK_EX | LOCK_NB)).toBe(0);
    } finally {
      fs.closeSync(first);
      fs.closeSync(second);
    }
  });
});

describe("open and map", () => {
  test("a writable open with create makes the file with mode 0644, empty, mapped read-write", () => {
    const previousUmask = process.umask(0o022);
    try {
      const file = open("new.bin");
      expect(file.count).toBe(0);
      expect(file.byteLength).toBe(0);
      expect(file.writable).toBe(true);
      expect(file.path).toBe(path.join(dir, "new.bin"));
      const stat = fs.statSync(path.join(dir, "new.bin"));
      expect(stat.mode & 0o777).toBe(0o644);
      expect(stat.size).toBe(0);
      expect(mappingPermissions(file.path)).toEqual(["rw-s"]);
    } finally {
      process.umask(previousUmask);
    }
  });

  test("a read-only open maps PROT_READ and reads what fs wrote (little-endian)", () => {
    const raw = Buffer.alloc(5 * 8);
    const values = [1.5, -2.25, 1e300, 0, Math.PI];
    for (const [i, value] of values.entries()) raw.writeDoubleLE(value, i * 8);
    fs.writeFileSync(path.join(dir, "ro.bin"), raw);
    const file = open("ro.bin", { writable: false, create: false });
    expect(file.writable).toBe(false);
    expect(file.count).toBe(5);
    expect(mappingPermissions(file.path)).toEqual(["r--s"]);
    values.forEach((value, i) => {
      file.locate(i * 8);
      expect(file.view.getFloat64(file.at, true)).toBe(value);
      expect(file.bytes[file.at]).toBe(raw[i * 8]!);
    });
    const copy = new Uint8Array(16);
    file.readInto(8, 16, copy, 0);
    expect(Buffer.from(copy)).toEqual(raw.subarray(8, 24));
  });

  test("values written through the view reach the file after sync", () => {
    const file = open("w.bin");
    file.resize(4);
    const values = [3.25, -1, 123456.789, Number.MAX_VALUE];
    values.forEach((value, i) => {
      file.locate(i * 8);
      file.view.setFloat64(file.at, value, true);
    });
    file.sync();
    const raw = fs.readFileSync(file.path);
    expect(raw.length).toBe(32);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
    for (const [i, value] of values.entries()) expect(view.getFloat64(i * 8, true)).toBe(value);
  });

  test("writes by fs to an open writable mapping are seen through it", () => {
    const file = open("shared.bin");
    file.resize(2);
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigInt64(0, -42n, true);
    writeRaw(file.path, 8, bytes);
    file.locate(8);
    expect(file.view.getBigInt64(file.at, true)).toBe(-42n);
  });

  test("an existing file opened writable without create keeps its contents", () => {
    const raw = Buffer.alloc(16);
    raw.writeInt32LE(77, 4);
    fs.writeFileSync(path.join(dir, "keep.bin"), raw);
    const file = open("keep.bin", { create: false, valueSize: 4 });
    expect(file.count).toBe(4);
    file.locate(4);
    expect(file.view.getInt32(file.at, true)).toBe(77);
  });

  test("an empty read-only file maps nothing and has no values", () => {
    fs.writeFileSync(path.join(dir, "empty.bin"), "");
    const file = open("empty.bin", { writable: false, create: false });
    expect(file.count).toBe(0);
    expect(mappingPermissions(file.path)).toEqual([]);
    expect(replyOf(() => file.locate(0))).toBe("ERR index exceeds size");
    file.readInto(0, 0, new Uint8Array(0), 0); // nothing to copy, nothing touched
  });

  test("locate, readInto and writeFrom refuse ranges outside the file", () => {
    const file = open("bounds.bin");
    file.resize(3);
    expect(replyOf(() => file.locate(24))).toBe("ERR index exceeds size");
    expect(replyOf(() => file.locate(17))).toBe("ERR index exceeds size");
    expect(replyOf(() => file.locate(-8))).toBe("ERR index exceeds size");
    expect(replyOf(() => file.locate(Number.NaN))).toBe("ERR index exceeds size");
    expect(replyOf(() => file.readInto(20, 5, new Uint8Array(8), 0))).toBe("ERR index exceeds size");
    expect(replyOf(() => file.writeFrom(23, new Uint8Array(2), 0, 2))).toBe("ERR index exceeds size");
    expect(() => file.readInto(0, 8, new Uint8Array(4), 0)).toThrow(RangeError);
    expect(() => file.writeFrom(0, new Uint8Array(4), 2, 5)).toThrow(RangeError);
    file.locate(16); // the last value is fine
  });

  test("a read-only file refuses writeFrom and resize", () => {
    fs.writeFileSync(path.join(dir, "ro.bin"), Buffer.alloc(8));
    const file = open("ro.bin", { writable: false, create: false });
    expect(replyOf(() => file.writeFrom(0, new Uint8Array(8), 0, 8))).toBe("ERR The file is not writable");
    expect(replyOf(() => file.resize(2))).toBe("ERR The file is not writable");
    file.sync(); // nothing to flush, no error
  });

  test("readInto and writeFrom round-trip fixed strings, short and long", () => {
    const file = open("strings.bin", { valueSize: 256 });
    file.resize(4);
    const text = new TextEncoder().encode("hello, mapped world");
    file.writeFrom(256, text, 0, text.length);
    const long = new Uint8Array(256).map((_, i) => i);
    file.writeFrom(512, long, 0, 256);
    const raw = fs.readFileSync(file.path);
    expect(new TextDecoder().decode(raw.subarray(256, 256 + text.length))).toBe("hello, mapped world");
    expect(Buffer.from(raw.subarray(512, 768))).toEqual(Buffer.from(long));
    const back = new Uint8Array(300);
    file.readInto(512, 256, back, 10);
    expect(Buffer.from(back.subarray(10, 266))).toEqual(Buffer.from(long));
    file.readInto(256, text.length, back, 0);
    expect(new TextDecoder().decode(back.subarray(0, text.length))).toBe("hello, mapped world");
  });
});

describe("resize", () => {
  test("growing 1,000 times by one value stays in the reservation (no remap)", () => {
    const file = open("grow.bin");
    for (let i = 0; i < 1000; i++) {
      file.resize(i + 1);
      file.locate(i * 8);
      expect(file.view.getFloat64(file.at, true)).toBe(0); // new bytes are zero
      file.view.setFloat64(file.at, i + 0.5, true);
    }
    expect(file.remapCount).toBe(0);
    expect(file.count).toBe(1000);
    expect(fs.statSync(file.path).size).toBe(8000);
    const raw = fs.readFileSync(file.path);
    for (let i = 0; i < 1000; i++) expect(raw.readDoubleLE(i * 8)).toBe(i + 0.5);
  });

  test("growing past the reservation remaps with data intact and detaches old views", () => {
    const file = open("big.bin");
    file.resize(1000);
    for (let i = 0; i < 1000; i++) {
      file.locate(i * 8);
      file.view.setFloat64(file.at, i * 2, true);
    }
    file.locate(0);
    const staleView = file.view;
    const staleBytes = file.bytes;

    file.resize(10_000_000); // 80 MB: past the first 64 MiB reservation
    expect(file.remapCount).toBe(1);
    expect(() => staleView.getFloat64(0, true)).toThrow(TypeError);
    expect(() => staleBytes.set([1], 0)).toThrow(TypeError);
    for (let i = 0; i < 1000; i++) {
      file.locate(i * 8);
      expect(file.view.getFloat64(file.at, true)).toBe(i * 2);
    }
    file.locate(9_999_999 * 8);
    expect(file.view.getFloat64(file.at, true)).toBe(0);
    file.view.setFloat64(file.at, 7.5, true);

    // The new reservation is 2 x 80 MB rounded up to pages: filling it exactly does not remap.
    const reservedValues = (Math.ceil(160_000_000 / PAGE_SIZE) * PAGE_SIZE) / 8;
    file.resize(reservedValues);
    expect(file.remapCount).toBe(1);
    file.resize(reservedValues + 1);
    expect(file.remapCount).toBe(2);
    file.locate(9_999_999 * 8);
    expect(file.view.getFloat64(file.at, true)).toBe(7.5);
    file.sync();
    expect(readRaw(file.path, 9_999_999 * 8, 8).readDoubleLE(0)).toBe(7.5);
    expect(readRaw(file.path, 999 * 8, 8).readDoubleLE(0)).toBe(1998);
    expect(fs.statSync(file.path).size).toBe((reservedValues + 1) * 8);
  });

  test("shrinking then growing leaves the regrown values zero", () => {
    const file = open("shrink.bin");
    file.resize(1000);
    for (let i = 0; i < 1000; i++) {
      file.locate(i * 8);
      file.view.setFloat64(file.at, i + 1, true);
    }
    file.resize(500);
    expect(file.count).toBe(500);
    expect(fs.statSync(file.path).size).toBe(4000);
    expect(replyOf(() => file.locate(500 * 8))).toBe("ERR index exceeds size");
    file.resize(1000);
    expect(file.remapCount).toBe(0);
    for (let i = 0; i < 1000; i++) {
      file.locate(i * 8);
      expect(file.view.getFloat64(file.at, true)).toBe(i < 500 ? i + 1 : 0);
    }
  });

  test("shrinking to zero drops the windows past the end: stale views throw", () => {
    const file = open("zero.bin");
    file.resize(10);
    file.locate(0);
    const staleView = file.view;
    file.resize(0);
    expect(() => staleView.getUint8(0)).toThrow(TypeError);
    expect(() => file.view.getUint8(file.at)).toThrow(RangeError);
    file.resize(2);
    file.locate(8);
    expect(file.view.getFloat64(file.at, true)).toBe(0);
  });

  test("resize refuses a negative or fractional count", () => {
    const file = open("bad.bin");
    expect(replyOf(() => file.resize(-1))).toBe("ERR invalid value count -1");
    expect(replyOf(() => file.resize(1.5))).toBe("ERR invalid value count 1.5");
  });
});

describe("a 64 GiB sparse file", () => {
  const SIZE = 64 * GIB;
  const FAR = 8_000_000_000 * 8; // byte offset of double number 8e9

  test("binds writable and reads/writes at value index 8e9", () => {
    const file = path.join(dir, "huge.bin");
    sparseFile("huge.bin", SIZE);
    const mapped = open("huge.bin", { create: false });
    expect(mapped.count).toBe(SIZE / 8);
    mapped.locate(FAR);
    mapped.view.setFloat64(mapped.at, 2.5, true);
    mapped.locate(SIZE - 8);
    mapped.view.setFloat64(mapped.at, -9.75, true);
    mapped.sync();
    expect(readRaw(file, FAR, 8).readDoubleLE(0)).toBe(2.5);
    expect(readRaw(file, SIZE - 8, 8).readDoubleLE(0)).toBe(-9.75);

    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, 1234.5, true);
    writeRaw(file, FAR + 8, bytes);
    mapped.locate(FAR + 8);
    expect(mapped.view.getFloat64(mapped.at, true)).toBe(1234.5);
  });

  test("binds read-only and reads at value index 8e9", () => {
    const file = sparseFile("huge.bin", SIZE);
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, 6.125, true);
    writeRaw(file, FAR, bytes);
    const mapped = open("huge.bin", { writable: false, create: false });
    mapped.locate(FAR);
    expect(mapped.view.getFloat64(mapped.at, true)).toBe(6.125);
    mapped.locate(SIZE - 8);
    expect(mapped.view.getFloat64(mapped.at, true)).toBe(0);
  });

  test("a value straddling a window boundary is whole in one window", () => {
    const file = sparseFile("huge.bin", SIZE);
    const mapped = open("huge.bin", { create: false, valueSize: 256 });
    const offset = 3 * GIB - 128; // half in window 2, half in window 3
    mapped.locate(offset);
    for (let i = 0; i < 256; i++) mapped.bytes[mapped.at + i] = i;
    mapped.sync();
    expect([...readRaw(file, offset, 256)]).toEqual(Array.from({ length: 256 }, (_, i) => i));
    mapped.locate(3 * GIB); // window 3 sees the same bytes
    expect(mapped.bytes[mapped.at]).toBe(128);
  });

  test("readInto and writeFrom cross window boundaries", () => {
    const file = sparseFile("huge.bin", SIZE);
    const mapped = open("huge.bin", { create: false });
    const short = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);
    mapped.writeFrom(GIB - 5, short, 0, 16);
    const long = Uint8Array.from({ length: 10_000 }, (_, i) => i % 251);
    mapped.writeFrom(2 * GIB - 4321, long, 0, long.length);
    mapped.sync();
    expect([...readRaw(file, GIB - 5, 16)]).toEqual([...short]);
    expect(Buffer.from(readRaw(file, 2 * GIB - 4321, long.length))).toEqual(Buffer.from(long));

    const raw = Uint8Array.from({ length: 300 }, (_, i) => 255 - (i % 200));
    writeRaw(file, 5 * GIB - 150, raw);
    const back = new Uint8Array(302);
    mapped.readInto(5 * GIB - 150, 300, back, 1);
    expect([...back.subarray(1, 301)]).toEqual([...raw]);
    const shortBack = new Uint8Array(16);
    mapped.readInto(GIB - 5, 16, shortBack, 0);
    expect([...shortBack]).toEqual([...short]);
  });
});

describe("open errors", () => {
  test("a missing file opened read-only", () => {
    expect(replyOf(() => open("missing.bin", { writable: false, create: false }))).toBe(
      "ERR cannot open 'missing.bin': No such file or directory",
    );
  });

  test("a missing file opened writable without create", () => {
    expect(replyOf(() => open("missing.bin", { create: false }))).toBe("ERR cannot open 'missing.bin': No such file or directory");
    expect(fs.existsSync(path.join(dir, "missing.bin"))).toBe(false);
  });

  test("a directory, read-only or writable", () => {
    fs.mkdirSync(path.join(dir, "d"));
    expect(replyOf(() => open("d", { writable: false, create: false }))).toBe("ERR 'd' is not a regular file");
    expect(replyOf(() => open("d"))).toBe("ERR 'd' is not a regular file");
  });

  test("a FIFO does not hang the open and is refused", () => {
    execFileSync("mkfifo", [path.join(dir, "fifo")]);
    expect(replyOf(() => open("fifo", { writable: false, create: false }))).toBe("ERR 'fifo' is not a regular file");
    expect(replyOf(() => open("fifo"))).toBe("ERR 'fifo' is not a regular file");
  });

  test("/dev/zero is refused", () => {
    const options = { valueSize: 8, displayPath: "/dev/zero", create: false };
    expect(replyOf(() => MappedFile.open("/dev/zero", { ...options, writable: false }))).toBe("ERR '/dev/zero' is not a regular file");
    expect(replyOf(() => MappedFile.open("/dev/zero", { ...options, writable: true }))).toBe("ERR '/dev/zero' is not a regular file");
  });

  test("kernel files that look regular (/proc, /sys) are refused", () => {
    for (const file of ["/proc/self/mem", "/proc/self/status", "/sys/kernel/mm/transparent_hugepage/enabled"]) {
      if (!fs.existsSync(file)) continue;
      const options = { valueSize: 1, displayPath: file, create: false };
      expect(replyOf(() => MappedFile.open(file, { ...options, writable: false }))).toBe(`ERR '${file}' is not a regular file`);
    }
    expect(replyOf(() => MappedFile.open("/proc/self/mem", { valueSize: 1, displayPath: "m", create: false, writable: true }))).toBe(
      "ERR 'm' is not a regular file",
    );
  });

  test("with a root, a path that leads outside it or through a symlink is refused at the open", () => {
    const root = path.join(dir, "root");
    fs.mkdirSync(path.join(root, "sub"), { recursive: true });
    fs.writeFileSync(path.join(dir, "outside.bin"), Buffer.alloc(8));
    fs.writeFileSync(path.join(root, "sub", "in.bin"), Buffer.alloc(8));
    fs.symlinkSync(dir, path.join(root, "up"));
    const outside = "ERR path is outside the data directory";
    const opts = { writable: false, create: false, valueSize: 8, displayPath: "x", root };
    expect(replyOf(() => MappedFile.open(path.join(dir, "outside.bin"), opts))).toBe(outside);
    expect(replyOf(() => MappedFile.open(path.join(root, "up", "outside.bin"), opts))).toBe(outside);
    expect(replyOf(() => MappedFile.open(path.join(root, "up", "new.bin"), { ...opts, writable: true, create: true }))).toBe(outside);
    expect(fs.existsSync(path.join(dir, "new.bin"))).toBe(false);
    const inside = MappedFile.open(path.join(root, "sub", "in.bin"), opts);
    opened.push(inside);
    expect(inside.count).toBe(1);
    const created = MappedFile.open(path.join(root, "sub", "made.bin"), { ...opts, writable: true, create: true });
    opened.push(created);
    expect(fs.statSync(path.join(root, "sub", "made.bin")).mode & 0o777).toBe(0o644 & ~process.umask());
  });

  test("a symlink as the final component is not followed", () => {
    fs.writeFileSync(path.join(dir, "target.bin"), Buffer.alloc(8));
    fs.symlinkSync(path.join(dir, "target.bin"), path.join(dir, "link.bin"));
    expect(replyOf(() => open("link.bin", { writable: false, create: false }))).toBe(
      "ERR cannot open 'link.bin': Too many levels of symbolic links",
    );
  });

  test("a size that is not a multiple of the value size", () => {
    fs.writeFileSync(path.join(dir, "odd.bin"), Buffer.alloc(13));
    expect(replyOf(() => open("odd.bin", { writable: false, create: false }))).toBe("ERR file size 13 is not a multiple of value size 8");
    expect(replyOf(() => open("odd.bin"))).toBe("ERR file size 13 is not a multiple of value size 8");
  });

  test("an unsupported value size", () => {
    expect(replyOf(() => open("v.bin", { valueSize: 0 }))).toBe("ERR value size 0 is not between 1 and 4096");
    expect(replyOf(() => open("v.bin", { valueSize: 4097 }))).toBe("ERR value size 4097 is not between 1 and 4096");
  });

  test("failed opens leave no mapping and no open descriptor behind", () => {
    fs.writeFileSync(path.join(dir, "odd.bin"), Buffer.alloc(13));
    const descriptorsBefore = fs.readdirSync("/proc/self/fd").length;
    for (let i = 0; i < 20; i++) replyOf(() => open("odd.bin"));
    expect(fs.readdirSync("/proc/self/fd").length).toBe(descriptorsBefore);
    expect(mappingPermissions(path.join(dir, "odd.bin"))).toEqual([]);
  });
});

describe("locking", () => {
  test("a second writable open of the same file is refused until the first closes", () => {
    const first = open("locked.bin");
    expect(replyOf(() => open("locked.bin"))).toBe("ERR file 'locked.bin' is locked by another process");
    // A read-only open takes no lock and is allowed.
    open("locked.bin", { writable: false, create: false }).close();
    first.close();
    open("locked.bin").close();
  });

  test("the lock is visible to the flock tool", () => {
    const file = open("tool.bin");
    const whileOpen = spawnSync("flock", ["-x", "-n", file.path, "true"]);
    expect(whileOpen.status).toBe(1);
    file.close();
    const afterClose = spawnSync("flock", ["-x", "-n", file.path, "true"]);
    expect(afterClose.status).toBe(0);
  });

  test("a lock held by another process refuses a writable open", async () => {
    const file = path.join(dir, "held.bin");
    fs.writeFileSync(file, "");
    // The child holds the lock until its stdin closes.
    const child = spawn("flock", ["-x", file, "-c", "echo locked; read line || true"], { stdio: ["pipe", "pipe", "inherit"] });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("locked")) resolve();
      });
      child.on("error", reject);
    });
    try {
      expect(replyOf(() => open("held.bin"))).toBe("ERR file 'held.bin' is locked by another process");
    } finally {
      child.stdin!.end();
    }
    expect(await exited).toBe(0);
    open("held.bin").close();
  });
});

describe("close and outside changes", () => {
  test("every use after close throws, stale views included; close twice is harmless", () => {
    const file = open("closed.bin");
    file.resize(4);
    file.locate(8);
    const staleView = file.view;
    const staleBytes = file.bytes;
    file.close();
    expect(file.isClosed).toBe(true);
    expect(mappingPermissions(path.join(dir, "closed.bin"))).toEqual([]);
    expect(() => staleView.getFloat64(8, true)).toThrow(TypeError);
    expect(() => staleBytes.set([1], 0)).toThrow(TypeError);
    expect(() => file.view.getFloat64(file.at, true)).toThrow(RangeError);
    const notMapped = "ERR You must do MMAP first";
    expect(replyOf(() => file.locate(8))).toBe(notMapped);
    expect(replyOf(() => file.readInto(0, 8, new Uint8Array(8), 0))).toBe(notMapped);
    expect(replyOf(() => file.readInto(0, 0, new Uint8Array(8), 0))).toBe(notMapped);
    expect(replyOf(() => file.writeFrom(0, new Uint8Array(8), 0, 8))).toBe(notMapped);
    expect(replyOf(() => file.resize(8))).toBe(notMapped);
    expect(replyOf(() => file.sync())).toBe(notMapped);
    expect(replyOf(() => file.changedOutside())).toBe(notMapped);
    file.close();
  });

  test("changedOutside sees a truncate done outside mmapd", () => {
    const file = open("outside.bin");
    file.resize(100);
    expect(file.changedOutside()).toBe(false);
    file.resize(50);
    expect(file.changedOutside()).toBe(false);
    fs.truncateSync(file.path, 80); // the mapping is not touched from here on
    expect(file.changedOutside()).toBe(true);
  });
});
