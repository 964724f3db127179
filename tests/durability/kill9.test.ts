/**
 * Crashes under load: clients write to keys of every type while the server is killed with
 * SIGKILL at a seeded random moment, then the server starts again on the same directory and
 * every acknowledged binding and write must be there (workload.ts holds the clients and the
 * check). Twenty rounds under `--fsync always` on one directory, so bindings also survive many
 * crashes in a row; two rounds under `everysec`.
 *
 * A SIGKILL loses the process, not the page cache: this proves that nothing acknowledged is
 * held only in memory of the process (the registry record is written and the values are in the
 * mapped file before the reply), across every moment a kill can land. What the fsync policy adds
 * against a power loss, the kernel's page cache hides from any test of this kind.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import { call, RespClient } from "../../bench/resp_client.ts";
import { startServer, tempDir, type TestServer, writeRawFile } from "../helpers/server.ts";
import { checkKeys, KeyModel, KINDS, seededRandom, WriterClient } from "./workload.ts";

setDefaultTimeout(90_000);

const CLIENTS = 3;

/** Binds the first keys of each client, and two read-only files with known contents. */
async function setUp(server: TestServer, r: () => number): Promise<{ models: KeyModel[]; perClient: KeyModel[][] }> {
  const perClient: KeyModel[][] = [];
  const models: KeyModel[] = [];
  const c = await RespClient.connect(server.port);
  try {
    for (let client = 0; client < CLIENTS; client++) {
      const keys: KeyModel[] = [];
      for (let k = 0; k < 3; k++) {
        const kind = KINDS[(client * 3 + k) % KINDS.length];
        const m = new KeyModel(`c${client}:${kind.type}:${k}`, kind, `c${client}-${k}.${kind.type}`, true);
        expect(await call(c, ...m.mmapArgs())).toBe(0n);
        m.boundAt = -Infinity;
        keys.push(m);
        models.push(m);
      }
      perClient.push(keys);
    }
    // Read-only bindings of files written outside mmapd: their mode must survive too.
    const readOnly: [string, (v: DataView, at: number, x: number) => void, number][] = [
      ["int32", (v, at, x) => v.setInt32(at, x, true), 4],
      ["double", (v, at, x) => v.setFloat64(at, x, true), 8],
    ];
    for (const [type, put, width] of readOnly) {
      const values = Array.from({ length: 50 }, () => Math.floor(r() * 2000) - 1000);
      writeRawFile(`${server.dir}/ro.${type}`, width, values, put);
      const m = new KeyModel(`ro:${type}`, KINDS.find((k) => k.type === type)!, `ro.${type}`, false);
      expect(await call(c, ...m.mmapArgs())).toBe(50n);
      m.boundAt = -Infinity;
      m.slots = values.map((v) => [{ value: String(v), ackedAt: -Infinity }]);
      models.push(m);
    }
  } finally {
    c.close();
  }
  return { models, perClient };
}

interface RoundsOutcome {
  rounds: number;
  ackedWritesChecked: number;
  lostAfterCutoff: number;
  acknowledged: number;
  keys: number;
}

/**
 * Runs `rounds` crash rounds on one directory: load for a seeded `loadMs`, SIGKILL, restart,
 * check. Writes acknowledged more than `graceMs` before the kill must be there (0: all).
 */
async function crashRounds(
  fsync: string,
  rounds: number,
  firstSeed: number,
  loadMs: [number, number],
  graceMs: number,
): Promise<RoundsOutcome> {
  const dir = tempDir("mmapd-kill9-");
  const args = ["--fsync", fsync, "--workers", "2"];
  const outcome: RoundsOutcome = { rounds: 0, ackedWritesChecked: 0, lostAfterCutoff: 0, acknowledged: 0, keys: 0 };
  let server = await startServer({ dir, args });
  try {
    const { models, perClient } = await setUp(server, seededRandom(firstSeed));
    for (let round = 0; round < rounds; round++) {
      const seed = firstSeed + round;
      const r = seededRandom(seed);
      const clients = perClient.map((keys, i) => {
        // Each round every client also binds a new key of its own, while it writes.
        const kind = KINDS[Math.floor(r() * KINDS.length)];
        const fresh = new KeyModel(`c${i}:r${round}:${kind.type}`, kind, `c${i}-r${round}.${kind.type}`, r() < 0.8);
        models.push(fresh);
        return new WriterClient(server.port, keys, fresh.writable ? [fresh] : [], seededRandom(seed * 31 + i));
      });
      // A read-only new key needs its file first; it is bound by a separate client call below.
      for (const m of models.filter((m) => !m.writable && m.boundAt === null)) {
        fs.writeFileSync(`${dir}/${m.path}`, new Uint8Array(0));
        const c = await RespClient.connect(server.port);
        expect(await call(c, ...m.mmapArgs())).toBe(0n);
        m.boundAt = performance.now();
        c.close();
      }
      await Bun.sleep(loadMs[0] + Math.floor(r() * (loadMs[1] - loadMs[0])));
      const killedAt = performance.now();
      await server.kill9();
      await Promise.all(clients.map((c) => c.finished));
      for (const c of clients) {
        expect(c.errors).toEqual([]);
        outcome.acknowledged += c.acknowledged;
      }
      server = await startServer({ dir, args });
      const check = await checkKeys(server.port, models, graceMs === 0 ? Infinity : killedAt - graceMs);
      expect({ round, seed, failures: check.failures }).toEqual({ round, seed, failures: [] });
      expect(server.output()).not.toContain("not restored");
      outcome.rounds++;
      outcome.ackedWritesChecked += check.ackedWritesChecked;
      outcome.lostAfterCutoff += check.lostAfterCutoff;
      outcome.keys = check.keys;
    }
    expect(await server.stop()).toBe(0);
  } finally {
    server.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return outcome;
}

describe("kill -9 under load", () => {
  test("fsync always: 20 rounds, every acknowledged binding and write is back after each", async () => {
    const outcome = await crashRounds("always", 20, 1000, [250, 900], 0);
    console.log(
      `fsync always: ${outcome.rounds} crash rounds, ${outcome.keys} keys, ${outcome.acknowledged} acknowledged commands, ${outcome.ackedWritesChecked} acknowledged writes checked, 0 lost`,
    );
    expect(outcome.rounds).toBe(20);
    expect(outcome.ackedWritesChecked).toBeGreaterThan(1000);
    expect(outcome.lostAfterCutoff).toBe(0);
  });

  test("fsync everysec: 2 rounds, bindings intact and writes older than 2 s all there", async () => {
    const outcome = await crashRounds("everysec", 2, 5000, [2500, 3000], 2000);
    console.log(
      `fsync everysec: ${outcome.rounds} crash rounds, ${outcome.ackedWritesChecked} acknowledged writes checked, ${outcome.lostAfterCutoff} acknowledged in the last 2 s lost`,
    );
    expect(outcome.rounds).toBe(2);
    expect(outcome.ackedWritesChecked).toBeGreaterThan(1000);
  });
});
