/**
 * The SIGBUS guard (sigbus_guard.c) seen from JavaScript: installs it once per process, registers
 * each mapping in its table, and tells whether a mapping was hit by an access past the end of its
 * file, which happens when another process shrinks a bound file. Without the guard that access
 * would kill the server; with it the access reads zeros (or writes into a discarded page) and the
 * hit is counted, so the binding's commands can answer an error instead.
 *
 * The handler is process-wide but the JavaScript heaps are per thread: the main thread compiles
 * and installs it (TinyCC through bun:ffi `cc`) and hands worker threads a `SigbusGuardHandle`
 * (addresses) that they adopt. A thread that has neither installed nor adopted the guard maps
 * files unguarded, as does a platform where the guard cannot be built (it is x86-64 Linux code);
 * size checks on MMAP and on every resize still catch a shrunk file there, but a read past the new
 * end kills the process.
 *
 * Reading the fault count is one typed-array load, so a shard can check it after every command.
 */
import { CFunction, FFIType, cc, toArrayBuffer, type Pointer } from "bun:ffi";
import path from "node:path";
import { isMainThread } from "node:worker_threads";

/** What a worker thread needs to use the guard that the main thread installed. */
export interface SigbusGuardHandle {
  /** Address of the C table (`struct guard`). */
  table: number;
  /** Byte offset of the per-slot fault counters in the table. */
  slotFaultsOffset: number;
  capacity: number;
  /** Addresses of guard_claim and guard_release. */
  claim: number;
  release: number;
}

/** Number of mappings the table can hold: more than Linux's default vm.max_map_count (65530). */
const CAPACITY = 65536;

// The main thread's compiled library, kept reachable for the life of the process: its code is the
// installed signal handler. Kept on globalThis so that a module loaded twice in one process (test
// runners) finds it instead of compiling and installing a second handler.
const PROCESS_KEY = Symbol.for("mmapd.sigbusGuard");
interface Installed {
  library: unknown;
  handle: SigbusGuardHandle;
}

// This thread's view of the guard: a placeholder that never counts until the guard is in use.
let faultCounter = new Int32Array(1);
let slotFaults = new Int32Array(0);
let claimSlot: ((start: number, length: number) => number) | null = null;
let releaseSlot: ((slot: number) => void) | null = null;
let unavailableReason: string | null = null;
let attempted = false;

/** Points this thread's view at the table and functions of `handle`. */
function useHandle(handle: SigbusGuardHandle, claim: (start: number, length: number) => number, release: (slot: number) => void): void {
  faultCounter = new Int32Array(toArrayBuffer(handle.table as Pointer, 0, 4));
  slotFaults = new Int32Array(toArrayBuffer((handle.table + handle.slotFaultsOffset) as Pointer, 0, handle.capacity * 4));
  claimSlot = claim;
  releaseSlot = release;
}

/** Compiles and installs the guard in this process; returns its handle, or null with the reason kept. */
function install(): SigbusGuardHandle | null {
  const processWide = (globalThis as Record<symbol, Installed | undefined>)[PROCESS_KEY];
  if (processWide !== undefined) {
    adoptSigbusGuard(processWide.handle);
    return processWide.handle;
  }
  try {
    const library = cc({
      source: path.join(import.meta.dir, "sigbus_guard.c"),
      define: { GUARD_CAPACITY: String(CAPACITY) },
      symbols: {
        guard_install: { args: [], returns: "i32" },
        guard_claim: { args: ["ptr", "u64"], returns: "i32" },
        guard_release: { args: ["i32"], returns: "void" },
        guard_table: { args: [], returns: "ptr" },
        guard_layout: { args: ["i32"], returns: FFIType.i64_fast },
        guard_function: { args: ["i32"], returns: "ptr" },
      },
    });
    const s = library.symbols;
    // The table must look as this module assumes before any handler relies on it.
    if (Number(s.guard_layout(0)) !== 0 || Number(s.guard_layout(1)) !== 16 + 16 * CAPACITY) {
      throw new Error("unexpected table layout");
    }
    if (s.guard_install() !== 0) throw new Error("sigaction failed");
    const handle: SigbusGuardHandle = {
      table: Number(s.guard_table()),
      slotFaultsOffset: Number(s.guard_layout(1)),
      capacity: CAPACITY,
      claim: Number(s.guard_function(0)),
      release: Number(s.guard_function(1)),
    };
    (globalThis as Record<symbol, Installed>)[PROCESS_KEY] = { library, handle };
    useHandle(
      handle,
      (start, length) => s.guard_claim(start as Pointer, length),
      (slot) => s.guard_release(slot),
    );
    return handle;
  } catch (error) {
    unavailableReason = (error as Error).message.split("\n")[0] ?? "unknown error";
    return null;
  }
}

/**
 * The guard's handle for worker threads. On the main thread the guard is installed on first use;
 * elsewhere it is the adopted handle. Null if the guard is not available.
 */
export function sigbusGuardHandle(): SigbusGuardHandle | null {
  if (!attempted && isMainThread) {
    attempted = true;
    return install();
  }
  const processWide = (globalThis as Record<symbol, Installed | undefined>)[PROCESS_KEY];
  return processWide?.handle ?? adoptedHandle;
}

let adoptedHandle: SigbusGuardHandle | null = null;

/** Uses, in this worker thread, the guard the main thread installed. */
export function adoptSigbusGuard(handle: SigbusGuardHandle): void {
  attempted = true;
  adoptedHandle = handle;
  const claim = CFunction({ ptr: handle.claim as Pointer, args: ["ptr", "u64"], returns: "i32" });
  const release = CFunction({ ptr: handle.release as Pointer, args: ["i32"], returns: "void" });
  useHandle(
    handle,
    (start, length) => claim(start as Pointer, length) as number,
    (slot) => release(slot),
  );
}

/** "on", or why mapped files are not guarded ("unavailable: <reason>", "not adopted in this thread"). */
export function sigbusGuardStatus(): string {
  if (claimSlot !== null) return "on";
  if (unavailableReason !== null) return `unavailable: ${unavailableReason}`;
  return isMainThread ? "not installed yet" : "not adopted in this thread";
}

/**
 * Registers the mapping [address, address + length) so a SIGBUS inside it is absorbed; returns the
 * slot to release before unmapping, or -1 if the mapping is unguarded.
 */
export function guardMapping(address: number, length: number): number {
  if (!attempted && isMainThread) sigbusGuardHandle();
  if (claimSlot === null || length <= 0) return -1;
  return claimSlot(address, length);
}

/** Forgets a slot's mapping; call before the mapping goes away. */
export function releaseMapping(slot: number): void {
  if (slot >= 0) releaseSlot?.(slot);
}

/** The number of faults the guard has absorbed in the whole process (wraps at 2^31). */
export function sigbusFaultCount(): number {
  return faultCounter[0]!;
}

/** True if an access past the file's end was absorbed in this slot's mapping since it was registered. */
export function mappingFaulted(slot: number): boolean {
  return slot >= 0 && slotFaults[slot] !== 0;
}
