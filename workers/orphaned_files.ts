/**
 * Releases the files a dead shard worker left open.
 *
 * Worker threads share the process's file descriptors, and a worker that dies does not close
 * its own: the descriptors of its writable files stay open and keep their exclusive flock, so
 * the worker started in its place could not bind them again ("locked by another process"). The
 * main thread finds those descriptors by the identity (device, inode) of the files and closes
 * them, after an fdatasync that makes the dead worker's last writes durable, and unlocks them.
 *
 * Only files the dead shard owned alone may be given: a descriptor another thread still uses
 * must not be closed under it. Writable bindings qualify (one writer per file, and no other
 * binding of that file); read-only descriptors hold no lock and are left alone. Their mappings
 * are left in place too (address space only: nothing touches them again). Linux only
 * (/proc/self/fd), as the rest of the file layer.
 */
import fs from "node:fs";
import { LOCK_UN, flock } from "../core/libc.ts";

/** What releasing found: descriptors closed, and those whose sync failed (closed anyway). */
export interface ReleaseReport {
  closed: number;
  syncFailures: string[];
}

/** Syncs and closes every descriptor of this process open on one of `paths` (absolute paths). */
export function releaseOrphanedFiles(paths: Iterable<string>): ReleaseReport {
  const report: ReleaseReport = { closed: 0, syncFailures: [] };
  const wanted = new Map<string, string>();
  for (const p of paths) {
    try {
      const st = fs.statSync(p, { bigint: true });
      wanted.set(`${st.dev}:${st.ino}`, p);
    } catch {
      // Gone or unreadable: no descriptor of ours can be found by it (a deleted file's is left).
    }
  }
  if (wanted.size === 0) return report;
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc/self/fd");
  } catch {
    return report;
  }
  for (const entry of entries) {
    const fd = Number(entry);
    if (!Number.isInteger(fd) || fd < 3) continue;
    let id: string;
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      if (!st.isFile()) continue;
      id = `${st.dev}:${st.ino}`;
    } catch {
      continue; // closed since the listing (or the listing's own descriptor)
    }
    const p = wanted.get(id);
    if (p === undefined) continue;
    try {
      fs.fdatasyncSync(fd);
    } catch (e) {
      report.syncFailures.push(`${p}: ${(e as Error).message}`);
    }
    // Unlocked explicitly: the dead worker's mapping still holds the open file, so closing the
    // descriptor alone would keep its flock.
    flock(fd, LOCK_UN);
    fs.closeSync(fd);
    report.closed++;
  }
  return report;
}
