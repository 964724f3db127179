/**
 * Streamed replies, in-process: a VALL or VRANGE big enough to stream leaves only its header and a
 * ReplyStream, whose chunks (of any size) add up to the bytes the whole reply has, in RESP2 and
 * RESP3, as text and RAW (also copied straight into a ring-like buffer); and the stream gate makes
 * the right commands wait: those on the streamed key, and those that may unbind any key.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { Args } from "../../core/args.ts";
import { SHARD_COMMAND_INDEX } from "../../core/commands.ts";
import { type ReplyStream, StreamGate, STREAM_THRESHOLD_BYTES } from "../../core/reply_stream.ts";
import { Binding } from "../../core/shard.ts";
import { ReplyWriter } from "../../protocol/reply_writer.ts";
import { seededRandom } from "../helpers/random.ts";
import { shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const run = h.run;

/** Enough doubles that VALL streams (4 bytes each at the least). */
const COUNT = STREAM_THRESHOLD_BYTES / 4 + 1000;

beforeAll(() => {
  const random = seededRandom(7);
  const values = new Float64Array(COUNT);
  for (let i = 0; i < COUNT; i++) values[i] = (random() - 0.5) * 10 ** Math.floor(random() * 20 - 10);
  values[3] = Number.NaN;
  values[4] = -0;
  values[5] = Infinity;
  fs.writeFileSync(h.file("s.f64"), new Uint8Array(values.buffer));
  expect(run(["MMAP", "s", "s.f64", "double"])).toBe(`:${COUNT}\r\n`);
  expect(run(["MMAP", "other", "s.f64", "double"])).toBe(`:${COUNT}\r\n`);
});

/** Runs `args` with streaming on; returns the header written and the stream it started. */
function start(args: string[], proto: 2 | 3): { header: string; stream: ReplyStream } {
  h.shard.streaming = true;
  try {
    const header = run(args, proto);
    const stream = h.shard.startedStream;
    h.shard.startedStream = null;
    expect(stream).not.toBeNull();
    stream!.proto = proto;
    return { header, stream: stream! };
  } finally {
    h.shard.streaming = false;
  }
}

/** The rest of a stream, in chunks of about `budget` bytes; counts them. */
function drain(stream: ReplyStream, budget: number): { text: string; chunks: number } {
  const w = new ReplyWriter(64);
  let text = "";
  let chunks = 0;
  for (let done = false; !done; chunks++) {
    w.reset();
    done = stream.produce(w, budget);
    text += Buffer.from(w.buf.subarray(0, w.length)).toString("latin1");
  }
  return { text, chunks };
}

describe("a streamed reply has the bytes of the whole one", () => {
  for (const proto of [2, 3] as const) {
    test(`VALL in RESP${proto}, in chunks of 64 KiB`, () => {
      const whole = run(["VALL", "s"], proto);
      const { header, stream } = start(["VALL", "s"], proto);
      expect(header).toBe(`*${COUNT}\r\n`);
      const { text, chunks } = drain(stream, 64 * 1024);
      expect(chunks).toBeGreaterThan(10);
      expect(header + text === whole).toBe(true);
    });

    test(`VRANGE of a middle range in RESP${proto}`, () => {
      const args = ["VRANGE", "s", "7", String(COUNT - 9)];
      const whole = run(args, proto);
      const { header, stream } = start(args, proto);
      expect(header + drain(stream, 100_000).text === whole).toBe(true);
    });
  }

  test("VMGET of many indices, in either protocol", () => {
    const random = seededRandom(3);
    const args = ["VMGET", "s", ...Array.from({ length: COUNT }, () => String(Math.floor(random() * COUNT)))];
    for (const proto of [2, 3] as const) {
      const whole = run(args, proto);
      expect(whole.slice(0, 40)).toStartWith(`*${COUNT}\r\n`);
      const { header, stream } = start(args, proto);
      // The indices were parsed into scratch space that the next command reuses: the stream has its own.
      run(["VMGET", "s", "0", "1", "2"]);
      expect(header + drain(stream, 200_000).text === whole).toBe(true);
    }
  });

  test("VRANGE RAW, produced into a writer and copied straight into a buffer", () => {
    const args = ["VRANGE", "s", "1", String(COUNT - 2), "RAW"];
    const whole = run(args);
    const first = start(args, 2);
    expect(first.header).toBe(`$${(COUNT - 2) * 8}\r\n`);
    expect(first.header + drain(first.stream, 1 << 20).text === whole).toBe(true);

    const second = start(args, 2);
    const ring = new Uint8Array(1 << 20);
    let text = second.header;
    for (let done = false; !done; ) {
      const values = second.stream.rawChunkValues(300_001);
      expect(values * 8).toBeLessThanOrEqual(300_001);
      const r = second.stream.produceRawInto(ring, 12, values);
      text += Buffer.from(ring.subarray(12, 12 + r.bytes)).toString("latin1");
      done = r.done;
    }
    expect(text === whole).toBe(true);
  });

  test("a small range, or streaming off, replies whole at once", () => {
    h.shard.streaming = true;
    try {
      expect(run(["VRANGE", "s", "0", "2"])).toBe(run(["VRANGE", "s", "0", "2"]));
      expect(h.shard.startedStream).toBeNull();
    } finally {
      h.shard.streaming = false;
    }
    expect(run(["VALL", "s"]).startsWith(`*${COUNT}\r\n`)).toBe(true);
    expect(h.shard.startedStream).toBeNull();
  });

  test("a file resized outside mmapd ends the stream with the changed-size error", () => {
    const { stream } = start(["VALL", "s"], 2);
    const file = stream.binding.file;
    file.sizeChanged = true;
    try {
      expect(() => stream.produce(new ReplyWriter())).toThrow(/changed size/);
      expect(() => stream.check()).toThrow(/changed size/);
    } finally {
      file.sizeChanged = false;
    }
  });
});

describe("the stream gate", () => {
  const command = (args: string[]) => {
    const a = Args.of(...args);
    return { command: SHARD_COMMAND_INDEX.find(a, 0)!, a };
  };
  const waits = (gate: StreamGate, args: string[], barrier = false) => {
    const { command: c, a } = command(args);
    return gate.mustWait(c, a, barrier);
  };

  test("commands on the streamed key wait; others, and reads of every key, do not", () => {
    const gate = new StreamGate();
    expect(waits(gate, ["VSET", "s", "0", "1"])).toBe(false);
    const { stream } = start(["VALL", "s"], 2);
    stream.conn = 5;
    gate.add(stream);
    expect(gate.active).toBe(true);
    expect(stream.binding).toBeInstanceOf(Binding);
    for (const args of [
      ["VGET", "s", "0"],
      ["VSET", "s", "0", "1"],
      ["DEL", "s"],
      ["DEL", "x", "s"],
      ["MMAP", "s", "s.f64"],
      ["UNLINK", "s"],
    ]) {
      expect(waits(gate, args)).toBe(true);
    }
    expect(waits(gate, ["VGET", "other", "0"])).toBe(false);
    expect(waits(gate, ["DBSIZE"])).toBe(false);
    // Unbinding any key could be this one: FLUSHDB waits, and so does all that comes after it.
    expect(waits(gate, ["FLUSHDB"])).toBe(true);
    expect(waits(gate, ["VGET", "other", "0"], true)).toBe(true);
    expect(StreamGate.unbindsAny(command(["FLUSHDB"]).command)).toBe(true);
    expect(StreamGate.unbindsAny(command(["VGET", "s", "0"]).command)).toBe(false);

    // A second stream on the key: the key stays streamed until both end.
    const second = start(["VALL", "s"], 2).stream;
    gate.add(second);
    gate.remove(stream);
    expect(waits(gate, ["VGET", "s", "0"])).toBe(true);
    gate.remove(second);
    gate.remove(second);
    expect(gate.active).toBe(false);
    expect(waits(gate, ["VGET", "s", "0"])).toBe(false);
    expect(waits(gate, ["FLUSHDB"])).toBe(false);
  });

  test("a slow reader holds its streams unless another client's command waits; a client gone cancels them, and those its waiting commands start", () => {
    const gate = new StreamGate();
    const { stream } = start(["VALL", "s"], 2);
    stream.conn = 9;
    gate.add(stream);
    expect(gate.producing).toBe(true);
    gate.hold(9, true);
    expect(stream.held).toBe(true);
    expect(gate.due(stream)).toBe(false);
    expect(gate.producing).toBe(false);
    const { command: c, a } = command(["VGET", "s", "0"]);
    // The slow reader's own pipelined command behind its stream does not make it go on.
    gate.waiting.push({ conn: 9, seq: 5, commandWord: 0, command: c, payload: a.buf });
    expect(gate.due(stream)).toBe(false);
    expect(gate.producing).toBe(false);
    gate.waiting.length = 0;
    gate.waiting.push({ conn: 3, seq: 1, commandWord: 0, command: c, payload: a.buf });
    expect(gate.barrier).toBe(false);
    expect(gate.due(stream)).toBe(true);
    expect(gate.producing).toBe(true);
    gate.waiting.length = 0;
    gate.hold(9, false);
    expect(gate.due(stream)).toBe(true);

    // Client 9 goes while a VALL of its waits: that VALL's stream starts cancelled.
    gate.waiting.push({ conn: 9, seq: 2, commandWord: 0, command: c, payload: a.buf });
    gate.cancel(9);
    expect(stream.cancelled).toBe(true);
    const later = start(["VALL", "s"], 2).stream;
    later.conn = 9;
    gate.add(later);
    expect(later.cancelled).toBe(true);
    gate.waiting.length = 0;
    gate.pruneCancelled();
    const after = start(["VALL", "s"], 2).stream;
    after.conn = 9;
    gate.add(after);
    expect(after.cancelled).toBe(false);
  });
});
