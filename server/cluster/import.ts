/**
 * The target's side of a slot migration: the source node connects as a client and, on that one
 * connection, starts the import, sends each file's bytes in checksummed chunks (kept under
 * `.mmapd-import/<slot>/` until placed), places the files at their paths, binds the keys with
 * plain MMAPs (which pass the redirection check on that connection only), and finally says
 * SUCCESS: only then does this node serve the slot. FAIL, or the connection closing before
 * SUCCESS, undoes the import: the keys are unbound and the placed files go back among the
 * received bytes, so the next attempt sends only what differs (resumable).
 *
 *   CLUSTERX IMPORT <slot> START <source-id> | SUCCESS | FAIL
 *   CLUSTERX IMPORTFILE <slot> <path> SUMS <chunk-size>          -> [size, crc32 of each chunk]
 *   CLUSTERX IMPORTFILE <slot> <path> SIZE <bytes>
 *   CLUSTERX IMPORTFILE <slot> <path> WRITE <offset> <crc32> <bytes>
 *   CLUSTERX IMPORTFILE <slot> <path> SYNC
 *   CLUSTERX IMPORTFILE <slot> <path> PLACE
 */
import fs from "node:fs";
import path from "node:path";
import type { ArgList } from "../../core/args.ts";
import { argInt, argIs, argString, argView } from "../../core/args.ts";
import { ClusterErrors, CommandError, MigrationErrors } from "../../core/errors.ts";
import { REGISTRY_FILE } from "../../core/registry.ts";
import { SLOT_COUNT } from "../../core/slots.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { Connection } from "../connection.ts";
import { log } from "../log.ts";
import type { Cluster } from "./cluster.ts";
import { STAGING_DIR, crc32, stagingDir, unplace } from "./slot_files.ts";
import { TOPOLOGY_FILE } from "./topology.ts";

/** An import in progress. */
interface Import {
  slot: number;
  source: string;
  conn: Connection;
  /** Open staged files, by relative path. */
  files: Map<string, number>;
  /** Undoing it (after FAIL or a closed connection): a new START waits. */
  undoing: boolean;
}

const imports = new Map<number, Import>();

/**
 * When an import's source is taken for gone: its connection closed, or it sent nothing for
 * IMPORT_IDLE_MS, or it left this node's replies unread for STALLED_MS. A source killed while a
 * reply to it was being written can leave the connection paused (its replies unsent) and never
 * seen to close, so the last case is the one that notices a crash.
 */
const IMPORT_IDLE_MS = 60_000;
const STALLED_MS = 2000;
let watchdog: ReturnType<typeof setInterval> | null = null;

/** Checks every half second, while imports run, for sources that are gone; their imports are undone. */
function watchImports(cluster: Cluster): void {
  if (watchdog !== null) return;
  watchdog = setInterval(() => {
    const now = Date.now();
    for (const current of imports.values()) {
      const conn = current.conn;
      if (current.undoing) continue;
      const silent = now - conn.lastActive;
      if (conn.closed || silent > IMPORT_IDLE_MS || (conn.backlog !== null && silent > STALLED_MS)) {
        void undoImport(
          cluster,
          current,
          conn.closed ? "the source's connection closed" : `the source has been silent for ${Math.round(silent / 1000)} s`,
        );
        conn.socket.terminate();
      }
    }
    if (imports.size === 0 && watchdog !== null) {
      clearInterval(watchdog);
      watchdog = null;
    }
  }, 500);
  watchdog.unref();
}

function slotArg(a: ArgList, i: number): number {
  const slot = argInt(a, i);
  if (!(slot >= 0 && slot < SLOT_COUNT)) throw new CommandError(ClusterErrors.slotOutOfRange);
  return slot;
}

/**
 * A file path a migration may write: relative, inside the data directory once normalized, and
 * not one of the server's own files.
 */
function checkedPath(given: string): string {
  const normal = path.normalize(given);
  if (path.isAbsolute(normal) || normal === ".." || normal.startsWith("../") || normal === ".")
    throw new CommandError(MigrationErrors.outsideDataDir(given));
  if (
    normal.startsWith(REGISTRY_FILE) ||
    normal.startsWith(TOPOLOGY_FILE) ||
    normal.startsWith("cluster-migration.json") ||
    normal.startsWith(STAGING_DIR)
  ) {
    throw new CommandError(MigrationErrors.ownFile(given));
  }
  return normal;
}

/** The import of `slot` on `conn`, or the error that there is none. */
function importOn(conn: Connection, slot: number): Import {
  const current = imports.get(slot);
  if (current === undefined || current.conn !== conn || current.undoing) throw new CommandError(MigrationErrors.notImportingHere(slot));
  return current;
}

/** CLUSTERX IMPORT <slot> START <source-id> | SUCCESS | FAIL. */
export function importCommand(cluster: Cluster, conn: Connection, a: ArgList, w: ReplyWriter): void {
  const slot = slotArg(a, 2);
  if (argIs(a, 3, "start") && a.argc === 5) {
    const source = argString(a, 4);
    if (cluster.serves(slot)) throw new CommandError(MigrationErrors.alreadyServed(slot));
    const current = imports.get(slot);
    if (current !== undefined)
      throw new CommandError(current.undoing ? MigrationErrors.stillUndoing(slot) : MigrationErrors.alreadyImporting(slot));
    const journal = cluster.journal;
    cluster.writeJournal({ ...journal, importing: [...journal.importing.filter((e) => e.slot !== slot), { slot, source, placed: [] }] });
    imports.set(slot, { slot, source, conn, files: new Map(), undoing: false });
    cluster.importing.set(conn, slot);
    watchImports(cluster);
    cluster.import = { slot, state: "start" };
    log("notice", `Cluster: importing slot ${slot} from ${source}`);
    w.simple("OK");
    return;
  }
  if (argIs(a, 3, "success") && a.argc === 4) {
    const current = imports.get(slot);
    // Asked again (a source that lost the first answer): the slot is this node's already.
    if (current === undefined && cluster.serves(slot)) {
      w.simple("OK");
      return;
    }
    if (current === undefined || current.undoing) throw new CommandError(MigrationErrors.notImporting(slot));
    if (current.conn !== conn) throw new CommandError(MigrationErrors.importedElsewhere(slot));
    closeFiles(current);
    // The slot is this node's once this is durable; then the journal entry can go.
    cluster.slotMoved(slot, cluster.myId);
    cluster.writeJournal({ ...cluster.journal, importing: cluster.journal.importing.filter((e) => e.slot !== slot) });
    imports.delete(slot);
    cluster.importing.delete(conn);
    fs.rmSync(stagingDir(cluster.dataDir, slot), { recursive: true, force: true });
    cluster.import = { slot, state: "success" };
    log("notice", `Cluster: slot ${slot} imported from ${current.source}; this node serves it`);
    w.simple("OK");
    return;
  }
  if (argIs(a, 3, "fail") && a.argc === 4) {
    const current = importOn(conn, slot);
    void undoImport(cluster, current, "the source gave up");
    w.simple("OK");
    return;
  }
  throw new CommandError(MigrationErrors.invalidImportState);
}

/** CLUSTERX IMPORTFILE <slot> <path> SUMS|SIZE|WRITE|PLACE ... */
export function importFileCommand(cluster: Cluster, conn: Connection, a: ArgList, w: ReplyWriter): void {
  const current = importOn(conn, slotArg(a, 2));
  const relative = checkedPath(argString(a, 3));
  const staged = path.join(stagingDir(cluster.dataDir, current.slot), relative);
  const open = (): number => {
    let fd = current.files.get(relative);
    if (fd === undefined) {
      fs.mkdirSync(path.dirname(staged), { recursive: true });
      fd = fs.openSync(staged, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
      current.files.set(relative, fd);
    }
    return fd;
  };
  if (argIs(a, 4, "sums") && a.argc === 6) {
    const chunk = argInt(a, 5);
    if (!(chunk > 0)) throw new CommandError(MigrationErrors.chunkSize);
    if (!fs.existsSync(staged)) {
      w.array(1);
      w.integer(0);
      return;
    }
    const fd = open();
    const size = fs.fstatSync(fd).size;
    const count = Math.ceil(size / chunk);
    w.array(1 + count);
    w.integer(size);
    const buf = Buffer.allocUnsafe(chunk);
    for (let i = 0; i < count; i++) {
      const n = fs.readSync(fd, buf, 0, Math.min(chunk, size - i * chunk), i * chunk);
      w.integer(crc32(buf.subarray(0, n)));
    }
    return;
  }
  if (argIs(a, 4, "size") && a.argc === 6) {
    const size = argInt(a, 5);
    if (!(size >= 0)) throw new CommandError(MigrationErrors.size);
    fs.ftruncateSync(open(), size);
    w.simple("OK");
    return;
  }
  if (argIs(a, 4, "write") && a.argc === 8) {
    const offset = argInt(a, 5);
    const expected = argInt(a, 6);
    if (!(offset >= 0) || !(expected >= 0)) throw new CommandError(MigrationErrors.offsetOrChecksum);
    const bytes = argView(a, 7);
    if (crc32(bytes) !== expected) throw new CommandError(MigrationErrors.checksumMismatch(relative, offset));
    const fd = open();
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done, offset + done);
    w.simple("OK");
    return;
  }
  if (argIs(a, 4, "sync") && a.argc === 5) {
    fs.fsyncSync(open());
    w.simple("OK");
    return;
  }
  if (argIs(a, 4, "place") && a.argc === 5) {
    const target = path.join(cluster.dataDir, relative);
    if (fs.existsSync(target)) throw new CommandError(MigrationErrors.fileExists(relative));
    const fd = open();
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    current.files.delete(relative);
    // Recorded before the rename, so that a crash right after it still knows to undo it.
    const journal = cluster.journal;
    cluster.writeJournal({
      ...journal,
      importing: journal.importing.map((e) => (e.slot === current.slot ? { ...e, placed: [...e.placed, relative] } : e)),
    });
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.renameSync(staged, target);
    syncDir(path.dirname(target));
    w.simple("OK");
    return;
  }
  throw new CommandError(MigrationErrors.invalidImportFileOptions);
}

/** The importing connection closed: an import it had not finished is undone. */
export function importConnectionClosed(cluster: Cluster, conn: Connection): void {
  const slot = cluster.importing.get(conn);
  if (slot === undefined) return;
  const current = imports.get(slot);
  if (current !== undefined && current.conn === conn && !current.undoing)
    void undoImport(cluster, current, "the source's connection closed");
}

/** Unbinds the import's keys and puts its placed files back among the received bytes. */
async function undoImport(cluster: Cluster, current: Import, why: string): Promise<void> {
  current.undoing = true;
  cluster.importing.delete(current.conn);
  closeFiles(current);
  log("warning", `Cluster: import of slot ${current.slot} from ${current.source} failed (${why}); undoing it`);
  try {
    await cluster.host.unbind(cluster.keysInSlot(current.slot));
    const entry = cluster.journal.importing.find((e) => e.slot === current.slot);
    for (const placed of entry?.placed ?? []) unplace(cluster.dataDir, current.slot, placed);
    cluster.writeJournal({ ...cluster.journal, importing: cluster.journal.importing.filter((e) => e.slot !== current.slot) });
  } catch (e) {
    log("warning", `Cluster: undoing the import of slot ${current.slot}: ${(e as Error).message}; it is undone at the next start`);
  }
  cluster.import = { slot: current.slot, state: "error" };
  imports.delete(current.slot);
}

function closeFiles(current: Import): void {
  for (const fd of current.files.values()) fs.closeSync(fd);
  current.files.clear();
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
