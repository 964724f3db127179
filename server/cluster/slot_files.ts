/**
 * Small facts shared by the two sides of a slot migration: a key's slot, where the target keeps
 * the bytes it receives, and the checksum of a chunk.
 */
import fs from "node:fs";
import path from "node:path";
import { hashSlot } from "../../core/slots.ts";

/** The hash slot of a key kept as a latin1 string. */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key, "latin1");
  return hashSlot(bytes, 0, bytes.length);
}

/** The directory of bytes received by imports and not yet placed (MMAP refuses paths in it). */
export const STAGING_DIR = ".mmapd-import";

/** Where an import keeps the bytes it receives for `slot`, under the data directory. */
export function stagingDir(dataDir: string, slot: number): string {
  return path.join(dataDir, STAGING_DIR, String(slot));
}

/** Puts a file an unfinished import placed back among its received bytes (so a retry resumes). */
export function unplace(dataDir: string, slot: number, relative: string): void {
  const placed = path.join(dataDir, relative);
  const staged = path.join(stagingDir(dataDir, slot), relative);
  try {
    fs.mkdirSync(path.dirname(staged), { recursive: true });
    fs.renameSync(placed, staged);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

/** The crc32 of a chunk's bytes, as a migration's chunks carry it. */
export function crc32(bytes: Uint8Array): number {
  return Bun.hash.crc32(bytes) >>> 0;
}
