/**
 * Finds a command by the bytes of its name without making a string: an open-addressed table
 * keyed by a case-folded hash of the name, checked byte by byte.
 */
import type { ArgList } from "./args.ts";
import { argIs } from "./args.ts";
import { FNV_OFFSET, fnvMix } from "./fnv.ts";

const SLOTS = 1024; // a power of two, well above the number of commands

function foldedHash(buf: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let p = start; p < end; p++) {
    let c = buf[p];
    if (c >= 65 && c <= 90) c |= 32;
    h = fnvMix(h, c);
  }
  return h >>> 0;
}

export class CommandIndex<T extends { name: string }> {
  private readonly slots: (T | undefined)[] = new Array(SLOTS).fill(undefined);

  constructor(entries: Iterable<T>) {
    for (const e of entries) this.add(e);
  }

  /** Adds an entry under its lowercase name. */
  add(entry: T): void {
    const name = new TextEncoder().encode(entry.name);
    let slot = foldedHash(name, 0, name.length) & (SLOTS - 1);
    while (this.slots[slot] !== undefined) {
      if (this.slots[slot]!.name === entry.name) throw new Error(`command ${entry.name} registered twice`);
      slot = (slot + 1) & (SLOTS - 1);
    }
    this.slots[slot] = entry;
  }

  /** The entry named by argument i (any case), or undefined. */
  find(a: ArgList, i: number): T | undefined {
    const start = a.argStart[i];
    const end = a.argEnd[i];
    if (end - start > 32) return undefined;
    let slot = foldedHash(a.buf, start, end) & (SLOTS - 1);
    for (;;) {
      const e = this.slots[slot];
      if (e === undefined) return undefined;
      if (argIs(a, i, e.name)) return e;
      slot = (slot + 1) & (SLOTS - 1);
    }
  }

  /** Every entry, in table order. */
  entries(): T[] {
    return this.slots.filter((e): e is T => e !== undefined);
  }
}
