/**
 * The bindings registry: which key is bound to which file, with type, width and mode, kept
 * durable in the data directory so that bindings survive restarts and crashes.
 *
 * It is an append-only log, `bindings.log`, one record a line: `<crc32 hex> <json>\n`. Records
 * are appended as bindings change and made durable (fdatasync) before the reply that reports the
 * change leaves (`syncIfNeeded`), one sync for all the changes of a batch. At start the log is
 * read, every record whose checksum holds is applied, torn or corrupt lines are reported, and
 * the log is rewritten compactly (temp file, fsync, rename, fsync of the directory).
 */
import fs from "node:fs";
import path from "node:path";
import type { CatalogEvent } from "./shard.ts";

export interface BindingRecord {
  key: string;
  path: string;
  type: string;
  size: number;
  writable: boolean;
}

export const REGISTRY_FILE = "bindings.log";

function checksum(text: string): string {
  return (Bun.hash.crc32(text) >>> 0).toString(16).padStart(8, "0");
}

function encodeRecord(event: CatalogEvent): string {
  const json = JSON.stringify(event);
  return `${checksum(json)} ${json}\n`;
}

/** What loading found wrong (each a line for the log). */
export interface LoadReport {
  records: number;
  problems: string[];
}

export class Registry {
  /** The bindings, by key (latin1 strings, as shards use). */
  readonly bindings = new Map<string, BindingRecord>();
  private fd = -1;
  private unsynced = false;
  private records = 0;

  constructor(readonly dir: string) {}

  get file(): string {
    return path.join(this.dir, REGISTRY_FILE);
  }

  /** Reads the log (keeping every intact record), rewrites it compactly, and opens it for appending. */
  load(): LoadReport {
    const report: LoadReport = { records: 0, problems: [] };
    let text = "";
    try {
      text = fs.readFileSync(this.file, "latin1");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") report.problems.push(`cannot read ${this.file}: ${(e as Error).message}`);
    }
    const lines = text.split("\n");
    const tail = lines.pop()!; // after the last newline: empty, or a torn record
    if (tail !== "") report.problems.push(`torn record at the end of ${REGISTRY_FILE} (${tail.length} bytes) ignored`);
    lines.forEach((line, n) => {
      const m = /^([0-9a-f]{8}) (.*)$/.exec(line);
      const json = m?.[2] !== undefined ? Buffer.from(m[2], "latin1").toString("utf8") : undefined;
      if (m === null || json === undefined || checksum(json) !== m[1]) {
        report.problems.push(`corrupt record on line ${n + 1} of ${REGISTRY_FILE} ignored`);
        return;
      }
      try {
        this.apply(JSON.parse(json) as CatalogEvent);
        report.records++;
      } catch {
        report.problems.push(`unreadable record on line ${n + 1} of ${REGISTRY_FILE} ignored`);
      }
    });
    this.compact();
    return report;
  }

  private apply(event: CatalogEvent): void {
    if (event.op === "bind") {
      if (typeof event.key !== "string" || typeof event.path !== "string" || typeof event.type !== "string") throw new Error("bad record");
      this.bindings.set(event.key, { key: event.key, path: event.path, type: event.type, size: event.size, writable: event.writable });
    } else if (event.op === "unbind") this.bindings.delete(event.key);
    else throw new Error("bad record");
  }

  /** Records a change; durable after the next `syncIfNeeded()`. */
  record(event: CatalogEvent): void {
    const before = this.bindings.get(event.op === "bind" ? event.key : event.key);
    this.apply(event);
    if (event.op === "bind" && before !== undefined && before.path === event.path && before.type === event.type && before.size === event.size && before.writable === event.writable) return;
    fs.writeSync(this.fd, Buffer.from(encodeRecord(event), "utf8"));
    this.unsynced = true;
    this.records++;
  }

  /** Makes every recorded change durable; called before a reply that follows a change leaves. */
  syncIfNeeded(): void {
    if (!this.unsynced) return;
    fs.fdatasyncSync(this.fd);
    this.unsynced = false;
    if (this.records > 2 * this.bindings.size + 1000) this.compact();
  }

  /** Rewrites the log with only the live bindings, atomically, and reopens it for appending. */
  compact(): void {
    const temp = this.file + ".tmp";
    const body = [...this.bindings.values()].map((b) => encodeRecord({ op: "bind", ...b })).join("");
    const fd = fs.openSync(temp, "w", 0o644);
    fs.writeSync(fd, Buffer.from(body, "utf8"));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(temp, this.file);
    const dirFd = fs.openSync(this.dir, "r");
    fs.fsyncSync(dirFd);
    fs.closeSync(dirFd);
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, "a", 0o644);
    this.records = this.bindings.size;
    this.unsynced = false;
  }

  /** Syncs and closes the log. */
  close(): void {
    if (this.fd < 0) return;
    this.syncIfNeeded();
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}
