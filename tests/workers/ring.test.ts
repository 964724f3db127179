/**
 * Tests for workers/ring.ts, the shared-memory ring between the main thread and a shard worker:
 * records in order across wrap-arounds, and the two ways a consumer waits for the producer (a
 * futex while blocking, Atomics.waitAsync through the event loop), with the producer in a real
 * worker thread.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { Ring } from "../../workers/ring.ts";

const RING = path.join(import.meta.dir, "..", "..", "workers", "ring.ts");

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "mmapd-ring-"));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes one record holding `value` as its single word. */
function put(ring: Ring, value: number): boolean {
  const at = ring.reserve(4);
  if (at < 0) return false;
  ring.words[at >> 2] = value;
  return true;
}

/** Reads every published record's word, consuming them. */
function takeAll(ring: Ring): number[] {
  const out: number[] = [];
  for (let at = ring.next(); at >= 0; at = ring.next()) {
    out.push(ring.words[at >> 2]);
    ring.advance();
  }
  ring.release();
  return out;
}

/**
 * Starts a worker that publishes one record per message it gets (`{ value, whenBlocked }`: with
 * `whenBlocked`, once this thread blocks in waitBlocking), on the ring whose buffer it is given,
 * and says `published` after each. It ends when told `{ stop: true }`.
 */
function startProducer(ring: Ring): {
  worker: Worker;
  publish: (value: number, whenBlocked?: boolean) => Promise<void>;
  stop: () => Promise<void>;
} {
  const script = path.join(dir, "producer.ts");
  fs.writeFileSync(
    script,
    `import { parentPort, workerData } from "node:worker_threads";
import { Ring } from ${JSON.stringify(RING)};
const ring = new Ring(workerData.sab);
const header = new Int32Array(workerData.sab, 0, 16);
const SLEEPING = 3, BLOCKED = 2;
parentPort.on("message", (m) => {
  if (m.stop) {
    parentPort.close();
    return;
  }
  // Publish only once the consumer blocks, so the test knows which way it was woken.
  if (m.whenBlocked) while (Atomics.load(header, SLEEPING) !== BLOCKED);
  const at = ring.reserve(4);
  ring.words[at >> 2] = m.value;
  ring.publish();
  parentPort.postMessage("published");
});
`,
  );
  const worker = new Worker(script, { workerData: { sab: ring.sab } });
  const waiting: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  worker.on("message", () => waiting.shift()?.resolve());
  worker.on("error", (e) => waiting.shift()?.reject(e));
  return {
    worker,
    publish: (value, whenBlocked = false) =>
      new Promise<void>((resolve, reject) => {
        waiting.push({ resolve, reject });
        worker.postMessage({ value, whenBlocked });
      }),
    stop: () =>
      new Promise<void>((resolve) => {
        worker.once("exit", () => resolve());
        worker.postMessage({ stop: true });
      }),
  };
}

describe("records", () => {
  test("come out in order, across many wrap-arounds, and only once published", () => {
    const ring = Ring.create(256);
    const seen: number[] = [];
    let next = 0;
    for (let round = 0; round < 200; round++) {
      const batch = 1 + (round % 13);
      for (let k = 0; k < batch; k++) expect(put(ring, next++)).toBe(true);
      expect(ring.hasRecords()).toBe(false);
      ring.publish();
      seen.push(...takeAll(ring));
    }
    expect(seen).toEqual(Array.from({ length: next }, (_, i) => i));
  });

  test("a full ring refuses a record until the consumer frees room", () => {
    const ring = Ring.create(64);
    let written = 0;
    while (put(ring, written)) written++;
    ring.publish();
    expect(written).toBeGreaterThan(0);
    expect(put(ring, -1)).toBe(false);
    expect(takeAll(ring)).toEqual(Array.from({ length: written }, (_, i) => i));
    expect(put(ring, 99)).toBe(true);
    ring.publish();
    expect(takeAll(ring)).toEqual([99]);
  });
});

describe("waiting for the producer", () => {
  test("waitBlocking returns false after its timeout when nothing is published", () => {
    const ring = Ring.create(256);
    const started = performance.now();
    expect(ring.waitBlocking(20)).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(15);
  });

  test("waitBlocking returns at once when a record is already waiting", () => {
    const ring = Ring.create(256);
    put(ring, 7);
    ring.publish();
    expect(ring.waitBlocking(60_000)).toBe(true);
    expect(takeAll(ring)).toEqual([7]);
  });

  test("a producer thread's publish ends waitBlocking, and an armed waitAsync stays armed until a later publish", async () => {
    const ring = Ring.create(1024);
    const producer = startProducer(ring);
    try {
      // Armed as the server's reply watcher arms it.
      const seen = ring.signal();
      ring.setSleeping(true);
      let asyncWoken = false;
      const armed = ring.waitAsync(seen, 60_000);
      expect(armed).not.toBeNull();
      armed!.then(() => (asyncWoken = true));

      // The worker publishes while this thread blocks; the value the wait began with is put back.
      const publishing = producer.publish(41, true);
      expect(ring.waitBlocking(30_000)).toBe(true);
      await publishing;
      expect(takeAll(ring)).toEqual([41]);
      await Bun.sleep(20);
      expect(asyncWoken).toBe(false);

      // Now asleep again through the event loop: the next publish resolves the waitAsync.
      await producer.publish(42);
      await armed;
      expect(asyncWoken).toBe(true);
      expect(takeAll(ring)).toEqual([42]);
    } finally {
      await producer.stop();
    }
  });

  test("many blocking waits in a row each see exactly the record published for them", async () => {
    const ring = Ring.create(1024);
    const producer = startProducer(ring);
    try {
      const got: number[] = [];
      for (let i = 0; i < 200; i++) {
        const publishing = producer.publish(i, i % 2 === 0);
        while (!ring.waitBlocking(30_000));
        got.push(...takeAll(ring));
        await publishing;
      }
      expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i));
    } finally {
      await producer.stop();
    }
  });
});
