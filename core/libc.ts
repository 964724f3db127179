/**
 * The few libc calls Node's `fs` does not offer (mmap, munmap, msync, flock, lseek, openat2, fstatfs,
 * sysconf, futex), with errno
 * and its text, the constants they take, and the turn of a failed call into a `CommandError`.
 *
 * Linux x86-64 with glibc only: the constants are that platform's values.
 */
import { FFIType, dlopen, ptr, read, type Pointer } from "bun:ffi";
import { BindingErrors, CommandError } from "./errors.ts";

// Memory protection and mapping flags (<sys/mman.h>).
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MS_ASYNC = 1;
export const MS_SYNC = 4;
export const MADV_DONTNEED = 4;

// flock operations (<sys/file.h>).
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

// lseek whence (<unistd.h>).
const SEEK_END = 2;

// errno values that callers tell apart (<errno.h>).
export const ENOENT = 2;
export const ENOTDIR = 20;
export const EPERM = 1;
export const EINVAL = 22;
export const EISDIR = 21;
export const EWOULDBLOCK = 11;
export const EXDEV = 18;
export const ELOOP = 40;
export const ENOSYS = 38;

// open flag missing from Bun's fs.constants (<fcntl.h>): no descriptor leaks into a child process.
export const O_CLOEXEC = 0o2000000;

// openat2 resolve flags (<linux/openat2.h>).
/** Fail with ELOOP if any component is a symlink. */
export const RESOLVE_NO_SYMLINKS = 0x04;
/** Fail with EXDEV if resolution would leave the directory (`..`, absolute symlinks). */
export const RESOLVE_BENEATH = 0x08;

// x86-64 system call number of openat2 (Linux >= 5.6).
const SYS_openat2 = 437;

const SC_PAGESIZE = 30;

// "libc.so.6", not "libc.so": the latter is a linker script that dlopen cannot load.
const libc = dlopen("libc.so.6", {
  // The address comes back as i64_fast: a plain number for every real address (< 2^47) and for
  // MAP_FAILED (-1), where "ptr" would turn -1 into an unusable 2^64 - 1.
  mmap: { args: ["ptr", "u64", "i32", "i32", "i32", "i64"], returns: FFIType.i64_fast },
  munmap: { args: ["ptr", "u64"], returns: "i32" },
  msync: { args: ["ptr", "u64", "i32"], returns: "i32" },
  madvise: { args: ["ptr", "u64", "i32"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  lseek: { args: ["i32", "i64", "i32"], returns: FFIType.i64_fast },
  // Declared with openat2's arguments: the only system call made through it.
  syscall: { args: ["i64", "i32", "ptr", "ptr", "u64"], returns: FFIType.i64_fast },
  fstatfs: { args: ["i32", "ptr"], returns: "i32" },
  sysconf: { args: ["i32"], returns: FFIType.i64_fast },
  __errno_location: { args: [], returns: "ptr" },
  strerror: { args: ["i32"], returns: "cstring" },
});

// x86-64 system call number of futex, and its operations on a word private to this process.
const SYS_futex = 202;
const FUTEX_WAIT_PRIVATE = 128;
const FUTEX_WAKE_PRIVATE = 129;

// The same syscall() declared with futex's arguments (a second handle, as one name has one signature).
const futexCall = dlopen("libc.so.6", {
  syscall: { args: ["i64", "ptr", "i32", "i32", "ptr"], returns: FFIType.i64_fast },
}).symbols.syscall;

/** FUTEX_WAIT's relative timeout (struct timespec: two 64-bit fields), one per thread. */
const futexTimeout = new Int32Array(4);
const futexTimeoutAddress = ptr(futexTimeout);

/** The address of `words[index]` (memory of a SharedArrayBuffer, which never moves), for futexWait/futexWake. */
export function wordAddress(words: Int32Array, index: number): number {
  return ptr(words, index * 4);
}

/**
 * Blocks the calling thread while the word at `address` holds `expected`, until futexWake or
 * `timeoutMs`. The kernel's futex directly: a wake-up costs about a third less than through
 * Atomics.wait/notify, which go through the engine's own queue of waiters. A thread woken this
 * way must be woken by futexWake, never by Atomics.notify.
 */
export function futexWait(address: number, expected: number, timeoutMs: number): void {
  const whole = Math.floor(timeoutMs / 1000);
  futexTimeout[0] = whole;
  futexTimeout[1] = 0;
  futexTimeout[2] = Math.floor((timeoutMs - whole * 1000) * 1e6);
  futexTimeout[3] = 0;
  futexCall(SYS_futex, address as unknown as Pointer, FUTEX_WAIT_PRIVATE, expected, futexTimeoutAddress);
}

/** Wakes every thread blocked in futexWait on `address`. */
export function futexWake(address: number): void {
  futexCall(SYS_futex, address as unknown as Pointer, FUTEX_WAKE_PRIVATE, 0x7fffffff, null);
}

// strerrordesc_np (glibc >= 2.32) gives the English text whatever the locale, so replies do not
// change language with the server's environment; older glibc falls back to strerror.
let strerrordesc: ((code: number) => unknown) | null = null;
try {
  strerrordesc = dlopen("libc.so.6", {
    strerrordesc_np: { args: ["i32"], returns: "cstring" },
  }).symbols.strerrordesc_np;
} catch {
  strerrordesc = null;
}

/** The system's page size in bytes. */
export const PAGE_SIZE: number = Number(libc.symbols.sysconf(SC_PAGESIZE)) || 4096;

/** The calling thread's errno; read it right after the failed call, before any other libc call. */
export function errno(): number {
  const location = libc.symbols.__errno_location();
  return location === null ? 0 : read.i32(location, 0);
}

/** The system's text for an errno value, e.g. "No such file or directory". */
export function strerror(code: number): string {
  const text = strerrordesc?.(code) ?? libc.symbols.strerror(code);
  return typeof text === "string" && text !== "" ? text : `Unknown error ${code}`;
}

/** The `CommandError` "ERR <what>: <strerror(code)>" for a failed call. */
export function systemError(what: string, code: number): CommandError {
  return new CommandError(BindingErrors.systemCall(what, strerror(code)));
}

/** Maps `length` bytes of `fd` from offset 0; returns the address, or -1 with errno set. */
export function mmap(length: number, prot: number, flags: number, fd: number): number {
  return Number(libc.symbols.mmap(null, length, prot, flags, fd, 0));
}

/** Unmaps [address, address + length); returns 0, or -1 with errno set. */
export function munmap(address: number, length: number): number {
  return libc.symbols.munmap(address as Pointer, length);
}

/** Writes dirty pages of [address, address + length) back (MS_SYNC waits); 0, or -1 with errno set. */
export function msync(address: number, length: number, flags: number): number {
  return libc.symbols.msync(address as Pointer, length, flags);
}

/** Gives the kernel advice about [address, address + length) (page-aligned); 0, or -1 with errno set. */
export function madvise(address: number, length: number, advice: number): number {
  return libc.symbols.madvise(address as Pointer, length, advice);
}

/** Applies or removes an advisory whole-file lock; returns 0, or -1 with errno set. */
export function flock(fd: number, operation: number): number {
  return libc.symbols.flock(fd, operation);
}

/**
 * The size of the file open on `fd` (lseek to its end: one syscall and no allocation, unlike
 * fstat through `fs`); -1 with errno set on failure. Moves the descriptor's offset, which mmapd
 * never uses: mapped files are read and written through their mappings.
 */
export function fileSize(fd: number): number {
  return Number(libc.symbols.lseek(fd, 0, SEEK_END));
}

/**
 * openat2(2): opens `relativePath` under the directory open on `dirfd`, the kernel enforcing
 * `resolve` (RESOLVE_* flags) atomically with the open. Returns the fd, or -1 with errno set
 * (ENOSYS where the kernel or a seccomp filter lacks it).
 */
export function openat2(dirfd: number, relativePath: string, flags: number, mode: number, resolve: number): number {
  const pathBytes = Buffer.from(relativePath + "\0", "utf8");
  // struct open_how { u64 flags; u64 mode; u64 resolve; }
  const how = new BigUint64Array([BigInt(flags), BigInt(mode), BigInt(resolve)]);
  return Number(libc.symbols.syscall(SYS_openat2, dirfd, pathBytes, how, how.byteLength));
}

/** The f_type of the file system holding the file open on `fd` (fstatfs), or -1 with errno set. */
export function fileSystemType(fd: number): number {
  // struct statfs is 120 bytes on x86-64; f_type, a long, comes first.
  const statfs = new BigInt64Array(15);
  if (libc.symbols.fstatfs(fd, statfs) !== 0) return -1;
  return Number(statfs[0]);
}

/** The errno carried by an error thrown by Node's `fs` (which reports it negated), or EINVAL. */
export function errnoOf(error: unknown): number {
  const value = (error as { errno?: unknown } | null)?.errno;
  return typeof value === "number" && value !== 0 ? Math.abs(value) : EINVAL;
}
