/**
 * The source's side of `CLUSTERX MIGRATE <slot> <target-id>`: every binding of the slot moves to
 * the target with its file's bytes, over the target's RESP port (import.ts is the other side).
 *
 *  1. Copy rounds, while clients go on reading and writing the slot here: each file is compared
 *     chunk by chunk (crc32) with what the target holds, and the chunks that differ are sent;
 *     the first round sends everything the target does not have yet (a failed attempt's bytes
 *     stay there, so a retry resumes). Rounds repeat until one finds little left to send; the
 *     target then syncs what it received.
 *  2. The final window: writes to the slot answer TRYAGAIN (reads go on), the shards finish the
 *     writes already sent, and one more round sends the last changes; the target places the
 *     files and binds the keys with the same type and mode.
 *  3. The hand-over: the source records that it asked (cluster-migration.json), the target makes
 *     the slot its own durably and confirms, the source records the slot as moved, answers MOVED
 *     from then on, and unbinds its keys (their files stay: nothing is deleted).
 *
 * A failure before the hand-over leaves the slot here and nothing bound on the target. If the
 * target's answer to the hand-over is lost (a crash, a cut connection), the slot's writes keep
 * answering TRYAGAIN until the target can say whether it took the slot, asked again every second
 * (also after a restart of this node), so the slot never has two owners.
 */
import fs from "node:fs";
import path from "node:path";
import { CommandError, MigrationErrors } from "../../core/errors.ts";
import type { BindingRecord } from "../../core/registry.ts";
import { log } from "../log.ts";
import type { Cluster } from "./cluster.ts";
import { Peer, PeerError } from "./peer.ts";
import { crc32, keySlot } from "./slot_files.ts";

/** Bytes per chunk sent. */
const CHUNK = 1024 * 1024;
/** Chunks sent before their acknowledgements are awaited. */
const CHUNKS_IN_FLIGHT = 8;
/** A copy round that sends less than this is followed by the final window. */
const CONVERGED_BYTES = 4 * CHUNK;
/** Copy rounds before the final window at the latest. */
const MAX_ROUNDS = 5;
/** How often a lost hand-over answer is asked for again. */
const RESOLVE_EVERY_MS = 1000;

/** What a migration measured (logged, and returned to a SYNC caller). */
export interface MigrationFigures {
  bytesSent: number;
  files: number;
  keys: number;
  totalMs: number;
  /** How long writes to the slot answered TRYAGAIN. */
  windowMs: number;
  /** How long reads did too: the hand-over's one round trip. */
  handOverMs: number;
}

/** Kvrocks's checks of CLUSTERX MIGRATE, then the migration, run in the background. */
export function startMigration(cluster: Cluster, slot: number, targetId: string): Promise<MigrationFigures> {
  const target = cluster.node(targetId);
  if (target === undefined) throw new CommandError(MigrationErrors.noSuchTarget);
  if (!cluster.serves(slot)) throw new CommandError(MigrationErrors.notMySlot);
  if (targetId === cluster.myId) throw new CommandError(MigrationErrors.toMyself);
  if (cluster.migration?.state === "start" || cluster.writeForbidden >= 0) throw new CommandError(MigrationErrors.alreadyMigrating);
  cluster.migration = { slot, target: targetId, state: "start", error: "" };
  log("notice", `Cluster: migrating slot ${slot} to ${targetId} at ${target.host}:${target.port}`);
  return migrate(cluster, slot, targetId, target.host, target.port).then(
    (figures) => {
      cluster.migration = { slot, target: targetId, state: "success", error: "" };
      const mb = figures.bytesSent / 1e6;
      log(
        "notice",
        `Cluster: slot ${slot} migrated to ${targetId}: ${figures.keys} keys, ${figures.files} files, ${mb.toFixed(1)} MB sent in ${figures.totalMs.toFixed(0)} ms; writes waited ${figures.windowMs.toFixed(1)} ms, reads ${figures.handOverMs.toFixed(1)} ms`,
      );
      return figures;
    },
    (e: unknown) => {
      const message = e instanceof Error ? e.message : String(e);
      cluster.migration = { slot, target: targetId, state: "fail", error: message };
      log("warning", `Cluster: migrating slot ${slot} to ${targetId} failed: ${message}`);
      throw e;
    },
  );
}

/** The bindings of `slot`, checked movable: a relative path whose file is here. */
function slotBindings(cluster: Cluster, slot: number): BindingRecord[] {
  const out: BindingRecord[] = [];
  for (const b of cluster.host.bindings().values()) {
    if (keySlot(b.key) !== slot) continue;
    const key = Buffer.from(b.key, "latin1").toString("utf8");
    if (path.isAbsolute(b.path)) throw new CommandError(MigrationErrors.absolutePath(key));
    if (!fs.existsSync(path.join(cluster.dataDir, b.path))) throw new CommandError(MigrationErrors.fileMissing(key));
    out.push(b);
  }
  return out;
}

/** What the target holds of one file: its size and the crc32 of each chunk. */
interface Remote {
  size: number;
  sums: number[];
}

async function migrate(cluster: Cluster, slot: number, targetId: string, host: string, port: number): Promise<MigrationFigures> {
  const started = performance.now();
  const peer = await Peer.connect(host, port);
  const remote = new Map<string, Remote>();
  let bytesSent = 0;
  let handedOver = false;
  try {
    if (cluster.config.requirepass !== "") await peer.call("AUTH", cluster.config.requirepass);
    await peer.call("CLUSTERX", "IMPORT", slot, "START", cluster.myId);
    /** Sends what differs of every file of the slot; the bytes sent. */
    const round = async (bindings: BindingRecord[]): Promise<number> => {
      let sent = 0;
      for (const file of new Set(bindings.map((b) => b.path))) sent += await sendFile(cluster, peer, slot, file, remote);
      return sent;
    };
    for (let r = 0; r < MAX_ROUNDS; r++) {
      const sent = await round(slotBindings(cluster, slot));
      bytesSent += sent;
      if (r > 0 && sent < CONVERGED_BYTES) break;
    }
    // The target syncs what it has now, so that placing the files in the window syncs little.
    for (const file of remote.keys()) await peer.call("CLUSTERX", "IMPORTFILE", slot, file, "SYNC");
    // The final window: no write to the slot starts; those already sent finish first.
    cluster.writeForbidden = slot;
    const windowStart = performance.now();
    await cluster.host.drain();
    const bindings = slotBindings(cluster, slot);
    bytesSent += await round(bindings);
    const files = [...new Set(bindings.map((b) => b.path))];
    for (const file of files) await peer.call("CLUSTERX", "IMPORTFILE", slot, file, "PLACE");
    for (const b of bindings) {
      const key = Buffer.from(b.key, "latin1");
      const args: (string | Uint8Array)[] = ["MMAP", key, b.path, b.type, String(b.size)];
      if (b.writable) args.push("WRITABLE");
      const count = await peer.call(...args);
      const expected = fs.statSync(path.join(cluster.dataDir, b.path)).size / b.size;
      if (count !== expected) throw new CommandError(MigrationErrors.countDiffers(b.path, count, expected));
    }
    // The hand-over. From here on an unclear answer must be resolved, never guessed, and no
    // command on the slot runs here: the target may take it over any moment now.
    cluster.writeJournal({ ...cluster.journal, committing: { slot, target: targetId } });
    cluster.handingOver = slot;
    const handOverStart = performance.now();
    handedOver = true;
    await peer.call("CLUSTERX", "IMPORT", slot, "SUCCESS");
    const moved = finishHandOver(cluster, slot, targetId);
    const windowMs = performance.now() - windowStart;
    const handOverMs = performance.now() - handOverStart;
    await moved;
    return { bytesSent, files: files.length, keys: bindings.length, totalMs: performance.now() - started, windowMs, handOverMs };
  } catch (e) {
    if (handedOver && !(e instanceof PeerError)) {
      // The target may or may not have taken the slot: ask until it says.
      void resolveHandOver(cluster);
      throw new Error(`the target's answer to the hand-over was lost (${(e as Error).message}); the slot's writes wait until it is known`);
    }
    if (handedOver) {
      // The target refused the hand-over: the slot stays here.
      cluster.writeJournal({ ...cluster.journal, committing: null });
    }
    cluster.writeForbidden = cluster.handingOver = -1;
    await peer.call("CLUSTERX", "IMPORT", slot, "FAIL").catch(() => {});
    throw e;
  } finally {
    peer.close();
  }
}

/**
 * The target took the slot: record it and answer MOVED from now on (done when this returns), then
 * unbind the slot's keys here (done when the promise resolves).
 */
function finishHandOver(cluster: Cluster, slot: number, targetId: string): Promise<void> {
  cluster.slotMoved(slot, targetId);
  cluster.writeJournal({ ...cluster.journal, committing: null });
  cluster.writeForbidden = cluster.handingOver = -1;
  return cluster.host.unbind(cluster.keysInSlot(slot));
}

/**
 * Asks the target, until it answers, whether it took the slot whose hand-over this node asked
 * for (the journal says which): yes finishes the migration, no gives the slot back to this node.
 * Called after a lost answer and at start.
 */
export async function resolveHandOver(cluster: Cluster): Promise<void> {
  for (;;) {
    const committing = cluster.journal.committing;
    if (committing === null) return;
    const target = cluster.node(committing.target);
    if (target === undefined) {
      // The controller's topology no longer has the target: the slot is the controller's to place.
      cluster.writeJournal({ ...cluster.journal, committing: null });
      cluster.writeForbidden = cluster.handingOver = -1;
      return;
    }
    try {
      const peer = await Peer.connect(target.host, target.port);
      try {
        if (cluster.config.requirepass !== "") await peer.call("AUTH", cluster.config.requirepass);
        await peer.call("CLUSTERX", "IMPORT", committing.slot, "SUCCESS");
        log("notice", `Cluster: ${committing.target} confirms it took slot ${committing.slot}`);
        await finishHandOver(cluster, committing.slot, committing.target);
        cluster.migration = { slot: committing.slot, target: committing.target, state: "success", error: "" };
      } catch (e) {
        if (!(e instanceof PeerError)) throw e;
        log("warning", `Cluster: ${committing.target} did not take slot ${committing.slot} (${e.message}); this node keeps it`);
        cluster.writeJournal({ ...cluster.journal, committing: null });
        cluster.writeForbidden = cluster.handingOver = -1;
        cluster.migration = { slot: committing.slot, target: committing.target, state: "fail", error: e.message };
      } finally {
        peer.close();
      }
      return;
    } catch {
      await Bun.sleep(RESOLVE_EVERY_MS);
    }
  }
}

/**
 * Brings the target's copy of `file` up to date: its size, then every chunk whose crc32 differs
 * from what the target holds (asked once per migration, then tracked). Returns the bytes sent.
 */
async function sendFile(cluster: Cluster, peer: Peer, slot: number, file: string, remote: Map<string, Remote>): Promise<number> {
  let known = remote.get(file);
  if (known === undefined) {
    const reply = (await peer.call("CLUSTERX", "IMPORTFILE", slot, file, "SUMS", CHUNK)) as number[];
    known = { size: reply[0], sums: reply.slice(1) };
    remote.set(file, known);
  }
  const fd = fs.openSync(path.join(cluster.dataDir, file), "r");
  try {
    const size = fs.fstatSync(fd).size;
    if (size !== known.size) {
      await peer.call("CLUSTERX", "IMPORTFILE", slot, file, "SIZE", size);
      // The chunk that held the old end, and any after it, no longer match what was known.
      known.sums.length = Math.min(known.sums.length, Math.floor(Math.min(size, known.size) / CHUNK));
      known.size = size;
    }
    let sent = 0;
    const inFlight: Promise<unknown>[] = [];
    const bytes = Buffer.allocUnsafe(CHUNK);
    for (let offset = 0; offset < size; offset += CHUNK) {
      const n = fs.readSync(fd, bytes, 0, Math.min(CHUNK, size - offset), offset);
      const chunk = bytes.subarray(0, n);
      const sum = crc32(chunk);
      const index = offset / CHUNK;
      if (known.sums[index] === sum) continue;
      known.sums[index] = sum;
      // A copy: the socket may keep what it could not write yet, and the buffer is read into again.
      inFlight.push(peer.call("CLUSTERX", "IMPORTFILE", slot, file, "WRITE", offset, sum, Buffer.from(chunk)));
      sent += n;
      if (inFlight.length >= CHUNKS_IN_FLIGHT) await Promise.all(inFlight.splice(0));
    }
    await Promise.all(inFlight);
    return sent;
  } finally {
    fs.closeSync(fd);
  }
}
