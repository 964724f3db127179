/**
 * A shard: the bindings of the keys that hash to it, and the commands that run on them.
 *
 * A shard is plain single-threaded code. In the server each shard lives in its own worker
 * (workers/shard_worker.ts), so every command on one key runs in order on one thread; tests
 * create shards directly on the main thread.
 */
import type { ArgList } from "./args.ts";
import type { CommandSpec } from "./command_spec.ts";
import { keyPositions } from "./command_spec.ts";
import { Watches } from "./watches.ts";
import { argEquals, keyString } from "./args.ts";
import { Errors, CommandError } from "./errors.ts";
import type { MappedFile } from "./mapped_file.ts";
import { changedSizeError } from "./mapped_file.ts";
import { sigbusFaultCount } from "./sigbus_guard.ts";
import type { ValueType } from "./value_types.ts";
import type { ReplyWriter } from "../protocol/reply_writer.ts";
import type { StreamForm } from "./reply_stream.ts";
import { ReplyStream, worthStreaming, writeStreamHeader } from "./reply_stream.ts";

/** A key bound to a mapped file. */
export class Binding {
  constructor(
    readonly key: string,
    readonly file: MappedFile,
    readonly type: ValueType,
    /** Bytes per value. */
    readonly width: number,
    /** The path as the client gave it to MMAP. */
    readonly displayPath: string,
    /** The absolute path that was opened. */
    readonly absPath: string,
  ) {}

  get writable(): boolean {
    return this.file.writable;
  }
}

/**
 * A key whose binding could not be restored (its file went missing or changed while the server
 * was down). It stays a key, as it stays in the registry: EXISTS, TYPE, KEYS, SCAN and DBSIZE count
 * it, DEL forgets it, and every other command on it answers `error`, until MMAP binds it again.
 */
export class FailedBinding {
  /** The reply to commands on the key. */
  readonly error: string;

  constructor(
    readonly key: string,
    /** The path as the client gave it to MMAP. */
    readonly displayPath: string,
    readonly typeName: string,
    /** Bytes per value. */
    readonly width: number,
    readonly writable: boolean,
    /** Why the binding failed (an error text without its code). */
    readonly reason: string,
  ) {
    this.error = Errors.bindingFailed(Buffer.from(key, "latin1").toString("utf8"), reason);
  }
}

/** A key of a shard: bound to its file, or a binding that failed at start. */
export type KeyEntry = Binding | FailedBinding;

/** What a shard tells its owner when the keyspace changes, so the bindings registry can follow. */
export type CatalogEvent =
  | { op: "bind"; key: string; path: string; type: string; size: number; writable: boolean }
  | { op: "unbind"; key: string };

export interface ShardOptions {
  /** The data directory, as an absolute real path. */
  dataDir: string;
  allowAnyPath: boolean;
  /** This shard's number and the number of shards (SCAN cursors encode the shard). */
  index: number;
  count: number;
  onCatalogChange?: (event: CatalogEvent) => void;
  /** Barrier words shared by the shard workers, for transactions that span shards (see core/commands/transaction.ts). */
  barriers?: Int32Array;
  /** Sees each command a transaction runs, its reply in `w` from `mark` (the worker times them as single commands). */
  onTransactionCommand?: (command: ShardCommand, w: ReplyWriter, mark: number) => void;
}

/** How the server routes a command that a shard runs. */
type Route =
  | "key" // to the shard of argument 1
  | "keys" // every argument from 1 is a key: split by shard, integer replies summed
  | "all" // to every shard, replies merged by `merge`
  | "scan"; // to the shard named by the cursor

/** A command a shard runs: its description (see CommandSpec) and how the server routes it. */
export interface ShardCommand extends CommandSpec {
  route: Route;
  /** For route "all" and "keys": how shard replies combine. */
  merge?: "sum" | "concat" | "ok";
  /** Internal commands are sent by the server itself, never accepted from clients. */
  internal?: boolean;
  run(shard: Shard, a: ArgList, w: ReplyWriter): void;
}

export class Shard {
  /** Who watches which keys of this shard (WATCH). */
  readonly watches = new Watches();
  /** Every key (bindings, and bindings that failed at start), by key. Keys are kept as latin1 strings so any bytes round-trip. */
  readonly bindings = new Map<string, KeyEntry>();
  /** Writable bindings by absolute file path: one writer per file, checked without a scan. */
  readonly writers = new Map<string, Binding>();
  /** Scratch space where write commands encode values before touching the file. */
  scratch = new Uint8Array(4096);
  scratchView = new DataView(this.scratch.buffer);
  /** Writable bindings written since the last flush (the fsync policy decides when to flush). */
  readonly dirty = new Set<Binding>();
  private lastKeyBytes = new Uint8Array(0);
  private lastBinding: KeyEntry | undefined;
  // The SIGBUS guard's process-wide fault count when this shard last looked (see absorbFaults).
  private faultsSeen = sigbusFaultCount();

  constructor(readonly options: ShardOptions) {}

  /** The key in argument i as the string the bindings map uses. */
  keyOf(a: ArgList, i: number): string {
    return keyString(a, i);
  }

  /**
   * The entry of the key in argument i, or undefined. The last key looked up is remembered as
   * bytes, so a run of commands on one key (the usual load) makes no string per command.
   */
  find(a: ArgList, i: number): KeyEntry | undefined {
    if (this.lastBinding !== undefined && argEquals(a, i, this.lastKeyBytes)) return this.lastBinding;
    const binding = this.bindings.get(this.keyOf(a, i));
    if (binding !== undefined) {
      this.lastKeyBytes = new Uint8Array(a.buf.subarray(a.argStart[i], a.argEnd[i]));
      this.lastBinding = binding;
    }
    return binding;
  }

  /** The binding of argument i, or the "You must do MMAP first" error (or the binding failed at start, or the file changed size outside). */
  get(a: ArgList, i: number): Binding {
    const b = this.find(a, i);
    if (b === undefined) throw new CommandError(Errors.notMapped);
    if (b instanceof FailedBinding) throw new CommandError(b.error);
    if (b.file.sizeChanged) throw changedSizeError(b.displayPath);
    return b;
  }

  /** The binding of argument i, which must be writable. */
  getWritable(a: ArgList, i: number): Binding {
    const b = this.get(a, i);
    if (!b.file.writable) throw new CommandError(Errors.notWritable);
    return b;
  }

  /** Adds a binding and tells the owner. */
  bind(binding: Binding): void {
    if (this.lastBinding?.key === binding.key) this.forgetLastKey(); // it may be the failed binding this one replaces
    this.bindings.set(binding.key, binding);
    if (binding.writable) this.writers.set(binding.absPath, binding);
    this.options.onCatalogChange?.({
      op: "bind",
      key: binding.key,
      path: binding.displayPath,
      type: binding.type.name,
      size: binding.width,
      writable: binding.writable,
    });
  }

  /** Keeps a binding that could not be restored as a key (no event: the registry holds it already). */
  keepFailed(failed: FailedBinding): void {
    if (this.lastBinding?.key === failed.key) this.forgetLastKey();
    this.bindings.set(failed.key, failed);
  }

  /** Removes a key, unmaps its file (the file itself is kept) and tells the owner. */
  unbind(key: string): boolean {
    const binding = this.bindings.get(key);
    if (binding === undefined) return false;
    this.bindings.delete(key);
    if (this.lastBinding === binding) this.forgetLastKey();
    if (binding instanceof Binding) {
      if (this.writers.get(binding.absPath) === binding) this.writers.delete(binding.absPath);
      if (this.dirty.delete(binding)) binding.file.sync();
      binding.file.close();
    }
    this.watches.touch(key);
    this.options.onCatalogChange?.({ op: "unbind", key });
    return true;
  }

  private forgetLastKey(): void {
    this.lastBinding = undefined;
    this.lastKeyBytes = new Uint8Array(0);
  }

  /** Files grown ahead for the appends of the current batch, and by how much each will grow. */
  private readonly appendsAhead = new Map<Binding, number>();

  /** Notes that a waiting command will append `bytes` to the file of argument i's key (see growAhead). */
  noteAppend(a: ArgList, i: number, values: number): void {
    const b = this.find(a, i);
    if (!(b instanceof Binding) || !b.writable || values <= 0) return;
    this.appendsAhead.set(b, (this.appendsAhead.get(b) ?? 0) + values * b.width);
  }

  /**
   * Grows each file once for every append noted since the last batch, so the appends themselves
   * make no system call; `settleAppends` trims what was not used (a refused VADD).
   */
  growAhead(): void {
    for (const [b, bytes] of this.appendsAhead) {
      try {
        b.file.growAhead(bytes);
      } catch {
        this.appendsAhead.delete(b); // the appends will meet the same error one by one
      }
    }
  }

  /** Sets every file grown ahead to its exact size (end of a batch, before replies leave). */
  settleAppends(): void {
    for (const b of this.appendsAhead.keys()) {
      try {
        b.file.settleLength();
      } catch {
        // a failed trim leaves zeros past byteLength; the next resize or sync tries again
      }
    }
    this.appendsAhead.clear();
  }

  private indices = new Float64Array(256);

  /** A reused array for at least `n` parsed indices (multi-index commands parse each once). */
  indexScratch(n: number): Float64Array {
    if (n > this.indices.length) this.indices = new Float64Array(Math.max(n, 2 * this.indices.length));
    return this.indices;
  }

  /** True where the owner sends big replies a chunk at a time (the shard worker): see reply_stream.ts. */
  streaming = false;
  /** The stream the last command started (its header is in the reply), for the owner to take. */
  startedStream: ReplyStream | null = null;

  /**
   * Appends values [start, end) of `b` (or those at indices[start, end)) as one reply in `form`;
   * a big one only starts, as a stream, when streaming.
   */
  replyRange(w: ReplyWriter, b: Binding, start: number, end: number, form: StreamForm, indices: Float64Array | null = null): void {
    writeStreamHeader(w, b, start, end, form);
    if (this.streaming && worthStreaming(b, start, end, form)) {
      // The indices are scratch space the next command reuses: the stream keeps its own.
      this.startedStream = new ReplyStream(b, start, end, form, indices === null ? null : indices.slice(0, end));
      return;
    }
    const stream = new ReplyStream(b, start, end, form, indices);
    stream.proto = w.proto;
    while (!stream.produce(w, Number.MAX_SAFE_INTEGER));
  }

  /** Makes room for `bytes` bytes in the scratch buffer. */
  reserveScratch(bytes: number): void {
    if (bytes <= this.scratch.length) return;
    let cap = this.scratch.length;
    while (cap < bytes) cap *= 2;
    this.scratch = new Uint8Array(cap);
    this.scratchView = new DataView(this.scratch.buffer);
  }

  /** Flushes every file written since the last flush to disk; returns how many. */
  flushDirty(): number {
    const n = this.dirty.size;
    for (const b of this.dirty) b.file.sync();
    this.dirty.clear();
    return n;
  }

  /**
   * Compares each bound file's size on disk with its mapping's (one lseek each) and marks those
   * resized outside mmapd. A shrink inside the last page, or a growth, raises no fault, so without
   * this a binding would serve zeros or a stale count until its next resize or MMAP.
   */
  checkFileSizes(): void {
    for (const b of this.bindings.values()) if (b instanceof Binding && !b.file.sizeChanged) b.file.changedOutside();
  }

  /** Unmaps every file (shutdown). */
  closeAll(): void {
    this.flushDirty();
    for (const b of this.bindings.values()) if (b instanceof Binding) b.file.close();
    this.bindings.clear();
    this.writers.clear();
    this.lastBinding = undefined;
  }

  /**
   * Runs one command and appends its reply. Errors become `-` replies; the arity was checked by
   * the router. Any other exception is a bug: it is reported to the client as an error, never
   * allowed to take the shard down.
   */
  execute(command: ShardCommand, a: ArgList, w: ReplyWriter): void {
    const mark = w.length;
    try {
      command.run(this, a, w);
      // A write to a key's values that succeeded changes the key for WATCH (unbinding, what the
      // multi-key and every-shard writes do, tells WATCH itself, and only for keys that existed).
      if (this.watches.active && command.route === "key" && w.buf[mark] !== 45 /* - */ && command.flags.includes("write")) {
        for (const i of keyPositions(command, a)) this.watches.touch(this.keyOf(a, i));
      }
    } catch (e) {
      w.length = mark;
      if (e instanceof CommandError) w.error(e.reply);
      else w.error(Errors.internal(e));
    }
    if (sigbusFaultCount() !== this.faultsSeen) this.absorbFaults(w, mark);
  }

  /**
   * Some thread's mapping was hit past its file's end (another process shrank the file). If it was
   * one of this shard's, it happened during the command just run, which read zeros or lost writes:
   * its reply becomes the changed-size error, and the binding refuses commands from now on.
   */
  private absorbFaults(w: ReplyWriter, mark: number): void {
    this.faultsSeen = sigbusFaultCount();
    for (const b of this.bindings.values()) {
      if (!(b instanceof Binding) || b.file.sizeChanged || !b.file.checkFaults()) continue;
      w.length = mark;
      w.error(changedSizeError(b.displayPath).reply);
    }
  }
}
