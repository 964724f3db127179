/**
 * The format pool (workers/format_pool.ts), in-process with real piscina threads: a streamed VALL
 * formatted by the pool, chunk by chunk in order, has the bytes of the whole reply the shard writes
 * itself, for every numeric type in RESP2 and RESP3; a stream dropped with chunks in flight gives
 * its slots back; strings, short runs and RAW stay in the shard; a file resized outside mmapd
 * stops the stream with the changed-size error.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import type { ReplyStream } from "../../core/reply_stream.ts";
import { FORMAT_CHUNK_VALUES, FormatPool } from "../../workers/format_pool.ts";
import { seededRandom } from "../helpers/random.ts";
import { shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const pool = new FormatPool(2);
/** Enough values that VALL streams (over 1 MiB at 4 bytes each), ending in part of a chunk. */
const COUNT = 270_000;

/** Every numeric type, with values of all sizes and signs (and the extremes of the 64-bit ones). */
const FILES: { key: string; type: string; width: number }[] = [
  { key: "d", type: "double", width: 8 },
  { key: "f", type: "float", width: 4 },
  { key: "i8", type: "int8", width: 1 },
  { key: "u16", type: "uint16", width: 2 },
  { key: "i32", type: "int32", width: 4 },
  { key: "i64", type: "int64", width: 8 },
  { key: "u64", type: "uint64", width: 8 },
  { key: "ld", type: "long_double", width: 16 },
];

beforeAll(() => {
  const random = seededRandom(21);
  for (const { key, type, width } of FILES) {
    const bytes = new Uint8Array(COUNT * width);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
    const view = new DataView(bytes.buffer);
    if (type === "double")
      for (let i = 0; i < COUNT; i++) view.setFloat64(i * 8, (random() - 0.5) * 10 ** Math.floor(random() * 40 - 20), true);
    if (type === "float")
      for (let i = 0; i < COUNT; i++) view.setFloat32(i * 4, (random() - 0.5) * 10 ** Math.floor(random() * 20 - 10), true);
    if (type === "long_double") for (let i = 0; i < COUNT; i++) bytes[i * 16 + 9] &= 0x43; // finite, moderate exponents
    fs.writeFileSync(h.file(`${key}.bin`), bytes);
    expect(h.run(["MMAP", key, `${key}.bin`, type])).toBe(`:${COUNT}\r\n`);
  }
  fs.writeFileSync(h.file("s.bin"), new Uint8Array(COUNT * 4).fill(65));
  expect(h.run(["MMAP", "s", "s.bin", "string", "4"])).toBe(`:${COUNT}\r\n`);
});

afterAll(() => pool.destroy());

/** Runs `args` with streaming on; returns the header written and the stream it started. */
function start(args: string[], proto: 2 | 3): { header: string; stream: ReplyStream } {
  h.shard.streaming = true;
  try {
    const header = h.run(args, proto);
    const stream = h.shard.startedStream!;
    h.shard.startedStream = null;
    stream.proto = proto;
    return { header, stream };
  } finally {
    h.shard.streaming = false;
  }
}

/** The rest of a stream as the pool formats it, chunk after chunk in order. */
async function drainThroughPool(stream: ReplyStream): Promise<{ text: string; chunks: number }> {
  let text = "";
  let chunks = 0;
  for (;;) {
    pool.fill(stream);
    const ready = pool.ready(stream);
    if (ready === null) {
      await pool.answered();
      continue;
    }
    text += Buffer.from(ready.bytes).toString("latin1");
    chunks++;
    pool.shift(stream);
    // As the shard worker does: the freed slot goes to the stream at once (even after its last
    // chunk, to show that an ended stream is not taken up again).
    pool.fill(stream);
    if (ready.last) {
      // An ended stream keeps nothing in the pool: a stale share would halve later streams' slots.
      expect(pool.takes(stream)).toBe(false);
      return { text, chunks };
    }
  }
}

describe("a VALL formatted by the pool has the bytes of the whole reply", () => {
  for (const proto of [2, 3] as const) {
    for (const { key, type } of FILES) {
      test(`${type}, RESP${proto}`, async () => {
        const whole = h.run(["VALL", key], proto);
        const { header, stream } = start(["VALL", key], proto);
        expect(pool.takes(stream)).toBe(true);
        const { text, chunks } = await drainThroughPool(stream);
        expect(chunks).toBe(Math.ceil(COUNT / FORMAT_CHUNK_VALUES));
        expect(header + text).toBe(whole);
        expect(stream.done).toBe(true);
      });
    }
  }

  test("a VRANGE from the middle", async () => {
    const whole = h.run(["VRANGE", "d", "1000", String(COUNT - 7)]);
    const { header, stream } = start(["VRANGE", "d", "1000", String(COUNT - 7)], 2);
    expect(header + (await drainThroughPool(stream)).text).toBe(whole);
  });
});

describe("what the pool does not take, and streams that end early", () => {
  test("strings, RAW and runs shorter than two chunks stay in the shard", () => {
    expect(pool.takes(start(["VALL", "s"], 2).stream)).toBe(false);
    expect(pool.takes(start(["VRANGE", "d", "0", "-1", "RAW"], 2).stream)).toBe(false);
    const nearlyDone = start(["VALL", "d"], 2).stream;
    nearlyDone.advance(COUNT - 2 * FORMAT_CHUNK_VALUES + 1);
    expect(pool.takes(nearlyDone)).toBe(false);
    expect(new FormatPool(0).takes(start(["VALL", "d"], 2).stream)).toBe(false);
  });

  test("two streams at once share the slots: both go on, each with its own bytes", async () => {
    const wholeD = h.run(["VALL", "d"]);
    const wholeF = h.run(["VALL", "f"], 3);
    const d = start(["VALL", "d"], 2);
    const f = start(["VALL", "f"], 3);
    const texts = new Map<ReplyStream, string>([
      [d.stream, d.header],
      [f.stream, f.header],
    ]);
    const done = new Set<ReplyStream>();
    let interleaved = false;
    while (done.size < 2) {
      let progressed = false;
      for (const s of [d.stream, f.stream]) {
        if (done.has(s)) continue;
        pool.fill(s);
        const ready = pool.ready(s);
        if (ready === null) continue;
        texts.set(s, texts.get(s)! + Buffer.from(ready.bytes).toString("latin1"));
        pool.shift(s);
        pool.fill(s); // as the shard worker does: the freed slot is offered to the same stream first
        progressed = true;
        if (ready.last) done.add(s);
        // The other stream had a chunk out before this one ended.
        if (!ready.last && done.size === 0 && texts.get(s === d.stream ? f.stream : d.stream)!.length > 8 * 1024) interleaved = true;
      }
      if (!progressed) {
        expect(pool.waitsForPool(d.stream) || pool.waitsForPool(f.stream) || done.size === 2).toBe(true);
        await pool.answered();
      }
    }
    expect(interleaved).toBe(true);
    expect(texts.get(d.stream)).toBe(wholeD);
    expect(texts.get(f.stream)).toBe(wholeF);
  });

  test("a stream dropped with chunks in flight gives its slots back: the next one runs whole", async () => {
    for (let k = 0; k < 3; k++) {
      const { stream } = start(["VALL", "d"], 2);
      pool.fill(stream);
      pool.drop(stream);
    }
    const whole = h.run(["VALL", "i32"]);
    const { header, stream } = start(["VALL", "i32"], 2);
    expect(header + (await drainThroughPool(stream)).text).toBe(whole);
  });

  test("a file resized outside mmapd stops the stream with the changed-size error", async () => {
    const { stream } = start(["VALL", "u16"], 2);
    pool.fill(stream);
    await pool.answered();
    fs.truncateSync(h.file("u16.bin"), 1000);
    h.shard.checkFileSizes(); // as the worker does once a second
    expect(h.run(["VGET", "u16", "0"])).toContain("changed size outside mmapd");
    pool.shift(stream);
    expect(() => pool.fill(stream)).toThrow("changed size outside mmapd");
    pool.drop(stream);
  });
});
