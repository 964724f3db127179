/**
 * Per-command accounting for INFO commandstats, errorstats and latencystats, the slow log and
 * MONITOR. Dispatch calls it at four points: a command refused before it runs (`rejected`), one
 * sent to its shards (`routed`), one run on the main thread (`started`/`ran`), and the end of a
 * batch of commands (`batchDone`).
 *
 * Main-thread commands are timed here with one clock read each: a command's time runs from the
 * end of the main-thread command before it in the same batch (or from a clock read when there is
 * none) to its own end, so it includes its parsing. Shard commands are timed by their worker (see
 * workers/command_timing.ts) in a shared buffer read here when INFO asks: dispatch only counts the
 * call, once however many shards run it.
 */
import type { ArgList } from "../core/args.ts";
import { argString } from "../core/args.ts";
import type { CommandSpec } from "../core/command_spec.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import {
  bucketCeilingMicros,
  COMMAND_WORDS,
  COMMANDS_AT,
  createTimingBuffer,
  decodeSlowEntry,
  ERROR_CODES,
  ERROR_COUNTS_AT,
  errorCode,
  errorCodeNames,
  LATENCY_BUCKETS,
  latencyBucket,
  slowlogArguments,
  THRESHOLD_WORD,
} from "../workers/command_timing.ts";
import type { Connection } from "./connection.ts";
import type { Monitors } from "./monitor.ts";
import { flagsOf, redacted } from "./monitor.ts";
import type { SlowLog } from "./slowlog.ts";

/** The counters of one command (or subcommand: `config|get`). */
class CommandCounters {
  calls = 0;
  ms = 0;
  rejected = 0;
  failed = 0;
  readonly histogram = new Float64Array(LATENCY_BUCKETS);

  constructor(
    /** Name as INFO shows it. */
    readonly name: string,
    /** Position in the shards' timing buffers, or -1 for a command the main thread runs. */
    readonly shardId: number,
    /** Its calls count in their subcommands' counters (CONFIG GET counts as config|get). */
    readonly hasSubcommands = false,
  ) {}

  reset(): void {
    this.calls = this.ms = this.rejected = this.failed = 0;
    this.histogram.fill(0);
  }
}

/** A command as far as accounting goes: its spec, and for a shard command its id in the shard table. */
type Countable = CommandSpec & { route: string };

/** Most distinct error codes counted on the main thread (Redis stops at 128 too). */
const MAX_ERROR_CODES = 128;

export class CommandStats {
  private readonly counters = new Map<Countable, CommandCounters>();
  /** Subcommands' counters by `name|sub`. */
  private readonly subcounters = new Map<string, CommandCounters>();
  private readonly errors = new Map<string, number>();
  /** One timing buffer per shard, and what it held at the last RESETSTAT. */
  readonly timing: SharedArrayBuffer[];
  private readonly shardWords: Float64Array[];
  private baselines: Float64Array[] | null = null;
  /** End of the last main-thread command of the current batch, or -1. */
  private lastEnd = -1;
  /** The slow log's threshold in ms (Infinity: off). */
  private slowMs = Number.POSITIVE_INFINITY;
  /** The last command looked up, and its counters: a pipeline repeats one command. */
  private lastCommand: Countable | null = null;
  private lastCounters: CommandCounters | null = null;

  constructor(
    commands: readonly Countable[],
    /** The shard command table (their ids index the timing buffers). */
    private readonly shardCommands: readonly Countable[],
    shards: number,
    private readonly slowlog: SlowLog,
    private readonly monitors: Monitors,
  ) {
    for (const c of commands) {
      this.counters.set(c, new CommandCounters(c.name, c.route === "main" ? -1 : shardCommands.indexOf(c), c.subcommands !== undefined));
      for (const sub of c.subcommands ?? [])
        this.subcounters.set(`${c.name}|${sub.name}`, new CommandCounters(`${c.name}|${sub.name}`, -1));
    }
    this.timing = Array.from({ length: shards }, () => createTimingBuffer(shardCommands.length));
    this.shardWords = this.timing.map((sab) => new Float64Array(sab, 0, COMMANDS_AT + shardCommands.length * COMMAND_WORDS));
  }

  /** The counters `a` (a call of `command`) counts in: its subcommand's if it has one. */
  private countersOf(command: Countable, a: ArgList): CommandCounters {
    let c = this.lastCounters;
    if (command !== this.lastCommand || c === null) {
      c = this.counters.get(command)!;
      this.lastCommand = command;
      this.lastCounters = c;
    }
    if (c.hasSubcommands && a.argc > 1) return this.subcounters.get(`${command.name}|${argString(a, 1).toLowerCase()}`) ?? c;
    return c;
  }

  /** A command refused before it ran (unknown, wrong arity, not authenticated ...). */
  rejected(command: Countable | undefined, a: ArgList, error: string): void {
    if (command !== undefined) this.countersOf(command, a).rejected++;
    this.countError(errorCode(Buffer.from(`-${error}`), 0, error.length + 1));
  }

  /** An error reply that no command produced (a protocol error). */
  errorReply(error: string): void {
    this.countError(errorCode(Buffer.from(`-${error}`), 0, error.length + 1));
  }

  private countError(code: string): void {
    const n = this.errors.get(code);
    if (n !== undefined) this.errors.set(code, n + 1);
    else if (this.errors.size < MAX_ERROR_CODES) this.errors.set(code, 1);
  }

  /** A shard command sent to its shard(s). */
  routed(conn: Connection, command: Countable, a: ArgList): void {
    this.lastEnd = -1;
    this.countersOf(command, a).calls++;
    if (this.monitors.conns.size > 0) this.monitors.feed(conn, a);
  }

  /** When the main-thread command about to run started (see the file's comment). */
  started(): number {
    return this.lastEnd >= 0 ? this.lastEnd : performance.now();
  }

  /**
   * A main-thread command ran from `start`; its reply is in `w` from `mark` (null: it replies
   * later). Counts and times it, and hands it to the slow log and the monitors.
   */
  ran(conn: Connection, command: Countable, a: ArgList, start: number, w: ReplyWriter | null, mark: number): void {
    const end = performance.now();
    this.lastEnd = end;
    const ms = end - start;
    const c = this.countersOf(command, a);
    c.calls++;
    c.ms += ms;
    c.histogram[latencyBucket(ms)]++;
    if (w !== null && w.buf[mark] === 45) {
      c.failed++;
      this.countError(errorCode(w.buf, mark, w.length));
    }
    if (ms >= this.slowMs) this.slowlog.add(conn, redacted(command, slowlogArguments(a)), ms * 1000);
    if (this.monitors.conns.size > 0 && !flagsOf(command, a).includes("admin")) this.monitors.feed(conn, a, command);
  }

  /** The end of a batch of commands: the next one's time starts from a clock read. */
  batchDone(): void {
    this.lastEnd = -1;
  }

  /** A shard's slow-log entry for a command of `conn` (bytes of the reply ring at `start`). */
  shardSlow(conn: Connection | undefined, buf: Uint8Array, start: number): void {
    const entry = decodeSlowEntry(buf, start);
    this.slowlog.add(conn, entry.args, entry.micros);
  }

  /** Sets the slow log's threshold in every shard (microseconds; negative: off). */
  setSlowlogThreshold(micros: number): void {
    this.slowMs = micros < 0 ? Number.POSITIVE_INFINITY : micros / 1000;
    for (const words of this.shardWords) words[THRESHOLD_WORD] = micros < 0 ? -1 : micros / 1000;
  }

  /** CONFIG RESETSTAT. */
  reset(): void {
    for (const c of this.counters.values()) c.reset();
    for (const c of this.subcounters.values()) c.reset();
    this.errors.clear();
    this.baselines = this.shardWords.map((words) => words.slice());
  }

  /** Word `at` of every shard's timing (or only of shard `only`) added up, less what it held at the last RESETSTAT. */
  private shardSum(at: number, only = -1): number {
    let sum = 0;
    for (let s = 0; s < this.shardWords.length; s++)
      if (only < 0 || s === only) sum += this.shardWords[s][at] - (this.baselines?.[s][at] ?? 0);
    return sum;
  }

  /** Commands run since start or RESETSTAT (INFO total_commands_processed). */
  commandsProcessed(): number {
    let n = 0;
    for (const c of this.counters.values()) n += c.calls;
    for (const c of this.subcounters.values()) n += c.calls;
    return n;
  }

  /** Error replies by code, main thread and shards together. */
  errorCounts(): Map<string, number> {
    const out = new Map(this.errors);
    this.timing.forEach((sab, s) => {
      const names = errorCodeNames(sab, this.shardCommands.length);
      for (let slot = 0; slot < ERROR_CODES; slot++) {
        const n = this.shardSum(ERROR_COUNTS_AT + slot, s);
        if (names[slot] !== "" && n > 0) out.set(names[slot], (out.get(names[slot]) ?? 0) + n);
      }
    });
    return out;
  }

  /** INFO commandstats lines: calls, time, rejected and failed calls of every command called. */
  commandstats(): string[] {
    return this.called().map(({ c, ms, failed }) => {
      const usec = Math.round(ms * 1000);
      return `cmdstat_${c.name}:calls=${c.calls},usec=${usec},usec_per_call=${(c.calls > 0 ? usec / c.calls : 0).toFixed(2)},rejected_calls=${c.rejected},failed_calls=${failed}`;
    });
  }

  /** INFO latencystats lines: the 50th, 99th and 99.9th percentiles of each command called. */
  latencystats(): string[] {
    return this.called()
      .filter(({ histogram }) => histogram.some((n) => n > 0))
      .map(({ c, histogram }) => {
        const p = (q: number) => percentile(histogram, q).toFixed(3);
        return `latency_percentiles_usec_${c.name}:p50=${p(50)},p99=${p(99)},p99.9=${p(99.9)}`;
      });
  }

  /** Every command called or rejected, with its time, failures and histogram (the shards' added in). */
  private called(): { c: CommandCounters; ms: number; failed: number; histogram: Float64Array }[] {
    const out: { c: CommandCounters; ms: number; failed: number; histogram: Float64Array }[] = [];
    for (const c of [...this.counters.values(), ...this.subcounters.values()]) {
      if (c.calls === 0 && c.rejected === 0) continue;
      if (c.shardId < 0) {
        out.push({ c, ms: c.ms, failed: c.failed, histogram: c.histogram });
        continue;
      }
      const at = COMMANDS_AT + c.shardId * COMMAND_WORDS;
      const histogram = new Float64Array(LATENCY_BUCKETS);
      for (let b = 0; b < LATENCY_BUCKETS; b++) histogram[b] = this.shardSum(at + 2 + b);
      out.push({ c, ms: this.shardSum(at), failed: this.shardSum(at + 1), histogram });
    }
    return out;
  }
}

/** The latency in microseconds under which `q` percent of the histogram's calls fall. */
function percentile(histogram: Float64Array, q: number): number {
  let total = 0;
  for (const n of histogram) total += n;
  const rank = Math.max(1, Math.ceil((q / 100) * total));
  let seen = 0;
  for (let b = 0; b < histogram.length; b++) {
    seen += histogram[b];
    if (seen >= rank) return bucketCeilingMicros(b);
  }
  return 0;
}
