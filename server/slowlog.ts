/**
 * The slow log: the last `slowlog-max-len` commands that took at least `slowlog-log-slower-than`
 * microseconds, newest first, in SLOWLOG GET's shape: id, Unix time, microseconds, arguments
 * (truncated as Redis truncates them), client address, client name.
 */
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import type { Config } from "./config.ts";
import type { Connection } from "./connection.ts";

interface SlowEntry {
  id: number;
  time: number;
  micros: number;
  args: Uint8Array[];
  address: string;
  name: string;
}

export class SlowLog {
  /** Oldest first; past `slowlog-max-len` from the end, entries are dropped now and then. */
  private entries: SlowEntry[] = [];
  /** Ids go on increasing across SLOWLOG RESET, as Redis's do. */
  private nextId = 0;

  constructor(private readonly config: Config) {}

  /** Adds an entry for a command of `conn` (undefined: a client gone since). */
  add(conn: Connection | undefined, args: Uint8Array[], micros: number): void {
    const max = this.config.slowlogMaxLen;
    if (max <= 0) return;
    this.entries.push({
      id: this.nextId++,
      time: Math.floor(Date.now() / 1000),
      micros: Math.floor(micros),
      args,
      address: conn?.address ?? "",
      name: conn?.name ?? "",
    });
    if (this.entries.length > 2 * max + 64) this.entries.splice(0, this.entries.length - max);
  }

  /** The entries kept, newest first. */
  private kept(): SlowEntry[] {
    return this.entries.slice(-Math.max(0, this.config.slowlogMaxLen)).reverse();
  }

  get length(): number {
    return Math.min(this.entries.length, Math.max(0, this.config.slowlogMaxLen));
  }

  reset(): void {
    this.entries = [];
  }

  /** SLOWLOG GET: the `count` newest entries (negative: all). */
  write(w: ReplyWriter, count: number): void {
    const kept = this.kept();
    const shown = count < 0 ? kept : kept.slice(0, count);
    w.array(shown.length);
    for (const e of shown) {
      w.array(6);
      w.integer(e.id);
      w.integer(e.time);
      w.integer(e.micros);
      w.array(e.args.length);
      for (const arg of e.args) w.bulkBytes(arg, 0, arg.length);
      w.bulk(e.address);
      w.bulk(e.name);
    }
  }
}
