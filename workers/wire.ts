/**
 * The record layouts on the rings between the main thread and a shard worker.
 *
 * Request payload (int32 words, then bytes):
 *   [0] connection id  [1] sequence number  [2] command id | protocol << 16 | flags << 24
 *   [3] argc  [4 .. 4+argc) argument lengths  then the argument bytes, back to back.
 * Reply payload:
 *   [0] connection id  [1] sequence number  [2] kind  then, for REPLY and PARTIAL, the RESP bytes.
 *   A streamed reply is PARTIAL records for one (connection, sequence number), ended by a REPLY
 *   (or an ABORT); other replies may come between them.
 */

import type { SigbusGuardHandle } from "../core/sigbus_guard.ts";

export const REQUEST_HEADER_WORDS = 4;
export const REPLY_HEADER_WORDS = 3;

/** Request flag: the record's arguments come by postMessage (too big for the ring). */
export const FLAG_OUT_OF_BAND = 1;

/** Reply kinds. */
export const KIND_REPLY = 0;
/** A catalog event (JSON bytes) the main thread applies to the bindings registry before later replies. */
export const KIND_EVENT = 1;
/** The reply comes by postMessage (too big for the ring); the record only keeps the order. */
export const KIND_OUT_OF_BAND = 2;
/** A slow-log entry for the command whose reply follows (see command_timing.ts); answers nothing. */
export const KIND_SLOW = 3;

/** A part of a reply that is streamed (see core/reply_stream.ts): the RESP bytes go out, the reply is not complete yet; its last part is a REPLY. */
export const KIND_PARTIAL = 4;
/** A streamed reply that cannot be finished (its file was resized outside mmapd): the client is dropped. The bytes are the reason. */
export const KIND_ABORT = 5;

/** Start-up data each shard worker receives. */
export interface ShardWorkerConfig {
  index: number;
  count: number;
  dataDir: string;
  allowAnyPath: boolean;
  fsync: FsyncPolicy;
  requests: SharedArrayBuffer;
  replies: SharedArrayBuffer;
  /** Where the worker counts its commands' time and errors (see command_timing.ts); kept across restarts. */
  timing: SharedArrayBuffer;
  /** The process's SIGBUS guard, installed by the main thread (null: files are mapped unguarded). */
  sigbusGuard: SigbusGuardHandle | null;
  /** Barrier words for transactions across shards, shared by every worker (core/commands/transaction.ts). */
  barriers: SharedArrayBuffer;
  /** Threads of the worker's pool for formatting big text replies (format_pool.ts); 0: none. */
  formatThreads: number;
}

export type FsyncPolicy = "always" | "everysec" | "no";

/** A message between the threads for what does not fit a ring. */
export type ShardMessage =
  | { type: "request"; bytes: Uint8Array } // worker-bound: an out-of-band request's whole payload
  | { type: "reply"; conn: number; seq: number; bytes: Uint8Array } // main-bound
  | { type: "fsync"; policy: FsyncPolicy } // worker-bound: CONFIG SET fsync
  | { type: "cancel"; conn: number } // worker-bound: the client is gone, stop its streamed replies
  | { type: "pace"; conn: number; hold: boolean } // worker-bound: the client's unsent replies passed the mark (hold) or drained
  | { type: "crash" } // worker-bound: throw an uncaught error (DEBUG CRASH-SHARD)
  | { type: "ready" }; // main-bound: the worker is running
