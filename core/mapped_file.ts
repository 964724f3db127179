/**
 * One memory-mapped file of fixed-width values: opening and checking it, viewing the mapping
 * through cached windows without allocating per access, growing and shrinking it, syncing, and
 * closing it so that no later access can reach unmapped memory.
 *
 * Safety rests on two rules, because a stray access to a mapping kills the whole process (SIGBUS
 * beyond the file's end, SIGSEGV after munmap or on a write to a read-only mapping):
 *  - every access is bound-checked against `byteLength` (locate, readInto and writeFrom do it;
 *    callers that use `view`/`bytes` touch only [at, at + valueSize) after locate), and
 *  - every view handed out is detached when its memory goes away (remap, shrink, close), so a
 *    stale reference throws a TypeError instead of touching freed memory.
 * Writes through `view`/`bytes` are the caller's to refuse on a read-only file (`writable`).
 *
 * A third hazard is not ours to prevent: another process may shrink the file, and then an access
 * inside `byteLength` lands past the file's real end. Every mapping is registered with the SIGBUS
 * guard (sigbus_guard.ts), which absorbs that fault (zeros are read, writes are discarded) and
 * records it; `sizeChanged` then turns true and stays true until the file is mapped again. The size
 * on disk is also compared before every resize, so a shrink or growth done outside is never
 * overwritten by ours.
 */
import fs from "node:fs";
import { toArrayBuffer } from "bun:ffi";
import { CommandError, Errors, fail } from "./errors.ts";
import {
  EISDIR,
  ELOOP,
  EWOULDBLOCK,
  EXDEV,
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
  MADV_DONTNEED,
  MAP_SHARED,
  MS_SYNC,
  O_CLOEXEC,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
  errno,
  errnoOf,
  fileSize,
  fileSystemType,
  flock,
  madvise,
  mmap,
  msync,
  munmap,
  systemError,
} from "./libc.ts";
import { cannotOpen, openDataFile, replySafe } from "./paths.ts";
import { guardMapping, mappingFaulted, releaseMapping } from "./sigbus_guard.ts";

/** The error for every command on a file that changed size outside mmapd. */
export function changedSizeError(displayPath: string): CommandError {
  return new CommandError(`ERR file '${replySafe(displayPath)}' changed size outside mmapd; MMAP it again`);
}

/** What to open and how. */
export interface MapOptions {
  writable: boolean;
  create: boolean;
  valueSize: number;
  /** The path as the client gave it, for error texts. */
  displayPath: string;
  /**
   * The directory (a real path) the file must lie beneath, enforced by the kernel at the open,
   * symlinks refused (see openDataFile); absent when any path is allowed.
   */
  root?: string;
}

// One ArrayBuffer over foreign memory may span at most 4 GiB, so the mapping is seen through
// windows of 1 GiB. Consecutive windows overlap by WINDOW_OVERLAP bytes so that any value starting
// in window i ends inside window i too, and a value never has to be read across two views.
const WINDOW_STRIDE = 2 ** 30;
const WINDOW_OVERLAP = 4096;
/** The largest value size the windows can serve whole. */
const MAX_VALUE_SIZE = WINDOW_OVERLAP;

// Writable files are mapped with room to grow, so most growths are a bare ftruncate. Address space
// is cheap (128 TiB per process) and pages past the end of the file are never touched.
const MIN_RESERVATION = 64 * 2 ** 20;

// Kernel interfaces that look like regular files (statfs f_type): /proc/self/mem, /sys/... Mapping
// or resizing them is meaningless at best, so they are refused like devices.
const PSEUDO_FILE_SYSTEMS = new Set([
  0x9fa0, // proc
  0x62656572, // sysfs
  0x64626720, // debugfs
  0x74726163, // tracefs
  0x73636673, // securityfs
  0x27e0eb, // cgroup
  0x63677270, // cgroup2
  0x62656570, // configfs
  0xcafe4a11, // bpf
  0xde5e81e4, // efivarfs
  0x6165676c, // pstore
]);

// Copies shorter than this go byte by byte: cheaper than making a subarray, and allocation-free.
const SHORT_COPY = 64;

// Before the first locate and after the window is dropped: `offset - (-Infinity)` is never inside
// a window, so the next locate always takes the slow path.
const NO_WINDOW = -Infinity;

// Shared empty views keep `view` and `bytes` of one type at all times, and make any access through
// them before locate, or after close, throw a RangeError.
const EMPTY_BUFFER = new ArrayBuffer(0);
const EMPTY_VIEW = new DataView(EMPTY_BUFFER);
const EMPTY_BYTES = new Uint8Array(EMPTY_BUFFER);

/** `length` rounded up to a whole number of pages. */
function roundUpToPage(length: number): number {
  return Math.ceil(length / PAGE_SIZE) * PAGE_SIZE;
}

/** The mapping length reserved for a writable file of `byteLength` bytes: room to double. */
function reservationFor(byteLength: number): number {
  return roundUpToPage(Math.max(2 * byteLength, MIN_RESERVATION));
}

/** Makes every view over `buffer` throw from now on (its memory is about to be unmapped). */
function detach(buffer: ArrayBufferLike): void {
  // transfer(0) moves nothing: it only detaches, and the new zero-length buffer is garbage.
  (buffer as ArrayBuffer).transfer(0);
}

/** A mapped file of `count` values of `valueSize` bytes each. */
export class MappedFile {
  readonly path: string;
  readonly displayPath: string;
  readonly writable: boolean;
  readonly valueSize: number;
  /** Number of values (byteLength / valueSize). */
  count: number;
  /** The file's size in bytes as mmapd last set or saw it. */
  byteLength: number;
  /** After locate: the window holding the located value, as a DataView. */
  view: DataView = EMPTY_VIEW;
  /** After locate: the same window as bytes. */
  bytes: Uint8Array = EMPTY_BYTES;
  /** After locate: the value's offset inside `view` and `bytes`. */
  at = 0;
  /** How many times the file has been mapped again at a new address (growth past the reservation). */
  remapCount = 0;
  /**
   * True once the file is known to have changed size outside mmapd (set by checkFaults and
   * changedOutside, never cleared): its values can no longer be trusted, so its binding refuses
   * commands until it is mapped again.
   */
  sizeChanged = false;

  private fd: number;
  private address: number;
  private mappedLength: number;
  /**
   * The file's size on disk as mmapd last set it: equal to byteLength, except inside a batch of
   * appends that `growAhead` sized at once (then larger until `settleLength`).
   */
  private diskLength: number;
  private closed = false;
  // This mapping's slot in the SIGBUS guard's table, or -1 when unguarded (or nothing is mapped).
  private guardSlot = -1;
  // The cursor's window: its first file byte, so `at = byteOffset - windowStart`.
  private windowStart = NO_WINDOW;
  // Windows made so far, by index; created on first use and dropped on remap, shrink and close.
  private windowViews: (DataView | undefined)[];
  private windowBytes: (Uint8Array | undefined)[];

  private constructor(absPath: string, opts: MapOptions, fd: number, byteLength: number, address: number, mappedLength: number) {
    this.path = absPath;
    this.displayPath = opts.displayPath;
    this.writable = opts.writable;
    this.valueSize = opts.valueSize;
    this.fd = fd;
    this.byteLength = byteLength;
    this.count = byteLength / opts.valueSize;
    this.address = address;
    this.mappedLength = mappedLength;
    this.diskLength = byteLength;
    this.windowViews = new Array(Math.ceil(mappedLength / WINDOW_STRIDE)).fill(undefined);
    this.windowBytes = new Array(this.windowViews.length).fill(undefined);
  }

  /**
   * Opens and maps `absPath` (a resolved path: a symlink in the final component is refused; with
   * `root`, a symlink anywhere, or a path that leads outside it, is). Directories, devices, FIFOs,
   * sockets and kernel files are refused.
   */
  static open(absPath: string, opts: MapOptions): MappedFile {
    const { writable, create, valueSize, displayPath } = opts;
    if (!Number.isInteger(valueSize) || valueSize < 1 || valueSize > MAX_VALUE_SIZE) {
      fail(`value size ${valueSize} is not between 1 and ${MAX_VALUE_SIZE}`);
    }
    const shownPath = replySafe(displayPath);
    const { O_RDONLY, O_RDWR, O_CREAT, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
    // O_NOFOLLOW: the path was resolved and checked before; a symlink swapped in since must not
    // be followed (with a root, no symlink anywhere on the path is). O_NONBLOCK: opening a FIFO
    // must not wait for a writer.
    const flags = (writable ? O_RDWR | (create ? O_CREAT : 0) : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    const fd = openDataFile(absPath, flags, 0o644, opts.root);
    if (fd < 0) {
      const code = -fd;
      // A directory opened for writing fails with EISDIR; say the same as for a read-only open.
      if (code === EISDIR) throw new CommandError(`ERR '${shownPath}' is not a regular file`);
      // Checked inside, but by the time of the open a symlink or a moved directory led outside.
      if (opts.root !== undefined && (code === EXDEV || code === ELOOP)) throw new CommandError(Errors.outsideDataDir);
      throw cannotOpen(displayPath, code);
    }

    let address = -1;
    let mappedLength = 0;
    try {
      if (!fs.fstatSync(fd).isFile() || PSEUDO_FILE_SYSTEMS.has(fileSystemType(fd))) {
        throw new CommandError(`ERR '${shownPath}' is not a regular file`);
      }
      if (writable && flock(fd, LOCK_EX | LOCK_NB) !== 0) {
        const code = errno();
        if (code === EWOULDBLOCK) throw new CommandError(`ERR file '${shownPath}' is locked by another process`);
        throw systemError(`cannot lock '${shownPath}'`, code);
      }
      // The size is read after taking the lock: a cooperating writer may have been resizing it.
      const byteLength = fs.fstatSync(fd).size;
      if (byteLength % valueSize !== 0) fail(`file size ${byteLength} is not a multiple of value size ${valueSize}`);

      // An empty read-only file can never grow under us, so it maps nothing: mmap of 0 bytes fails.
      mappedLength = writable ? reservationFor(byteLength) : byteLength;
      if (mappedLength > 0) {
        address = mmap(mappedLength, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd);
        if (address === -1) throw systemError(`cannot map '${shownPath}'`, errno());
      }
      const file = new MappedFile(absPath, opts, fd, byteLength, address === -1 ? 0 : address, mappedLength);
      if (address !== -1) file.guardSlot = guardMapping(address, mappedLength);
      return file;
    } catch (error) {
      if (address !== -1) munmap(address, mappedLength);
      fs.closeSync(fd); // also releases the lock, if taken
      throw error;
    }
  }

  /**
   * Positions the cursor on the value at bytes [byteOffset, byteOffset + valueSize): afterwards
   * `view`, `bytes` and `at` address it. Throws if that range is not inside the file. No allocation
   * once the window has been made.
   */
  locate(byteOffset: number): void {
    if (!(byteOffset >= 0 && byteOffset + this.valueSize <= this.byteLength)) throw this.outOfRange();
    const at = byteOffset - this.windowStart;
    if (at >= 0 && at < WINDOW_STRIDE) {
      this.at = at;
      return;
    }
    this.enterWindow(Math.floor(byteOffset / WINDOW_STRIDE));
    this.at = byteOffset - this.windowStart;
  }

  /** Copies file bytes [byteOffset, byteOffset + length) into dst at dstOffset; the cursor stays. */
  readInto(byteOffset: number, length: number, dst: Uint8Array, dstOffset: number): void {
    this.checkRange(byteOffset, length);
    if (!(dstOffset >= 0 && dstOffset + length <= dst.length)) throw new RangeError("readInto: destination too small");
    while (length > 0) {
      const index = Math.floor(byteOffset / WINDOW_STRIDE);
      const window = this.windowBytes[index] ?? this.makeWindow(index);
      const at = byteOffset - index * WINDOW_STRIDE;
      // Up to the start of the next window; the overlap would serve too, but need not.
      const chunk = Math.min(length, WINDOW_STRIDE - at);
      if (chunk < SHORT_COPY) {
        for (let i = 0; i < chunk; i++) dst[dstOffset + i] = window[at + i]!;
      } else {
        dst.set(window.subarray(at, at + chunk), dstOffset);
      }
      byteOffset += chunk;
      dstOffset += chunk;
      length -= chunk;
    }
  }

  /** Copies src[start, end) into the file at byteOffset; the range must be inside the file. */
  writeFrom(byteOffset: number, src: Uint8Array, start: number, end: number): void {
    if (!this.writable) throw new CommandError(this.closed ? Errors.notMapped : Errors.notWritable);
    if (!(start >= 0 && start <= end && end <= src.length)) throw new RangeError("writeFrom: bad source range");
    let length = end - start;
    this.checkRange(byteOffset, length);
    while (length > 0) {
      const index = Math.floor(byteOffset / WINDOW_STRIDE);
      const window = this.windowBytes[index] ?? this.makeWindow(index);
      const at = byteOffset - index * WINDOW_STRIDE;
      const chunk = Math.min(length, WINDOW_STRIDE - at);
      if (chunk < SHORT_COPY) {
        for (let i = 0; i < chunk; i++) window[at + i] = src[start + i]!;
      } else {
        window.set(src.subarray(start, start + chunk), at);
      }
      byteOffset += chunk;
      start += chunk;
      length -= chunk;
    }
  }

  /**
   * Drops this process's page-table entries for the pages holding file bytes
   * [byteOffset, byteOffset + length), so that they stop counting in its RSS. The pages stay in the
   * page cache (written or not: a shared file mapping keeps dirty data, MADV_DONTNEED only unmaps),
   * and the next access maps them again with a minor fault. Used after a big reply has read a range
   * once, so that streaming a whole file does not leave the file resident in mmapd's RSS.
   */
  releasePages(byteOffset: number, length: number): void {
    if (this.closed || this.mappedLength === 0 || !(length > 0)) return;
    const start = Math.floor(Math.max(byteOffset, 0) / PAGE_SIZE) * PAGE_SIZE;
    // Inside the mapping always: it covers whole pages, and byteLength never exceeds it.
    const end = Math.min(roundUpToPage(Math.min(byteOffset + length, this.byteLength)), this.mappedLength);
    // Advice only: a failure changes nothing that matters, so it is not reported.
    if (end > start) madvise(this.address + start, end - start, MADV_DONTNEED);
  }

  /**
   * Sets the number of values: grows (new values are zero) or shrinks the file. Growth inside the
   * reservation is a bare ftruncate; past it the file is mapped again with room to double.
   */
  resize(newCount: number): void {
    this.checkOpen();
    if (!this.writable) throw new CommandError(Errors.notWritable);
    if (!Number.isSafeInteger(newCount) || newCount < 0) fail(`invalid value count ${newCount}`);
    const newLength = newCount * this.valueSize;
    if (!Number.isSafeInteger(newLength)) fail(`invalid value count ${newCount}`);
    if (newLength > this.byteLength && newLength <= this.diskLength) {
      // Room made by growAhead: no system call. A fault absorbed meanwhile still counts.
      if (this.checkFaults()) throw changedSizeError(this.displayPath);
      this.byteLength = newLength;
      this.count = newCount;
      return;
    }
    // Resizing a file that another process resized would cut or zero-fill its data unseen.
    if (this.changedOutside()) throw changedSizeError(this.displayPath);
    if (newLength === this.byteLength && newLength === this.diskLength) return;

    if (newLength > this.mappedLength) {
      this.growMapping(newLength);
    } else {
      this.truncate(newLength);
      // Windows wholly past the new end cover only cut bytes: drop them so no stale reference can
      // reach those pages. They are made again if the file grows back.
      if (newLength < this.byteLength) this.dropWindows(Math.ceil(newLength / WINDOW_STRIDE));
    }
    this.byteLength = newLength;
    this.count = newCount;
  }

  /**
   * Makes the file `extraBytes` longer on disk at once, ahead of a batch of appends, so that each
   * append inside the batch is a bare bounds update instead of a system call. `settleLength` then
   * sets the exact size; the bytes grown but not appended are never part of byteLength.
   */
  growAhead(extraBytes: number): void {
    this.checkOpen();
    const target = this.byteLength + extraBytes;
    if (!this.writable || !(extraBytes > 0) || target <= this.diskLength || !Number.isSafeInteger(target)) return;
    if (this.changedOutside()) return; // the appends themselves will report it
    if (target > this.mappedLength) this.growMapping(target);
    else this.truncate(target);
  }

  /** Sets the file's size on disk back to byteLength after a batch that grew it ahead. */
  settleLength(): void {
    if (this.closed || this.diskLength === this.byteLength || this.sizeChanged) return;
    this.truncate(this.byteLength);
  }

  /** Flushes written pages and size changes to disk; returns when they are durable. */
  sync(): void {
    this.checkOpen();
    if (!this.writable) return; // nothing of ours to flush
    this.settleLength();
    if (this.byteLength > 0 && msync(this.address, this.byteLength, MS_SYNC) !== 0) {
      throw systemError(`cannot sync '${replySafe(this.displayPath)}'`, errno());
    }
    try {
      // fdatasync also persists a changed size (needed to read the data back); mtime may lag.
      fs.fdatasyncSync(this.fd);
    } catch (error) {
      throw systemError(`cannot sync '${replySafe(this.displayPath)}'`, errnoOf(error));
    }
  }

  /**
   * True if the file changed size outside mmapd: a fault past its end was absorbed, or its size on
   * disk no longer equals byteLength. Sets `sizeChanged`. One lseek.
   */
  changedOutside(): boolean {
    this.checkOpen();
    if (this.checkFaults()) return true;
    if (fileSize(this.fd) !== this.diskLength) this.sizeChanged = true;
    return this.sizeChanged;
  }

  /**
   * True if an access past the file's end was absorbed in this mapping (the file was shrunk
   * outside mmapd while mapped). Sets `sizeChanged`. No system call: one load from the guard's table.
   */
  checkFaults(): boolean {
    if (!this.sizeChanged && mappingFaulted(this.guardSlot)) this.sizeChanged = true;
    return this.sizeChanged;
  }

  /** Unmaps and closes (releasing the lock); any later use throws. Closing twice does nothing. */
  close(): void {
    if (this.closed) return;
    // A file grown ahead for appends keeps only what was appended.
    if (this.writable && this.diskLength !== this.byteLength && !this.sizeChanged) {
      try {
        this.truncate(this.byteLength);
      } catch {
        // closing goes on: the file is still consistent up to byteLength
      }
    }
    this.closed = true;
    // Bounds of zero make every later locate, readInto and writeFrom throw before any access.
    this.byteLength = 0;
    this.count = 0;
    this.dropWindows(0);
    releaseMapping(this.guardSlot);
    this.guardSlot = -1;
    // munmap fails only for arguments that are not a mapping; these are the ones mmap returned.
    if (this.mappedLength > 0) munmap(this.address, this.mappedLength);
    this.address = 0;
    this.mappedLength = 0;
    if (this.writable) flock(this.fd, LOCK_UN);
    fs.closeSync(this.fd);
  }

  /** True once close has been called. */
  get isClosed(): boolean {
    return this.closed;
  }

  // ---- internals ----

  /** Makes window `index` the cursor's window. */
  private enterWindow(index: number): void {
    this.bytes = this.windowBytes[index] ?? this.makeWindow(index);
    this.view = this.windowViews[index]!;
    this.windowStart = index * WINDOW_STRIDE;
  }

  /** Creates and caches the views of window `index`; returns its bytes. */
  private makeWindow(index: number): Uint8Array {
    const start = index * WINDOW_STRIDE;
    const length = Math.min(WINDOW_STRIDE + WINDOW_OVERLAP, this.mappedLength - start);
    // Unreachable while callers check bounds first; guards the raw pointer arithmetic below.
    if (this.closed || !(length > 0)) throw new CommandError(this.closed ? Errors.notMapped : Errors.indexOutOfRange);
    const buffer = toArrayBuffer(this.address + start, 0, length);
    const bytes = new Uint8Array(buffer);
    this.windowViews[index] = new DataView(buffer);
    this.windowBytes[index] = bytes;
    return bytes;
  }

  /** Detaches and forgets windows from `firstIndex` on; resets the cursor if it was among them. */
  private dropWindows(firstIndex: number): void {
    for (let index = firstIndex; index < this.windowViews.length; index++) {
      const view = this.windowViews[index];
      if (view === undefined) continue;
      detach(view.buffer);
      this.windowViews[index] = undefined;
      this.windowBytes[index] = undefined;
    }
    if (this.windowStart >= firstIndex * WINDOW_STRIDE) {
      this.windowStart = NO_WINDOW;
      this.view = EMPTY_VIEW;
      this.bytes = EMPTY_BYTES;
      this.at = 0;
    }
  }

  /** Sets the file's size on disk. */
  private truncate(newLength: number): void {
    try {
      fs.ftruncateSync(this.fd, newLength);
    } catch (error) {
      throw systemError(`cannot resize '${replySafe(this.displayPath)}'`, errnoOf(error));
    }
    this.diskLength = newLength;
  }

  /** Grows the file past the reservation: maps it anew with room to double, then drops the old mapping. */
  private growMapping(newLength: number): void {
    const newMappedLength = reservationFor(newLength);
    // Map first: a mapping may extend past the end of the file, and if mmap fails nothing changed.
    const newAddress = mmap(newMappedLength, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd);
    if (newAddress === -1) throw systemError(`cannot map '${replySafe(this.displayPath)}'`, errno());
    try {
      this.truncate(newLength);
    } catch (error) {
      munmap(newAddress, newMappedLength);
      throw error;
    }
    this.dropWindows(0);
    const newSlot = guardMapping(newAddress, newMappedLength);
    releaseMapping(this.guardSlot);
    this.guardSlot = newSlot;
    munmap(this.address, this.mappedLength);
    this.address = newAddress;
    this.mappedLength = newMappedLength;
    const windowCount = Math.ceil(newMappedLength / WINDOW_STRIDE);
    this.windowViews = new Array(windowCount).fill(undefined);
    this.windowBytes = new Array(windowCount).fill(undefined);
    this.remapCount++;
  }

  /** Throws unless [byteOffset, byteOffset + length) lies inside the file. */
  private checkRange(byteOffset: number, length: number): void {
    if (!(byteOffset >= 0 && length >= 0 && byteOffset + length <= this.byteLength) || this.closed) {
      throw this.outOfRange();
    }
  }

  /** The error for an access outside the file: "not mapped" once closed. */
  private outOfRange(): CommandError {
    return new CommandError(this.closed ? Errors.notMapped : Errors.indexOutOfRange);
  }

  /** Throws once the file is closed. */
  private checkOpen(): void {
    if (this.closed) throw new CommandError(Errors.notMapped);
  }
}
