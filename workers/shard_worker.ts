/**
 * A shard worker: hosts one Shard and runs the commands the main thread puts on its request ring,
 * writing each reply (already RESP-encoded for the client's protocol) to its reply ring.
 *
 * The loop drains every waiting request, flushes files if the fsync policy is `always` (one flush
 * per file per batch: group commit), publishes the batch's replies at once, then sleeps on the
 * ring with Atomics.waitAsync so that messages and timers still run.
 *
 * Big replies (VALL, VRANGE) stream: each loop turn sends one chunk of every stream in progress,
 * between batches of other requests; the commands that must not run under a stream wait in the
 * stream gate, in order (see core/reply_stream.ts).
 */
import { parentPort, workerData } from "node:worker_threads";
import { Args } from "../core/args.ts";
import { SHARD_COMMANDS, shardCommandId } from "../core/commands.ts";
import { Shard } from "../core/shard.ts";
import { adoptSigbusGuard } from "../core/sigbus_guard.ts";
import type { CatalogEvent, ShardCommand } from "../core/shard.ts";
import { restoreBindingCommand } from "../core/commands/mmap.ts";
import { ReplyWriter } from "../protocol/reply_writer.ts";
import { encodeSlowEntry, ShardTiming } from "./command_timing.ts";
import { Ring } from "./ring.ts";
import type { FsyncPolicy, ShardMessage, ShardWorkerConfig } from "./wire.ts";
import {
  FLAG_OUT_OF_BAND,
  KIND_ABORT,
  KIND_EVENT,
  KIND_OUT_OF_BAND,
  KIND_PARTIAL,
  KIND_REPLY,
  KIND_SLOW,
  REPLY_HEADER_WORDS,
  REQUEST_HEADER_WORDS,
} from "./wire.ts";
import { STREAM_CHUNK_BYTES, StreamGate } from "../core/reply_stream.ts";
import type { ReplyStream, WaitingRequest } from "../core/reply_stream.ts";
import { CommandError } from "../core/errors.ts";
import { FormatPool } from "./format_pool.ts";

const config = workerData as ShardWorkerConfig;
// Before any file is mapped: the guard must know every mapping of this thread.
if (config.sigbusGuard !== null) adoptSigbusGuard(config.sigbusGuard);
const requests = new Ring(config.requests);
const replies = new Ring(config.replies);
let fsyncPolicy: FsyncPolicy = config.fsync;

const events: CatalogEvent[] = [];
const shard = new Shard({
  dataDir: config.dataDir,
  allowAnyPath: config.allowAnyPath,
  index: config.index,
  count: config.count,
  onCatalogChange: (e) => events.push(e),
  barriers: new Int32Array(config.barriers),
  onTransactionCommand: (command, w, mark) => timing.record(shardCommandId.get(command)!, w, mark),
});
const gate = new StreamGate();
const formatPool = new FormatPool(config.formatThreads);

const timing = new ShardTiming(config.timing, SHARD_COMMANDS.length);
const args = new Args();
const WRITER_BYTES = 64 * 1024;
let writer = new ReplyWriter(WRITER_BYTES);
const encoder = new TextEncoder();

/** Out-of-band request payloads, in arrival order, and a waiter for the next one. */
const bigRequests: Uint8Array[] = [];
let bigRequestArrived: (() => void) | null = null;

parentPort!.on("message", (m: ShardMessage) => {
  if (m.type === "request") {
    bigRequests.push(m.bytes);
    bigRequestArrived?.();
  } else if (m.type === "fsync") {
    fsyncPolicy = m.policy;
    // Writes acknowledged under the old policy are flushed now: an idle shard would otherwise
    // keep them until its next command (a sleep armed under `no` lasts a minute).
    if (m.policy !== "no") {
      shard.flushDirty();
      lastFlush = performance.now();
    }
  } else if (m.type === "cancel") {
    gate.cancel(m.conn);
  } else if (m.type === "pace") {
    gate.hold(m.conn, m.hold);
  } else if (m.type === "crash") {
    setTimeout(() => {
      throw new Error("crash requested by DEBUG CRASH-SHARD");
    });
  }
});

/** Appends one reply-ring record; blocks while the main thread has not freed room. */
function putReply(conn: number, seq: number, kind: number, bytes: Uint8Array, length: number): void {
  const at = reserveReply(conn, seq, kind, length);
  replies.copyIn(at, bytes, 0, length);
}

/** Reserves a reply-ring record of `length` bytes after its header; returns where the bytes go. Blocks while the ring is full. */
function reserveReply(conn: number, seq: number, kind: number, length: number): number {
  const payload = REPLY_HEADER_WORDS * 4 + length;
  let at: number;
  while ((at = replies.reserve(payload)) < 0) {
    // Make what is reserved visible so the main thread can drain it, then wait for room.
    const seen = replies.spaceSignal();
    // Under `always` a reply leaves only once its write is on disk.
    if (fsyncPolicy === "always") shard.flushDirty();
    replies.publish();
    if ((at = replies.reserve(payload)) >= 0) break;
    replies.waitForSpace(seen, 50);
  }
  const w = at >> 2;
  replies.words[w] = conn;
  replies.words[w + 1] = seq;
  replies.words[w + 2] = kind;
  return at + REPLY_HEADER_WORDS * 4;
}

/** Sends catalog events ahead of the reply that caused them. */
function putEvents(command: ShardCommand): void {
  // A restore binds what the registry already holds: its event would tell the main thread nothing.
  if (command === restoreBindingCommand) {
    events.length = 0;
    return;
  }
  for (const e of events) {
    const bytes = encoder.encode(JSON.stringify(e));
    putReply(0, 0, KIND_EVENT, bytes, bytes.length);
  }
  events.length = 0;
  // Published at once: a worker that dies later in the batch must not take the news of a
  // binding (and of the file it holds open) with it. Under `always` the batch's earlier replies,
  // published with it, must not leave before their writes are on disk.
  if (fsyncPolicy === "always") shard.flushDirty();
  replies.publish();
}

/** Runs the command whose arguments are in `args`, and queues its reply. */
function run(conn: number, seq: number, commandWord: number): void {
  writer.reset();
  writer.proto = ((commandWord >> 16) & 0xff) === 3 ? 3 : 2;
  const command = SHARD_COMMANDS[commandWord & 0xffff];
  // A transaction's commands reply inside its reply: only a command of its own may stream.
  shard.streaming = conn !== 0 && command.keys !== null;
  shard.execute(command, args, writer);
  const stream = shard.startedStream;
  shard.startedStream = null;
  const slowMs = timing.record(commandWord & 0xffff, writer);
  if (slowMs >= 0 && conn !== 0) {
    const entry = encodeSlowEntry(args, slowMs);
    putReply(conn, seq, KIND_SLOW, entry, entry.length);
  }
  if (events.length > 0) putEvents(command);
  // The reply is the stream's header, unless an error replaced it (a fault during the command).
  if (stream !== null && writer.buf[0] !== 45 /* - */) {
    stream.conn = conn;
    stream.seq = seq;
    stream.proto = writer.proto;
    putReply(conn, seq, KIND_PARTIAL, writer.buf, writer.length);
    gate.add(stream);
  } else if (writer.length <= replies.maxPayload - REPLY_HEADER_WORDS * 4) {
    putReply(conn, seq, KIND_REPLY, writer.buf, writer.length);
  } else {
    const bytes = writer.buf.slice(0, writer.length);
    putReply(conn, seq, KIND_OUT_OF_BAND, bytes, 0);
    parentPort!.postMessage({ type: "reply", conn, seq, bytes } satisfies ShardMessage, [bytes.buffer]);
  }
  giveBackWriter();
}

/** A writer grown by a big reply is dropped, so its memory goes back. */
function giveBackWriter(): void {
  if (writer.buf.length > 4 * STREAM_CHUNK_BYTES) {
    const proto = writer.proto;
    writer = new ReplyWriter(WRITER_BYTES);
    writer.proto = proto;
  }
}

/** The most bytes one stream chunk may hold: it must fit a reply-ring record. */
const CHUNK_BUDGET = Math.min(STREAM_CHUNK_BYTES, replies.maxPayload - REPLY_HEADER_WORDS * 4 - 64);
const NO_BYTES = new Uint8Array(0);

/** Sends one chunk of every stream in progress; a finished or cancelled stream leaves the gate. */
function pumpStreams(): void {
  const streams = gate.streams.slice();
  for (const s of streams) {
    if (!gate.due(s)) continue;
    if (s.cancelled) {
      // The reply ends with nothing: the main thread keeps its count of replies owed.
      gate.remove(s);
      formatPool.drop(s);
      putReply(s.conn, s.seq, KIND_REPLY, NO_BYTES, 0);
      continue;
    }
    try {
      if (pumpChunk(s)) gate.remove(s);
    } catch (e) {
      gate.remove(s);
      formatPool.drop(s);
      const reason = encoder.encode(e instanceof CommandError ? e.reply : String(e));
      putReply(s.conn, s.seq, KIND_ABORT, reason, reason.length);
    }
  }
}

/** Sends the next chunk of `s`; true when it was the last. Raw bytes go from the mapping straight into the ring. */
function pumpChunk(s: ReplyStream): boolean {
  if (s.form === "raw") {
    s.check(); // before the record is reserved: a failure must not leave it half written
    const values = s.rawChunkValues(CHUNK_BUDGET);
    const last = s.next + values >= s.end;
    const length = values * s.binding.width + (last ? 2 : 0);
    const at = reserveReply(s.conn, s.seq, last ? KIND_REPLY : KIND_PARTIAL, length);
    return s.produceRawInto(replies.data, at, values).done;
  }
  if (formatPool.takes(s)) return pumpPooledChunk(s);
  writer.reset();
  const done = s.produce(writer, CHUNK_BUDGET);
  putReply(s.conn, s.seq, done ? KIND_REPLY : KIND_PARTIAL, writer.buf, writer.length);
  return done;
}

/** Sends the oldest chunk of `s` the format pool has finished, if any, and hands it more; true when it was the last. */
function pumpPooledChunk(s: ReplyStream): boolean {
  formatPool.fill(s);
  const ready = formatPool.ready(s);
  if (ready === null) return false;
  const { bytes, last } = ready;
  // In pieces that fit a ring record, the last one ending the reply.
  for (let at = 0; at < bytes.length; at += CHUNK_BUDGET) {
    const piece = bytes.subarray(at, Math.min(bytes.length, at + CHUNK_BUDGET));
    const final = last && at + piece.length >= bytes.length;
    putReply(s.conn, s.seq, final ? KIND_REPLY : KIND_PARTIAL, piece, piece.length);
  }
  formatPool.shift(s);
  if (!last) formatPool.fill(s);
  return last;
}

/** True when every stream that has work waits for the format pool (and at least one does). */
function waitingForPool(): boolean {
  let waits = false;
  for (const s of gate.streams) {
    if (!gate.due(s)) continue;
    if (!formatPool.waitsForPool(s)) return false;
    waits = true;
  }
  return waits;
}

/** Copies a request out of the ring into the gate, to run once the streams it waits for end. */
function wait(conn: number, seq: number, commandWord: number, payload: Uint8Array): void {
  gate.waiting.push({ conn, seq, commandWord, command: SHARD_COMMANDS[commandWord & 0xffff], payload });
}

/** Runs the waiting requests whose streams have ended, in order; returns how many ran. */
function runWaiting(): number {
  if (gate.waiting.length === 0) return 0;
  const list: WaitingRequest[] = gate.waiting.splice(0);
  let barrier = false;
  let ran = 0;
  for (const r of list) {
    const words = new Int32Array(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength >> 2);
    decodeArgs(r.payload, words, 0);
    if (gate.mustWait(r.command, args, barrier)) {
      gate.waiting.push(r);
      if (StreamGate.unbindsAny(r.command)) barrier = true;
      continue;
    }
    run(r.conn, r.seq, r.commandWord);
    ran++;
  }
  gate.pruneCancelled();
  return ran;
}

/** Points `args` at a request's arguments inside `buf` (the ring, or an out-of-band payload). */
function decodeArgs(buf: Uint8Array, words: Int32Array, firstWord: number): void {
  const argc = words[firstWord + 3];
  args.reserve(argc);
  args.buf = buf;
  args.argc = argc;
  let p = (firstWord + REQUEST_HEADER_WORDS + argc) * 4;
  for (let i = 0; i < argc; i++) {
    args.argStart[i] = p;
    p += words[firstWord + REQUEST_HEADER_WORDS + i];
    args.argEnd[i] = p;
  }
}

async function nextBigRequest(): Promise<Uint8Array> {
  while (bigRequests.length === 0) await new Promise<void>((resolve) => (bigRequestArrived = resolve));
  bigRequestArrived = null;
  return bigRequests.shift()!;
}

let lastFlush = performance.now();

/** Flushes dirty files once a second under `everysec`. */
function flushIfDue(): void {
  if (fsyncPolicy !== "everysec") return;
  const now = performance.now();
  if (now - lastFlush < 1000) return;
  lastFlush = now;
  shard.flushDirty();
}

let lastSizeCheck = performance.now();

/** Once a second, before a batch: notices files resized outside mmapd even where no fault tells. */
function checkSizesIfDue(): void {
  const now = performance.now();
  if (now - lastSizeCheck < 1000) return;
  lastSizeCheck = now;
  shard.checkFileSizes();
}

/**
 * How long an idle worker blocks on its ring (a futex: the main thread wakes it with one system
 * call) before sleeping through its event loop (woken by Atomics.notify and an event-loop turn,
 * several times dearer). Messages and timers wait at most this long meanwhile.
 */
const BLOCKING_WAIT_MS = 50;
/** How often a busy worker lets its event loop run (messages, timers). */
const YIELD_EVERY_MS = 10;
let lastYield = performance.now();

/** How long a worker whose streams are all held sleeps before it looks again (messages run meanwhile). */
const HELD_WAIT_MS = 5;

const VADD_ID = SHARD_COMMANDS.findIndex((c) => c.name === "vadd");

/**
 * Looks at the VADDs waiting on the ring before running them, so each file grows once for the
 * whole batch (one ftruncate) instead of once per VADD.
 */
function growFilesForWaitingAppends(): void {
  let appends = 0;
  requests.forEachPending((at) => {
    const w = at >> 2;
    const commandWord = requests.words[w + 2];
    if ((commandWord & 0xffff) !== VADD_ID || (commandWord >> 24) & FLAG_OUT_OF_BAND) return;
    decodeArgs(requests.data, requests.words, w);
    shard.noteAppend(args, 1, args.argc - 2);
    appends++;
  });
  if (appends > 1) shard.growAhead();
}

async function loop(): Promise<never> {
  for (;;) {
    checkSizesIfDue();
    timing.startBatch();
    let ran = runWaiting();
    growFilesForWaitingAppends();
    let barrier = gate.barrier;
    for (let at = requests.next(); at >= 0; at = requests.next()) {
      const w = at >> 2;
      const conn = requests.words[w];
      const seq = requests.words[w + 1];
      const commandWord = requests.words[w + 2];
      if ((commandWord >> 24) & FLAG_OUT_OF_BAND) {
        requests.advance();
        requests.release();
        const payload = await nextBigRequest();
        timing.startBatch();
        const words = new Int32Array(payload.buffer, payload.byteOffset, payload.byteLength >> 2);
        decodeArgs(payload, words, 0);
        const command = SHARD_COMMANDS[commandWord & 0xffff];
        if (gate.mustWait(command, args, barrier)) {
          wait(conn, seq, commandWord, payload);
          if (StreamGate.unbindsAny(command)) barrier = true;
        } else run(conn, seq, commandWord);
      } else {
        decodeArgs(requests.data, requests.words, w);
        const command = SHARD_COMMANDS[commandWord & 0xffff];
        if (gate.mustWait(command, args, barrier)) {
          wait(conn, seq, commandWord, requests.data.slice(at, at + requests.length(at)));
          if (StreamGate.unbindsAny(command)) barrier = true;
        } else run(conn, seq, commandWord);
        requests.advance();
      }
      ran++;
      // Free request space regularly so a producer with a long pipeline is not held up.
      if ((ran & 63) === 0) requests.release();
    }
    requests.release();
    shard.settleAppends();
    if (ran > 0 && fsyncPolicy === "always") shard.flushDirty();
    if (gate.active) {
      replies.publish(); // the batch's replies leave before the chunks
      pumpStreams();
      giveBackWriter();
    }
    replies.publish();
    flushIfDue();
    if (ran === 0 && waitingForPool()) {
      // Nothing to do until the pool answers or a request comes; messages run meanwhile.
      const seen = requests.signal();
      requests.setSleeping(true);
      if (!requests.hasRecords()) {
        const wake = requests.waitAsync(seen, BLOCKING_WAIT_MS);
        if (wake !== null) await Promise.race([formatPool.answered(), wake]);
      }
      requests.setSleeping(false);
      continue;
    }
    if (ran > 0 || gate.producing || (gate.waiting.length > 0 && !gate.active)) {
      // Under steady load the loop never sleeps: let messages and timers in now and then.
      const now = performance.now();
      if (now - lastYield > YIELD_EVERY_MS) {
        lastYield = now;
        await new Promise((resolve) => setImmediate(resolve));
      }
      continue;
    }
    if (gate.active) {
      // Every stream is held by a slow reader: wait for requests, or for the message that lets go.
      const seen = requests.signal();
      requests.setSleeping(true);
      if (!requests.hasRecords()) await requests.waitAsync(seen, HELD_WAIT_MS);
      requests.setSleeping(false);
      continue;
    }
    // A blocking wait wakes at once when the main thread publishes (a futex), much sooner than
    // an event-loop wake-up; past a short while, sleep through the event loop instead.
    if (!requests.hasRecords()) requests.waitBlocking(BLOCKING_WAIT_MS);
    const seen = requests.signal();
    requests.setSleeping(true);
    if (!requests.hasRecords()) {
      const wake = requests.waitAsync(
        seen,
        fsyncPolicy === "everysec" && shard.dirty.size > 0 ? Math.max(1, lastFlush + 1000 - performance.now()) : 60_000,
      );
      if (wake !== null) await wake;
    }
    requests.setSleeping(false);
  }
}

parentPort!.postMessage({ type: "ready" } satisfies ShardMessage);
loop();
