/**
 * The binding catalog on the main thread: the registry of bindings (restored at start, recorded
 * as shards bind and unbind), the one-writer-per-file rule across shards, the checks of MMAP
 * that span shards, and the bindings whose files could not be bound again at start.
 */
import path from "node:path";
import type { ArgList } from "../core/args.ts";
import { Args, argString, keyString } from "../core/args.ts";
import { SHARD_COMMAND_INDEX, shardCommandId } from "../core/commands.ts";
import { parseMmapArgs } from "../core/commands/mmap.ts";
import { BindingErrors, CommandError } from "../core/errors.ts";
import { refuseSpecialFile, replySafe, resolveDataPath } from "../core/paths.ts";
import { REGISTRY_FILE, Registry } from "../core/registry.ts";
import type { CatalogEvent } from "../core/shard.ts";
import { shardOf } from "../core/slots.ts";
import { releaseOrphanedFiles } from "../workers/orphaned_files.ts";
import type { Config } from "./config.ts";
import type { Connection } from "./connection.ts";
import { log } from "./log.ts";
import type { Stats } from "./stats.ts";

/** A key's name for logs and error texts (keys are kept as latin1 strings so any bytes round-trip). */
const displayKey = (key: string) => Buffer.from(key, "latin1").toString("utf8");

export class BindingCatalog {
  readonly registry: Registry;
  /** Writable bindings by the absolute path of their file: one writer per file. */
  private readonly writers = new Map<string, string>();
  /** The other way round, so an unbind finds its entry without a scan (FLUSHALL of many keys). */
  private readonly writerFileByKey = new Map<string, string>();
  /** Writable MMAPs sent to a shard and not answered yet, by file. */
  private readonly pendingWriters = new Map<string, { key: string; count: number }>();
  /** Keys (latin1) whose `_bind` each shard has not answered yet, in order from `head`. */
  private readonly restoreKeys = new Map<number, { keys: string[]; head: number }>();
  private restoresLeft = 0;
  private restoresFinished: () => void = () => {};
  /** Resolves once every restore sent at start has been answered. */
  restoresDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly dataDir: string,
    private readonly config: Config,
    private readonly stats: Stats,
  ) {
    this.registry = new Registry(dataDir, (message) => log("warning", `Bindings registry: ${message}`));
  }

  /** Loads the registry (at start). */
  load(): void {
    const report = this.registry.load();
    for (const problem of report.problems) log("warning", `Bindings registry: ${problem}`);
    for (const b of this.registry.bindings.values()) this.trackWriter(b.key, b.path, b.writable);
  }

  /** `_bind` requests for every registered binding of `shard` (at start and after a worker restart). */
  restoreRequests(shard: number): { cmdId: number; args: ArgList }[] {
    const id = shardCommandId.get(SHARD_COMMAND_INDEX.find(Args.of("_bind"), 0)!)!;
    const out: { cmdId: number; args: ArgList }[] = [];
    let pending = this.restoreKeys.get(shard);
    if (pending === undefined) this.restoreKeys.set(shard, (pending = { keys: [], head: 0 }));
    for (const b of this.registry.bindings.values()) {
      if (this.shardOfKey(b.key) !== shard) continue;
      out.push({
        cmdId: id,
        args: Args.of("_bind", Buffer.from(b.key, "latin1"), b.path, b.type, String(b.size), b.writable ? "rw" : "ro"),
      });
      pending.keys.push(b.key);
    }
    if (this.restoresLeft === 0 && out.length > 0) this.restoresDone = new Promise((r) => (this.restoresFinished = r));
    this.restoresLeft += out.length;
    return out;
  }

  /** A shard's answer to the oldest `_bind` it was sent. */
  onRestoreReply(shard: number, reply: string): void {
    const pending = this.restoreKeys.get(shard);
    const key = pending !== undefined && pending.head < pending.keys.length ? pending.keys[pending.head++] : "?";
    if (pending !== undefined && pending.head === pending.keys.length) {
      pending.keys = [];
      pending.head = 0;
    }
    if (reply.startsWith("-")) {
      const reason = reply.slice(1).trim();
      this.stats.bindingsFailed.set(key, reason);
      log("warning", `Binding of key '${displayKey(key)}' not restored on shard ${shard}: ${reason}`);
    } else this.stats.bindingsFailed.delete(key);
    if (--this.restoresLeft === 0) this.restoresFinished();
  }

  /**
   * The checks of MMAP that span shards (see `mmapRefusal`). Returns the error text, or null
   * when the MMAP may go to its shard, which then answers it as reply `seq`. Every refused MMAP
   * is logged the same way, whether refused here or by its shard (see `mmapAnswered`).
   */
  checkMmap(conn: Connection, a: ArgList, seq: number): string | null {
    const refusal = this.mmapRefusal(conn, a, seq);
    if (refusal !== null) logRefusedMmap(conn, argString(a, 2), refusal);
    else (conn.mmapsInFlight ??= new Map()).set(seq, argString(a, 2));
    return refusal;
  }

  /** A shard answered the MMAP that is reply `seq` of `conn` (the reply is bytes [start, end) of `buf`). */
  mmapAnswered(conn: Connection, seq: number, buf: Uint8Array, start: number, end: number): void {
    const given = conn.mmapsInFlight!.get(seq);
    if (given === undefined) return;
    conn.mmapsInFlight!.delete(seq);
    if (conn.mmapsInFlight!.size === 0) conn.mmapsInFlight = null;
    if (conn.writerClaims !== null) this.releaseWriterClaims(conn, seq);
    if (buf[start] === 45) logRefusedMmap(conn, given, Buffer.from(buf.subarray(start + 1, end - 2)).toString("utf8"));
  }

  /**
   * Why MMAP must be refused before it reaches its shard, or null: the path must be inside the
   * data directory and not a directory, device, FIFO or socket, and a file bound writable under
   * one key cannot be bound under another. A writable MMAP that passes claims its file as the
   * reply `seq` of `conn`.
   */
  private mmapRefusal(conn: Connection, a: ArgList, seq: number): string | null {
    const given = argString(a, 2);
    const key = keyString(a, 1);
    let writable: boolean;
    try {
      // The arguments first: a bad type or size is the error, whatever the file's state.
      writable = parseMmapArgs(a, key).writable;
    } catch (e) {
      if (e instanceof CommandError) return e.reply;
      throw e;
    }
    let abs: string;
    try {
      abs = resolveDataPath(this.dataDir, given, this.config.allowAnyPath);
      refuseSpecialFile(abs, given);
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      return e.reply;
    }
    if (path.dirname(abs) === this.dataDir && path.basename(abs).startsWith(REGISTRY_FILE)) {
      return BindingErrors.registryFile(path.basename(abs));
    }
    const writer = this.writers.get(abs) ?? this.pendingWriters.get(abs)?.key;
    if (writer !== undefined && writer !== key) return BindingErrors.boundWritable(displayKey(writer));
    if (writable) {
      // Claim the file until the shard answers, so a pipelined MMAP of it under another key
      // (possibly on another shard) is refused even before this binding is known.
      const claim = this.pendingWriters.get(abs);
      if (claim === undefined) this.pendingWriters.set(abs, { key, count: 1 });
      else claim.count++;
      conn.writerClaims ??= new Map();
      const claims = conn.writerClaims.get(seq);
      if (claims === undefined) conn.writerClaims.set(seq, [abs]);
      else claims.push(abs);
    }
    return null;
  }

  /** Drops the claims of the writable MMAPs answered by reply `seq` (the bindings, if made, are known by then). */
  releaseWriterClaims(conn: Connection, seq: number): void {
    const files = conn.writerClaims!.get(seq);
    if (files === undefined) return;
    conn.writerClaims!.delete(seq);
    for (const abs of files) {
      const claim = this.pendingWriters.get(abs);
      if (claim !== undefined && --claim.count === 0) this.pendingWriters.delete(abs);
    }
  }

  private trackWriter(key: string, given: string, writable: boolean): void {
    if (!writable) return;
    const file = this.absolutePath(given);
    if (file === null) return; // a path that no longer resolves cannot be bound either
    this.writers.set(file, key);
    this.writerFileByKey.set(key, file);
  }

  /** A shard bound or unbound a key: record it durably (synced before the next reply leaves). */
  onCatalog(event: CatalogEvent): void {
    // Either way a binding that failed at start is gone: forgotten by DEL, or bound again by MMAP.
    if (this.stats.bindingsFailed.delete(event.key) && event.op === "unbind") {
      log("notice", `Forgot the binding of key '${displayKey(event.key)}', whose file could not be bound at start`);
    }
    if (event.op === "unbind") {
      const file = this.writerFileByKey.get(event.key);
      if (file !== undefined) {
        this.writerFileByKey.delete(event.key);
        if (this.writers.get(file) === event.key) this.writers.delete(file);
      }
    } else this.trackWriter(event.key, event.path, event.writable);
    // A writable MMAP may have created its file: the file's name must be as durable as the record.
    if (this.registry.record(event) && event.op === "bind" && event.writable) {
      const abs = this.absolutePath(event.path);
      if (abs !== null) this.registry.syncDirectoryLater(path.dirname(abs));
    }
  }

  /** The absolute path a binding's file resolves to now, or null if it no longer resolves. */
  private absolutePath(given: string): string | null {
    try {
      return resolveDataPath(this.dataDir, given, this.config.allowAnyPath);
    } catch {
      return null;
    }
  }

  /**
   * A shard's worker died: closes the descriptors it left open on its writable files (syncing
   * them first), so that their locks are free for the worker that restores its bindings.
   */
  releaseFilesOf(shard: number): void {
    const paths: string[] = [];
    for (const b of this.registry.bindings.values()) {
      if (!b.writable || this.shardOfKey(b.key) !== shard) continue;
      const abs = this.absolutePath(b.path);
      if (abs !== null) paths.push(abs);
    }
    const report = releaseOrphanedFiles(paths);
    for (const failure of report.syncFailures) log("warning", `Shard ${shard}: syncing a file left by the dead worker failed: ${failure}`);
    log("verbose", `Shard ${shard}: closed ${report.closed} files left open by the dead worker`);
  }

  private shardOfKey(key: string): number {
    const bytes = Buffer.from(key, "latin1");
    return shardOf(bytes, 0, bytes.length, this.config.workers);
  }
}

/** The log line of a refused MMAP, one format whatever refused it (replySafe: a CR or LF in the path must not forge log lines). */
function logRefusedMmap(conn: Connection, given: string, error: string): void {
  log("warning", `Refused MMAP of '${replySafe(given)}' from client ${conn.address}: ${replySafe(error)}`);
}
