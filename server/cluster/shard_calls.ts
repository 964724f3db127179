/**
 * Shard commands the server sends for itself, not for a client (a slot migration unbinds the
 * keys it moved away): sent on connection 0 with sequence numbers of their own, each answered
 * through a promise.
 */
import type { ArgList } from "../../core/args.ts";
import { SHARD_COMMAND_INDEX, shardCommandId } from "../../core/commands.ts";
import { argShard } from "../../core/slots.ts";
import type { ShardPool } from "../../workers/shard_pool.ts";

/** The first sequence number of these calls: far above those of the server's restores and flushes. */
const FIRST_SEQ = 1 << 30;

export class ShardCalls {
  private nextSeq = FIRST_SEQ;
  private readonly waiting = new Map<number, (reply: string) => void>();

  constructor(
    private readonly pool: ShardPool,
    private readonly workers: number,
  ) {}

  /** True when a reply on connection 0 with `seq` answers one of these calls. */
  owns(seq: number): boolean {
    return seq >= FIRST_SEQ;
  }

  /** A shard's reply to call `seq`. */
  take(seq: number, reply: string): void {
    const resolve = this.waiting.get(seq);
    this.waiting.delete(seq);
    resolve?.(reply);
  }

  /** Runs `args` (a shard command with its key in argument 1) on the key's shard; resolves with the reply's RESP text. */
  run(args: ArgList): Promise<string> {
    const command = SHARD_COMMAND_INDEX.find(args, 0)!;
    const seq = this.nextSeq++;
    const reply = new Promise<string>((resolve) => this.waiting.set(seq, resolve));
    this.pool.send(argShard(args, 1, this.workers), 0, seq, 2, shardCommandId.get(command)!, args, null);
    this.pool.publishAll();
    return reply;
  }
}
