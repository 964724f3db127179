/**
 * Tests for core/sigbus_guard.ts (+ sigbus_guard.c) and its use by core/mapped_file.ts: a file
 * shrunk by another process while mapped must not kill the process; the access reads zeros or
 * loses its write, the hit is recorded for that mapping only, and resizes refuse to touch a file
 * resized outside. Also: faults outside mmapd's mappings still reach the previous handler (the
 * process dies as before), worker threads share the main thread's guard, and slots are reused.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { replyOf } from "../helpers/command_error.ts";
import { PAGE_SIZE } from "../../core/libc.ts";
import { MappedFile, type MapOptions } from "../../core/mapped_file.ts";
import {
  guardMapping,
  mappingFaulted,
  releaseMapping,
  sigbusFaultCount,
  sigbusGuardHandle,
  sigbusGuardStatus,
} from "../../core/sigbus_guard.ts";

const CORE = path.resolve(import.meta.dir, "../../core");

let dir: string;
let opened: MappedFile[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mmapd-sigbus-"));
  opened = [];
});

afterEach(() => {
  for (const file of opened) file.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes `count` float64 values i + 0.5 to a new file; returns its path. */
function makeFile(name: string, count: number): string {
  const file = path.join(dir, name);
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = i + 0.5;
  fs.writeFileSync(file, new Uint8Array(values.buffer));
  return file;
}

function open(file: string, opts: Partial<MapOptions> = {}): MappedFile {
  const mapped = MappedFile.open(file, { writable: false, create: false, valueSize: 8, displayPath: path.basename(file), ...opts });
  opened.push(mapped);
  return mapped;
}

function valueAt(file: MappedFile, index: number): number {
  file.locate(index * 8);
  return file.view.getFloat64(file.at, true);
}

describe("the guard", () => {
  test("is installed on the main thread and hands out a handle for workers", () => {
    const handle = sigbusGuardHandle();
    expect(sigbusGuardStatus()).toBe("on");
    expect(handle).not.toBeNull();
    expect(handle!.table).toBeGreaterThan(0);
    expect(handle!.claim).toBeGreaterThan(0);
    expect(handle!.release).toBeGreaterThan(0);
    // Installing again gives the same table: one handler per process.
    expect(sigbusGuardHandle()!.table).toBe(handle!.table);
  });

  test("slots are claimed and reused past the table's capacity", () => {
    // Addresses above the user address space (2^47): no real fault can ever match them.
    const base = 2 ** 47;
    const capacity = sigbusGuardHandle()!.capacity;
    const slots = new Set<number>();
    let refused = 0;
    let faulted = 0;
    for (let i = 0; i < capacity + 1000; i++) {
      const slot = guardMapping(base + i * PAGE_SIZE, PAGE_SIZE);
      if (slot < 0) refused++;
      if (mappingFaulted(slot)) faulted++;
      slots.add(slot);
      releaseMapping(slot);
    }
    expect(refused).toBe(0);
    expect(faulted).toBe(0);
    expect(slots.size).toBeLessThanOrEqual(capacity);
  });
});

describe("a file shrunk outside while mapped", () => {
  test("a read past the new end reads zero and is recorded for that file only", () => {
    const shrunk = open(makeFile("shrunk.f64", 100_000));
    const intact = open(makeFile("intact.f64", 100_000));
    expect(valueAt(shrunk, 99_999)).toBe(99_999.5);
    const before = sigbusFaultCount();
    fs.truncateSync(shrunk.path, 8 * 10);
    expect(valueAt(shrunk, 99_999)).toBe(0); // this access raised SIGBUS and was absorbed
    expect(sigbusFaultCount()).toBe(before + 1);
    expect(shrunk.checkFaults()).toBe(true);
    expect(shrunk.sizeChanged).toBe(true);
    expect(intact.checkFaults()).toBe(false);
    expect(valueAt(intact, 99_999)).toBe(99_999.5);
    // Values still inside the file read as they are; everything after the faulting page is zeros
    // now, so reading the rest of the mapping raises no further fault.
    expect(valueAt(shrunk, 3)).toBe(3.5);
    const all = new Uint8Array(8 * 100_000);
    shrunk.readInto(0, all.length, all, 0);
    expect(sigbusFaultCount()).toBeLessThanOrEqual(before + 2);
    expect(all.subarray(PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(shrunk.changedOutside()).toBe(true);
    expect(fs.statSync(shrunk.path).size).toBe(80); // reading never grows the file back
  });

  test("a write past the new end is discarded, the file keeps the size it was given", () => {
    const file = open(makeFile("written.f64", 50_000), { writable: true });
    fs.truncateSync(file.path, PAGE_SIZE);
    file.writeFrom(40_000 * 8, new Uint8Array(8).fill(0xff), 0, 8);
    expect(file.checkFaults()).toBe(true);
    expect(fs.statSync(file.path).size).toBe(PAGE_SIZE);
    // sync and close still work on a mapping the guard patched.
    file.sync();
    file.close();
    expect(fs.statSync(file.path).size).toBe(PAGE_SIZE);
  });

  test("resize refuses a file shrunk or grown outside, and leaves its size alone", () => {
    const shrunk = open(makeFile("a.f64", 1000), { writable: true });
    fs.truncateSync(shrunk.path, 80);
    expect(replyOf(() => shrunk.resize(1001))).toBe("ERR file 'a.f64' changed size outside mmapd; MMAP it again");
    expect(replyOf(() => shrunk.resize(0))).toBe("ERR file 'a.f64' changed size outside mmapd; MMAP it again");
    expect(fs.statSync(shrunk.path).size).toBe(80);

    const grown = open(makeFile("b.f64", 10), { writable: true });
    fs.appendFileSync(grown.path, new Uint8Array(16));
    expect(replyOf(() => grown.resize(9))).toBe("ERR file 'b.f64' changed size outside mmapd; MMAP it again");
    expect(fs.statSync(grown.path).size).toBe(96);
    expect(grown.sizeChanged).toBe(true);
  });

  test("a shrink inside the last page raises no fault but changedOutside sees it", () => {
    const file = open(makeFile("small.f64", 100));
    fs.truncateSync(file.path, 400);
    expect(valueAt(file, 99)).toBe(0); // the kernel zero-fills the rest of the last page
    expect(file.checkFaults()).toBe(false);
    expect(file.changedOutside()).toBe(true);
    expect(file.sizeChanged).toBe(true);
  });

  test("the guard follows a mapping that moved when the file grew past its reservation", () => {
    const file = open(path.join(dir, "grown.f64"), { writable: true, create: true });
    file.resize(9_000_000); // 72 MB: past the first 64 MiB reservation
    expect(file.remapCount).toBe(1);
    file.locate(8_999_999 * 8);
    file.view.setFloat64(file.at, 7.25, true);
    fs.truncateSync(file.path, 8);
    expect(valueAt(file, 8_999_999)).toBe(0);
    expect(file.checkFaults()).toBe(true);
  });

  test("after close, a new mapping in the same slot starts with no faults recorded", () => {
    const first = open(makeFile("first.f64", 10_000));
    fs.truncateSync(first.path, 8);
    valueAt(first, 9_999);
    expect(first.checkFaults()).toBe(true);
    first.close();
    const second = open(makeFile("second.f64", 10_000));
    expect(second.checkFaults()).toBe(false);
    expect(valueAt(second, 9_999)).toBe(9_999.5);
  });
});

describe("across threads and processes", () => {
  test("a worker thread that adopts the handle is guarded by the main thread's handler", async () => {
    const file = makeFile("worker.f64", 100_000);
    const script = path.join(dir, "worker.ts");
    fs.writeFileSync(
      script,
      `import { parentPort, workerData } from "node:worker_threads";
import fs from "node:fs";
import { adoptSigbusGuard, sigbusGuardStatus } from ${JSON.stringify(path.join(CORE, "sigbus_guard.ts"))};
import { MappedFile } from ${JSON.stringify(path.join(CORE, "mapped_file.ts"))};
adoptSigbusGuard(workerData.handle);
const f = MappedFile.open(workerData.file, { writable: false, create: false, valueSize: 8, displayPath: "w" });
fs.truncateSync(workerData.file, 8);
f.locate(99_999 * 8);
const value = f.view.getFloat64(f.at, true);
parentPort.postMessage({ status: sigbusGuardStatus(), value, faulted: f.checkFaults() });
f.close();
`,
    );
    const worker = new Worker(script, { workerData: { handle: sigbusGuardHandle(), file } });
    const reply = await new Promise((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    await worker.terminate();
    expect(reply).toEqual({ status: "on", value: 0, faulted: true });
  });

  test("a SIGBUS outside mmapd's mappings still ends the process through the previous handler", () => {
    const file = makeFile("foreign.f64", 100_000);
    const script = path.join(dir, "foreign.ts");
    fs.writeFileSync(
      script,
      `import fs from "node:fs";
import { toArrayBuffer } from "bun:ffi";
import { sigbusGuardHandle, sigbusGuardStatus } from ${JSON.stringify(path.join(CORE, "sigbus_guard.ts"))};
import { mmap, MAP_SHARED, PROT_READ } from ${JSON.stringify(path.join(CORE, "libc.ts"))};
sigbusGuardHandle();
console.log("guard", sigbusGuardStatus());
const fd = fs.openSync(${JSON.stringify(file)}, "r");
const address = mmap(800_000, PROT_READ, MAP_SHARED, fd); // not registered with the guard
const bytes = new Uint8Array(toArrayBuffer(address, 0, 800_000));
fs.truncateSync(${JSON.stringify(file)}, 8);
console.log("read", bytes[700_000]);
`,
    );
    const result = spawnSync([process.execPath, script], { stdout: "pipe", stderr: "pipe", timeout: 20_000 });
    const output = result.stdout.toString() + result.stderr.toString();
    expect(output).toContain("guard on");
    expect(output).not.toContain("read ");
    expect(output).toContain("Bus error"); // Bun's crash handler, reached by chaining
    expect(result.exitCode === 0).toBe(false);
  });
});
