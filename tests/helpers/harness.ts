/**
 * The command families' harness, after Dragonfly's family tests: a Shard on a temporary data
 * directory, on the main thread, no server process. `run(["vget", "k", "0"])` finds the command
 * in the shard command table, checks its arity as dispatch does, runs it against a ReplyWriter
 * in RESP2 (or RESP3) and returns the reply bytes as a latin1 string (one char per byte).
 *
 * Routing, pipelines and everything else between the socket and the shard are the server's:
 * tests/server/ starts a real process for those.
 */
import { afterAll } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Args } from "../../core/args.ts";
import { SHARD_COMMAND_INDEX } from "../../core/commands.ts";
import { Errors } from "../../core/errors.ts";
import { Shard, type ShardOptions } from "../../core/shard.ts";
import { ReplyWriter } from "../../protocol/reply_writer.ts";

export interface Harness {
  /** The shard's data directory (its real path). */
  dir: string;
  shard: Shard;
  /** Runs one command; its reply as latin1 text, in RESP2 unless `proto` is 3. */
  run(args: (string | Uint8Array)[], proto?: 2 | 3): string;
  /** The absolute path of `name` in the data directory. */
  file(name: string): string;
}

/**
 * A shard (index 0 of 1 unless told) on a fresh temporary directory; both are closed and removed
 * after the test file (afterAll).
 */
export function shardHarness(options: Partial<Pick<ShardOptions, "index" | "count" | "allowAnyPath" | "barriers">> = {}): Harness {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "mmapd-harness-")));
  const shard = new Shard({ dataDir: dir, allowAnyPath: false, index: 0, count: 1, ...options });
  afterAll(() => {
    shard.closeAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const writer = new ReplyWriter();
  return {
    dir,
    shard,
    file: (name) => path.join(dir, name),
    run(args, proto = 2) {
      const a = Args.of(...args);
      const command = SHARD_COMMAND_INDEX.find(a, 0);
      if (command === undefined) throw new Error(`no shard command '${args[0]}'`);
      writer.reset();
      writer.proto = proto;
      if (command.arity > 0 ? a.argc !== command.arity : a.argc < -command.arity) writer.error(Errors.wrongArity(command.name));
      else shard.execute(command, a, writer);
      return Buffer.from(writer.buf.buffer, writer.buf.byteOffset, writer.length).toString("latin1");
    },
  };
}

/** The bytes of `s` in UTF-8, as latin1 text: how a reply carrying `s` reads in `run`'s result. */
export const latin1 = (s: string): string => Buffer.from(s, "utf8").toString("latin1");
/** An integer reply. */
export const int = (n: number | bigint | string): string => `:${n}\r\n`;
/** A bulk string reply carrying `s` (in UTF-8). */
export const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${latin1(s)}\r\n`;
/** An error reply. */
export const err = (message: string): string => `-${message}\r\n`;
/** The nil reply in each protocol. */
export const nil = (proto: 2 | 3): string => (proto === 3 ? "_\r\n" : "$-1\r\n");
