/**
 * The bindings registry: which key is bound to which file, with type, width and mode, kept
 * durable in the data directory so that bindings survive restarts and crashes.
 *
 * It is an append-only log, `bindings.log`, in UTF-8, one record a line: `<crc32 hex> <json>\n`,
 * the checksum taken over the JSON's UTF-8 bytes. Records are appended as bindings change and made
 * durable (fdatasync) before the reply that reports the change leaves (`syncIfNeeded`), one sync
 * for all the changes of a batch. At start the log is read, every record whose checksum holds is
 * applied, torn or corrupt lines are reported (and the damaged log is kept aside as
 * `bindings.log.damaged`), and the log is rewritten compactly (temp file, fsync, rename, fsync of
 * the directory).
 *
 * While a server runs it holds an exclusive lock on the data directory, so a second server on
 * the same directory cannot interleave its records with ours.
 */
import fs from "node:fs";
import path from "node:path";
import { ELOOP, ENOENT, ENOTDIR, EWOULDBLOCK, EXDEV, LOCK_EX, LOCK_NB, errno, flock, strerror } from "./libc.ts";
import { openDataFile } from "./paths.ts";
import type { CatalogEvent } from "./shard.ts";

export interface BindingRecord {
  key: string;
  path: string;
  type: string;
  size: number;
  writable: boolean;
}

export const REGISTRY_FILE = "bindings.log";
/** Where a log that had torn or corrupt records is copied before it is rewritten. */
export const DAMAGED_REGISTRY_FILE = "bindings.log.damaged";

// After a failed write or sync, the next attempt waits this long, so a failing disk does not
// cost a rewrite of the log per reply.
const RETRY_MS = 1000;

/** The crc32 of a string's UTF-8 bytes (what Bun.hash.crc32 hashes), as 8 hex digits. */
function checksum(json: string): string {
  return (Bun.hash.crc32(json) >>> 0).toString(16).padStart(8, "0");
}

/** One log line for `event`, newline included; written as UTF-8. */
export function encodeRecord(event: CatalogEvent): string {
  const json = JSON.stringify(event);
  return `${checksum(json)} ${json}\n`;
}

/**
 * A line of the log (decoded as UTF-8) as an event, or why it is not one. Bytes that are not
 * UTF-8 decode to U+FFFD and fail the checksum; a whole record reads back exactly.
 */
function decodeRecord(line: string): CatalogEvent | "corrupt" | "unreadable" {
  const m = /^([0-9a-f]{8}) (.*)$/s.exec(line);
  if (m === null) return "corrupt";
  const json = m[2];
  if (checksum(json) !== m[1]) return "corrupt";
  try {
    const event = JSON.parse(json) as CatalogEvent;
    return isValidEvent(event) ? event : "unreadable";
  } catch {
    return "unreadable";
  }
}

function isValidEvent(e: CatalogEvent): boolean {
  if (e === null || typeof e !== "object" || typeof e.key !== "string") return false;
  if (e.op === "unbind") return true;
  return (
    e.op === "bind" &&
    typeof e.path === "string" &&
    typeof e.type === "string" &&
    Number.isInteger(e.size) &&
    e.size > 0 &&
    typeof e.writable === "boolean"
  );
}

/** What loading found wrong (each a line for the log). */
export interface LoadReport {
  records: number;
  problems: string[];
}

/**
 * fsyncs a directory, so that names created or renamed in it are durable. One under `root` (the
 * data directory) is opened beneath it with symlinks refused: since its file was bound it may have
 * been swapped for a symlink that leads outside, and then there is nothing of ours left to sync.
 */
function syncDirectory(dir: string, root: string): void {
  const inside = dir === root || dir.startsWith(root + "/");
  const fd = openDataFile(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, 0, inside ? root : undefined);
  if (fd < 0) {
    // ELOOP, EXDEV: a symlink now; ENOENT, ENOTDIR: gone or replaced.
    if (inside && dir !== root && [ELOOP, EXDEV, ENOENT, ENOTDIR].includes(-fd)) return;
    throw new Error(`cannot open ${dir}: ${strerror(-fd)}`);
  }
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export class Registry {
  /** The bindings, by key (latin1 strings, as shards use). */
  readonly bindings = new Map<string, BindingRecord>();
  private fd = -1;
  /** The data directory, opened to hold its lock. */
  private dirFd = -1;
  private unsynced = false;
  private records = 0;
  /** Directories in which a bound file may have just been created: synced with the log. */
  private readonly directoriesToSync = new Set<string>();
  /** A write or sync failed: the next attempt rewrites the whole log (not before `retryAt`). */
  private failing = false;
  private retryAt = 0;

  /** `warn` receives a line for the server log when writing the log fails, and when it recovers. */
  constructor(
    readonly dir: string,
    private readonly warn: (message: string) => void = () => {},
  ) {}

  get file(): string {
    return path.join(this.dir, REGISTRY_FILE);
  }

  /**
   * Locks the data directory, reads the log (keeping every intact record), rewrites it compactly
   * and opens it for appending. Throws if another process holds the directory or the log exists
   * but cannot be read (starting empty would then overwrite it).
   */
  load(): LoadReport {
    this.lockDirectory();
    const report: LoadReport = { records: 0, problems: [] };
    let raw: Buffer | null = null;
    try {
      raw = fs.readFileSync(this.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot read ${this.file}: ${(e as Error).message}`);
    }
    const lines = raw === null ? [""] : raw.toString("utf8").split("\n");
    // After the last newline: empty, or a record cut short (a crash while appending). A record
    // that only lost its newline is whole, and kept.
    const tail = lines.pop()!;
    lines.forEach((line, n) => {
      const event = decodeRecord(line);
      if (typeof event === "string")
        report.problems.push(`${event} record on line ${n + 1} of ${REGISTRY_FILE} (${Buffer.byteLength(line)} bytes) ignored`);
      else {
        this.apply(event);
        report.records++;
      }
    });
    if (tail !== "") {
      const event = decodeRecord(tail);
      if (typeof event === "string")
        report.problems.push(`torn record at the end of ${REGISTRY_FILE} (${Buffer.byteLength(tail)} bytes) ignored`);
      else {
        this.apply(event);
        report.records++;
      }
    }
    if (report.problems.length > 0) {
      fs.writeFileSync(path.join(this.dir, DAMAGED_REGISTRY_FILE), raw!);
      report.problems.push(`the log as found was kept as ${DAMAGED_REGISTRY_FILE}`);
    }
    // A clean log of live bindings only is kept as it is (no rewrite, no fsync: a faster start).
    if (raw !== null && report.problems.length === 0 && tail === "" && report.records === this.bindings.size) {
      this.fd = fs.openSync(this.file, "a", 0o644);
      this.records = report.records;
    } else this.compact();
    return report;
  }

  /** Takes the data directory's lock for as long as the registry is open. */
  private lockDirectory(): void {
    if (this.dirFd >= 0) return;
    const fd = fs.openSync(this.dir, "r");
    if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      const code = errno();
      fs.closeSync(fd);
      if (code === EWOULDBLOCK) throw new Error(`the data directory ${this.dir} is in use by another mmapd process`);
      throw new Error(`cannot lock the data directory ${this.dir}: ${strerror(code)}`);
    }
    this.dirFd = fd;
  }

  private apply(event: CatalogEvent): void {
    if (event.op === "bind")
      this.bindings.set(event.key, { key: event.key, path: event.path, type: event.type, size: event.size, writable: event.writable });
    else this.bindings.delete(event.key);
  }

  /**
   * Records a change; durable after the next `syncIfNeeded()`. Returns false when it changed
   * nothing (a binding restored as it was), so nothing was appended.
   */
  record(event: CatalogEvent): boolean {
    const before = this.bindings.get(event.key);
    if (
      event.op === "bind" &&
      before !== undefined &&
      before.path === event.path &&
      before.type === event.type &&
      before.size === event.size &&
      before.writable === event.writable
    )
      return false;
    if (event.op === "unbind" && before === undefined) return false;
    this.apply(event);
    this.unsynced = true;
    this.records++;
    // Once a write has failed the log is rewritten whole at the next sync; appending meanwhile
    // could leave a record after a torn one.
    if (!this.failing) {
      try {
        fs.writeSync(this.fd, Buffer.from(encodeRecord(event), "utf8"));
      } catch (e) {
        this.fail(e);
      }
    }
    return true;
  }

  /** Syncs `dir` with the next `syncIfNeeded()` (a bound file was created in it). */
  syncDirectoryLater(dir: string): void {
    this.directoriesToSync.add(dir);
    this.unsynced = true;
  }

  /**
   * Makes every recorded change durable; called before a reply that follows a change leaves.
   * Returns false if it could not (the failure is reported through `warn` and retried later).
   */
  syncIfNeeded(): boolean {
    if (!this.unsynced) return true;
    if (this.failing && performance.now() < this.retryAt) return false;
    try {
      if (this.failing || this.records > 2 * this.bindings.size + 1000) this.compact();
      else fs.fdatasyncSync(this.fd);
      for (const dir of this.directoriesToSync) syncDirectory(dir, this.dir);
      this.directoriesToSync.clear();
    } catch (e) {
      this.fail(e);
      return false;
    }
    if (this.failing) this.warn(`${REGISTRY_FILE} is written again`);
    this.failing = false;
    this.unsynced = false;
    return true;
  }

  private fail(e: unknown): void {
    if (!this.failing) this.warn(`cannot write ${this.file}: ${(e as Error).message}; binding changes are not durable until it can`);
    this.failing = true;
    this.retryAt = performance.now() + RETRY_MS;
  }

  /** Rewrites the log with only the live bindings, atomically, and reopens it for appending. */
  compact(): void {
    const temp = this.file + ".tmp";
    let text = "";
    for (const b of this.bindings.values())
      text += encodeRecord({ op: "bind", key: b.key, path: b.path, type: b.type, size: b.size, writable: b.writable });
    const body = Buffer.from(text, "utf8");
    const fd = fs.openSync(temp, "w", 0o644);
    try {
      fs.writeSync(fd, body);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
    syncDirectory(this.dir, this.dir);
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // the old descriptor is being replaced; a failure to close it changes nothing
      }
    }
    this.fd = -1;
    this.fd = fs.openSync(this.file, "a", 0o644);
    this.records = this.bindings.size;
  }

  /** Syncs and closes the log, and releases the data directory. */
  close(): void {
    if (this.fd >= 0) {
      this.syncIfNeeded();
      fs.closeSync(this.fd);
      this.fd = -1;
    }
    if (this.dirFd >= 0) {
      fs.closeSync(this.dirFd);
      this.dirFd = -1;
    }
  }
}
