/**
 * The workload of the durability tests: clients that write to keys of their own over raw TCP
 * (VADD and VSET, pipelined) and log every write the server acknowledged, and the check, after
 * a restart, that the files hold every acknowledged write.
 *
 * Each key is written by one client only, so its writes run in the order they were sent: after a
 * crash a key holds the result of some prefix of its writes (the last one maybe half done). That
 * prefix must reach at least the last acknowledged write; what came after it may or may not be
 * there. Each position of a file keeps the history of values sent to it, with the time each was
 * acknowledged, and the check accepts exactly the values that such a prefix can leave.
 */
import net from "node:net";
import { call, decodeReply, ErrorReply, type Reply, resp, RespClient } from "../../bench/resp_client.ts";
import { seededRandom } from "../helpers/random.ts";
export { seededRandom };

const between = (r: () => number, min: number, max: number) => min + Math.floor(r() * (max - min + 1));
const bits64 = (r: () => number) => (BigInt(between(r, 0, 0xffffffff)) << 32n) | BigInt(between(r, 0, 0xffffffff));

/** A value type as the workload uses it: MMAP arguments, random values, and the text to compare. */
export interface ValueKind {
  type: string;
  mmapArgs: string[];
  /** What a value reads as when a VADD grew the file but died before writing it. */
  zero: string;
  random(r: () => number): string;
  /** The comparable form of a value's text (sent, or replied). */
  canonical(text: string): string;
}

const integer = (type: string, min: number, max: number): ValueKind => ({
  type,
  mmapArgs: [type],
  zero: "0",
  random: (r) => String(between(r, min, max)),
  canonical: (t) => BigInt(t).toString(),
});

/** Fractions with few bits, so that every type holds them exactly. */
const fraction = (type: string, denominator: number, range: number): ValueKind => ({
  type,
  mmapArgs: [type],
  zero: "0",
  random: (r) => String(between(r, -range, range) / denominator),
  canonical: (t) => String(Number(t)),
});

const STRING_WIDTH = 12;
const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";

/** All twelve value types. */
export const KINDS: ValueKind[] = [
  integer("int8", -128, 127),
  integer("uint8", 0, 255),
  integer("int16", -32768, 32767),
  integer("uint16", 0, 65535),
  integer("int32", -2147483648, 2147483647),
  integer("uint32", 0, 4294967295),
  {
    type: "int64",
    mmapArgs: ["int64"],
    zero: "0",
    random: (r) => BigInt.asIntN(64, bits64(r)).toString(),
    canonical: (t) => BigInt(t).toString(),
  },
  { type: "uint64", mmapArgs: ["uint64"], zero: "0", random: (r) => bits64(r).toString(), canonical: (t) => BigInt(t).toString() },
  fraction("float", 4, 4_000_000),
  fraction("double", 1024, 2_000_000_000),
  fraction("long_double", 8, 1_000_000_000),
  {
    type: "string",
    mmapArgs: ["string", String(STRING_WIDTH)],
    zero: "",
    random: (r) => Array.from({ length: between(r, 0, STRING_WIDTH) }, () => ALPHABET[between(r, 0, ALPHABET.length - 1)]).join(""),
    canonical: (t) => t,
  },
];

/** One value sent to a position, and when its write was acknowledged (null: not, or not yet). */
interface Write {
  value: string;
  ackedAt: number | null;
}

/** What the test knows of one key: its binding, and every value sent to each position. */
export class KeyModel {
  /** Per position, the writes sent to it in order; a restart leaves one entry, acknowledged. */
  slots: Write[][] = [];
  /** When the MMAP was acknowledged (null: sent, not acknowledged: the key may or may not exist). */
  boundAt: number | null = null;
  /**
   * The first position whose place is unknown: a VADD failed (a shard restart answered it with an
   * error: it may or may not have run), so later appends may sit lower than the model has them.
   * The key then gets no new commands until the next check.
   */
  unsureFrom: number | null = null;

  constructor(
    readonly key: string,
    readonly kind: ValueKind,
    readonly path: string,
    readonly writable: boolean,
  ) {}

  /** The MMAP command that binds the key. */
  mmapArgs(): string[] {
    return ["MMAP", this.key, this.path, ...this.kind.mmapArgs, ...(this.writable ? ["WRITABLE"] : [])];
  }
}

/** A command on its way, and what its reply means for the model. */
interface Op {
  args: string[];
  /** The key written, if any. */
  model?: KeyModel;
  /** Called with the reply and the time it arrived; returns an error text if the reply is wrong. */
  onReply(reply: Reply, now: number): string | null;
  /** Called instead when the reply is a tolerated error: the command may or may not have run. */
  onUnanswered?(): void;
}

/** Writes a VADD of `values` into the model; the op marks them acknowledged on its reply. */
function vaddOp(m: KeyModel, values: string[]): Op {
  const writes = values.map((value) => ({ value, ackedAt: null as number | null }));
  const firstSlot = m.slots.length;
  for (const w of writes) m.slots.push([w]);
  return {
    args: ["VADD", m.key, ...values],
    model: m,
    onReply(reply, now) {
      if (reply !== BigInt(values.length)) return `VADD ${m.key}: ${describe(reply)}`;
      for (const w of writes) w.ackedAt = now;
      return null;
    },
    onUnanswered() {
      m.unsureFrom = Math.min(m.unsureFrom ?? Infinity, firstSlot);
    },
  };
}

function vsetOp(m: KeyModel, pairs: [number, string][]): Op {
  const writes = pairs.map(([at, value]) => {
    const w = { value, ackedAt: null as number | null };
    m.slots[at].push(w);
    return w;
  });
  return {
    args: ["VSET", m.key, ...pairs.flatMap(([at, value]) => [String(at), value])],
    model: m,
    onReply(reply, now) {
      if (reply !== BigInt(pairs.length)) return `VSET ${m.key}: ${describe(reply)}`;
      for (const w of writes) w.ackedAt = now;
      return null;
    },
  };
}

function mmapOp(m: KeyModel): Op {
  return {
    args: m.mmapArgs(),
    onReply(reply, now) {
      if (typeof reply !== "bigint") return `MMAP ${m.key}: ${describe(reply)}`;
      m.boundAt = now;
      return null;
    },
  };
}

function describe(reply: Reply): string {
  return reply instanceof ErrorReply ? `-${reply.message}` : JSON.stringify(reply, (_k, v) => (typeof v === "bigint" ? String(v) : v));
}

/**
 * A client writing to its own keys: binds `newKeys` first, then sends random VADDs and VSETs
 * with up to `depth` commands in flight, until the connection ends (the server died) or
 * `stop()` is called. Replies that match `tolerated` are neither acknowledgements nor failures.
 */
export class WriterClient {
  readonly errors: string[] = [];
  acknowledged = 0;
  tolerated = 0;
  sent = 0;
  /** Resolves when the connection has ended and every reply that came was handled. */
  readonly finished: Promise<void>;
  private readonly socket: net.Socket;
  private readonly inFlight: Op[] = [];
  private buffer: Buffer = Buffer.alloc(0);
  private stopped = false;
  private readonly queue: Op[];

  constructor(
    port: number,
    private readonly keys: KeyModel[],
    newKeys: KeyModel[],
    private readonly random: () => number,
    private readonly depth = 16,
    private readonly toleratedError: RegExp | null = null,
  ) {
    this.queue = newKeys.map((m) => {
      keys.push(m);
      return mmapOp(m);
    });
    this.socket = net.connect({ port, host: "127.0.0.1" });
    this.socket.setNoDelay(true);
    this.finished = new Promise((resolve) => this.socket.on("close", () => resolve()));
    this.socket.on("error", () => {});
    this.socket.on("connect", () => this.fill());
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
  }

  /** Stops sending; the commands in flight still get their replies. */
  stop(): void {
    this.stopped = true;
    if (this.inFlight.length === 0) this.socket.end();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let at = 0;
    for (;;) {
      const decoded = decodeReply(this.buffer, at);
      if (decoded === null) break;
      at = decoded.end;
      const op = this.inFlight.shift();
      if (op === undefined) {
        this.errors.push(`reply with no command: ${describe(decoded.reply)}`);
        continue;
      }
      if (decoded.reply instanceof ErrorReply && this.isTolerated(op, decoded.reply.message)) {
        this.tolerated++;
        op.onUnanswered?.();
        continue;
      }
      const error = op.onReply(decoded.reply, performance.now());
      if (error === null) this.acknowledged++;
      else this.errors.push(error);
    }
    this.buffer = this.buffer.subarray(at);
    if (this.stopped && this.inFlight.length === 0) this.socket.end();
    else this.fill();
  }

  /**
   * The restart error; and on a key whose layout became unsure, a VSET sent before that was
   * known may aim past the end of the file.
   */
  private isTolerated(op: Op, message: string): boolean {
    if (this.toleratedError === null) return false;
    if (this.toleratedError.test(message)) return true;
    return op.model?.unsureFrom != null && message === "ERR index exceeds size";
  }

  private fill(): void {
    if (this.stopped || this.socket.destroyed) return;
    const out: Buffer[] = [];
    while (this.inFlight.length < this.depth) {
      const op = this.queue.shift() ?? this.randomOp();
      if (op === null) break;
      this.inFlight.push(op);
      out.push(resp(...op.args));
      this.sent++;
    }
    if (out.length > 0) this.socket.write(Buffer.concat(out));
  }

  private randomOp(): Op | null {
    const r = this.random;
    const open = this.keys.filter((k) => k.unsureFrom === null);
    if (open.length === 0) return null;
    const m = open[between(r, 0, open.length - 1)];
    const count = m.slots.length;
    if (count > 0 && r() < 0.4) {
      const first = between(r, 0, count - 1);
      const pairs: [number, string][] = [[first, m.kind.random(r)]];
      const second = between(r, 0, count - 1);
      if (second !== first && r() < 0.5) pairs.push([second, m.kind.random(r)]);
      return vsetOp(m, pairs);
    }
    return vaddOp(
      m,
      Array.from({ length: between(r, 1, 3) }, () => m.kind.random(r)),
    );
  }
}

/** What a check after a restart found. */
export interface CheckResult {
  keys: number;
  /** Acknowledged writes (values appended or set) that the check covered. */
  ackedWritesChecked: number;
  /** Acknowledged writes not found, all of them acknowledged after the cut-off (else a failure). */
  lostAfterCutoff: number;
  /** Broken promises: each one a line. */
  failures: string[];
}

/**
 * Checks every key of `models` on a server (after a crash and restart of it or of a shard): bound (if its MMAP was acknowledged) with
 * its path, type and mode; its count and values the result of a prefix of its writes that holds
 * every write acknowledged at or before `cutoff` (Infinity: every acknowledged write). Then the
 * model is reset to what the server holds, and keys whose unacknowledged MMAP did not survive are
 * dropped from `models`.
 */
export async function checkKeys(port: number, models: KeyModel[], cutoff: number): Promise<CheckResult> {
  const result: CheckResult = { keys: 0, ackedWritesChecked: 0, lostAfterCutoff: 0, failures: [] };
  const c = await RespClient.connect(port);
  try {
    const survivors: KeyModel[] = [];
    for (const m of models) {
      const info = await call(c, "VINFO", m.key);
      if (info instanceof ErrorReply) {
        if (m.boundAt === null && info.message === "ERR You must do MMAP first") continue;
        result.failures.push(`${m.key}: binding lost (${info.message})`);
        continue;
      }
      survivors.push(m);
      m.boundAt ??= -Infinity;
      const fields = new Map<string, Reply>();
      const list = info as Reply[];
      for (let i = 0; i + 1 < list.length; i += 2) fields.set(list[i] as string, list[i + 1]);
      const binding = { path: fields.get("path"), type: fields.get("type"), writable: fields.get("writable") };
      const want = { path: m.path, type: m.kind.type, writable: m.writable ? 1n : 0n };
      if (binding.path !== want.path || binding.type !== want.type || binding.writable !== want.writable) {
        result.failures.push(`${m.key}: bound as ${describe(binding as unknown as Reply)}, not ${describe(want as unknown as Reply)}`);
      }
      const all = await call(c, "VALL", m.key);
      if (!Array.isArray(all)) {
        result.failures.push(`${m.key}: VALL replied ${describe(all)}`);
        continue;
      }
      checkValues(
        m,
        all.map((v) => m.kind.canonical(typeof v === "bigint" ? v.toString() : String(v))),
        cutoff,
        result,
      );
    }
    models.length = 0;
    models.push(...survivors);
    result.keys = survivors.length;
    const size = await call(c, "DBSIZE");
    if (size !== BigInt(survivors.length)) result.failures.push(`DBSIZE is ${describe(size)}, ${survivors.length} keys expected`);
  } finally {
    c.close();
  }
  return result;
}

function checkValues(m: KeyModel, actual: string[], cutoff: number, result: CheckResult): void {
  const kind = m.kind;
  const durable = (w: Write) => w.ackedAt !== null && w.ackedAt <= cutoff;
  const unsure = m.unsureFrom ?? Infinity;
  // Positions are appended in order, so the file must reach past the last durable append; past
  // `unsure`, appends may sit lower, but each durable one still added its values.
  let mustHave = 0;
  let appendedPastUnsure = 0;
  m.slots.forEach((writes, at) => {
    if (!durable(writes[0])) return;
    if (at < unsure) mustHave = at + 1;
    else appendedPastUnsure++;
  });
  if (appendedPastUnsure > 0) mustHave = Math.max(mustHave, unsure) + appendedPastUnsure;
  // Past `unsure`, a value can only be said to come from some write to those positions.
  const sentPastUnsure = new Set<string>([kind.canonical(kind.zero)]);
  for (let at = unsure; at < m.slots.length; at++) for (const w of m.slots[at]) sentPastUnsure.add(kind.canonical(w.value));
  if (actual.length < mustHave || actual.length > m.slots.length) {
    result.failures.push(`${m.key}: ${actual.length} values, expected between ${mustHave} and ${m.slots.length}`);
  }
  for (let at = 0; at < m.slots.length; at++) {
    const writes = m.slots[at];
    if (at >= unsure) {
      if (at < actual.length && !sentPastUnsure.has(actual[at]))
        result.failures.push(`${m.key}[${at}]: ${JSON.stringify(actual[at])} was never sent`);
      continue;
    }
    // Acknowledged since the last check (earlier ones were counted then).
    result.ackedWritesChecked += writes.filter((w) => w.ackedAt !== null && w.ackedAt !== -Infinity).length;
    // The latest write the value may come from: the last durable one, or any later one.
    let firstAllowed = -1;
    writes.forEach((w, i) => {
      if (durable(w)) firstAllowed = i;
    });
    let lastAcked = -1;
    writes.forEach((w, i) => {
      if (w.ackedAt !== null) lastAcked = i;
    });
    if (at >= actual.length) {
      if (lastAcked >= 0) result.lostAfterCutoff += 1;
      continue;
    }
    const value = actual[at];
    let found = -1;
    for (let i = writes.length - 1; i >= 0; i--) {
      if (kind.canonical(writes[i].value) === value) {
        found = i;
        break;
      }
    }
    // A VADD that grew the file and died before writing leaves zeros; only if never durable.
    const acceptable = found >= 0 ? found >= firstAllowed : firstAllowed === -1 && value === kind.canonical(kind.zero);
    if (!acceptable) {
      result.failures.push(
        `${m.key}[${at}]: ${JSON.stringify(value)}, expected one of ${JSON.stringify(writes.slice(firstAllowed).map((w) => w.value))}`,
      );
    } else if (found < lastAcked) result.lostAfterCutoff++;
  }
  // From now on the file's content is the known state.
  m.slots = actual.map((value) => [{ value, ackedAt: -Infinity }]);
  m.unsureFrom = null;
}
