/**
 * A shard worker that dies (DEBUG CRASH-SHARD makes it throw from a timer) under load: the
 * commands it had in flight are answered with errors instead of hanging, the pool starts a new
 * worker that binds the shard's keys again (its files' locks released by the main thread), no
 * acknowledged write is lost, and the other shard's clients see nothing at all.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { call, ErrorReply, RespClient } from "../../bench/resp_client.ts";
import { shardOfKey, startServer } from "../helpers/server.ts";
import { checkKeys, KeyModel, KINDS, seededRandom, WriterClient } from "./workload.ts";

setDefaultTimeout(60_000);

const SHARDS = 2;

const shardOf = (key: string) => shardOfKey(key, SHARDS);

/** `count` keys of the given shard, each of another type. */
function keysOn(shard: number, count: number, prefix: string): KeyModel[] {
  const out: KeyModel[] = [];
  for (let i = 0; out.length < count; i++) {
    const key = `${prefix}${i}`;
    if (shardOf(key) !== shard) continue;
    const kind = KINDS[(out.length * 5 + shard) % KINDS.length];
    out.push(new KeyModel(key, kind, `${key}.${kind.type}`, true));
  }
  return out;
}

/** Resolves with `p`, or rejects after `ms`: a hang becomes a failure, not a stuck suite. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms))]);
}

describe("a shard worker dies under load", () => {
  for (const fsync of ["always", "everysec"]) {
    test(`fsync ${fsync}: in-flight commands get errors, the shard comes back with its bindings, nothing acknowledged is lost`, async () => {
      const server = await startServer({ args: ["--workers", String(SHARDS), "--enable-debug-command", "--fsync", fsync] });
      try {
        const crashed = keysOn(0, 4, "crash:");
        const bystanders = keysOn(1, 4, "calm:");
        const admin = await RespClient.connect(server.port);
        for (const m of [...crashed, ...bystanders]) {
          expect(await call(admin, ...m.mmapArgs())).toBe(0n);
          m.boundAt = -Infinity;
        }
        const restartError = /^ERR shard 0 restarted \(crash requested by DEBUG CRASH-SHARD\); command not executed or not acknowledged$/;
        const victims = [0, 1].map(
          (i) => new WriterClient(server.port, crashed.slice(2 * i, 2 * i + 2), [], seededRandom(70 + i), 32, restartError),
        );
        const calm = [0, 1].map((i) => new WriterClient(server.port, bystanders.slice(2 * i, 2 * i + 2), [], seededRandom(80 + i), 32));
        await Bun.sleep(300);
        const ackedBefore = victims.reduce((n, c) => n + c.acknowledged, 0);
        expect(await call(admin, "DEBUG", "CRASH-SHARD", "0")).toBe("OK");
        // Writes go on while the shard restarts, and after.
        await Bun.sleep(700);
        for (const c of [...victims, ...calm]) c.stop();
        await within(Promise.all([...victims, ...calm].map((c) => c.finished)), 15_000, "clients waiting for replies");

        for (const c of [...victims, ...calm]) {
          expect(c.errors).toEqual([]);
          // Every command got a reply: a success, or for the crashed shard the restart error.
          expect(c.acknowledged + c.tolerated).toBe(c.sent);
        }
        for (const c of calm) expect(c.tolerated).toBe(0);
        const ackedAfter = victims.reduce((n, c) => n + c.acknowledged, 0);
        const failedInFlight = victims.reduce((n, c) => n + c.tolerated, 0);

        const info = (await call(admin, "INFO")) as string;
        expect(info).toContain("shard_restarts:1\r\n");
        expect(info).toMatch(/shard0:alive=1,/);
        expect(info).toContain("bindings_failed:0\r\n");
        expect(server.output()).toMatch(/Shard 0 worker died \(crash requested by DEBUG CRASH-SHARD\); restarting it with its bindings/);
        expect(server.output()).not.toContain("not restored");
        // Bound again, writable (the dead worker's locks are gone), with every acknowledged write.
        const models = [...crashed, ...bystanders];
        const check = await checkKeys(server.port, models, Infinity);
        expect(check.failures).toEqual([]);
        expect(check.keys).toBe(8);
        // The new worker takes load on every key of the shard, with no error at all.
        const again = [0, 1].map((i) => new WriterClient(server.port, crashed.slice(2 * i, 2 * i + 2), [], seededRandom(90 + i), 32));
        await Bun.sleep(300);
        for (const c of again) c.stop();
        await within(Promise.all(again.map((c) => c.finished)), 15_000, "clients of the restarted shard");
        for (const c of again) expect(c.errors).toEqual([]);
        const ackedAgain = again.reduce((n, c) => n + c.acknowledged, 0);
        expect(ackedAgain).toBeGreaterThan(0);
        const recheck = await checkKeys(server.port, models, Infinity);
        expect(recheck.failures).toEqual([]);
        console.log(
          `fsync ${fsync}: shard 0 acknowledged ${ackedBefore} commands before the crash and ${ackedAfter - ackedBefore} after it, ${failedInFlight} in flight were answered with the restart error, then ${ackedAgain} more on the new worker; shard 1 acknowledged ${calm.reduce((n, c) => n + c.acknowledged, 0)}, none failed; ${check.ackedWritesChecked + recheck.ackedWritesChecked} acknowledged writes checked, 0 lost`,
        );
        // SAVE reaches the new worker too.
        expect(await call(admin, "SAVE")).toBe("OK");
        admin.close();
      } finally {
        await server.stop();
        server.cleanup();
      }
    });
  }

  test("a crash while the server's own requests are in flight: SAVE still answers", async () => {
    const server = await startServer({ args: ["--workers", String(SHARDS), "--enable-debug-command", "--fsync", "no"] });
    try {
      const c = await RespClient.connect(server.port);
      const [m] = keysOn(0, 1, "k");
      expect(await call(c, ...m.mmapArgs())).toBe(0n);
      // Pipelined: the crash and SAVE race on shard 0; whichever wins, SAVE gets an answer.
      const replies: unknown[] = [];
      for (let round = 0; round < 5; round++) {
        c.write(
          Buffer.concat([Buffer.from("*3\r\n$5\r\nDEBUG\r\n$11\r\nCRASH-SHARD\r\n$1\r\n0\r\n"), Buffer.from("*1\r\n$4\r\nSAVE\r\n")]),
        );
        const bytes = await within(c.readReplies(2), 15_000, "SAVE after a crash");
        replies.push(bytes.toString("latin1"));
        // Let the worker come back before the next round.
        for (
          let tries = 0;
          tries < 100 && !((await call(c, "INFO", "stats")) as string).includes(`shard_restarts:${round + 1}\r\n`);
          tries++
        )
          await Bun.sleep(20);
      }
      for (const r of replies) expect(r).toMatch(/^\+OK\r\n(\+OK|-ERR shard 0 restarted .*)\r\n$/);
      expect(await call(c, "VADD", m.key, m.kind.zero)).toBe(1n);
      expect(await call(c, "VGET", "nokey", "0")).toEqual(new ErrorReply("ERR You must do MMAP first"));
      c.close();
    } finally {
      await server.stop();
      server.cleanup();
    }
  });
});
