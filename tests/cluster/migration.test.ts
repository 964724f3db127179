/**
 * CLUSTERX MIGRATE: a slot's bindings move to another node with their files' bytes. Checked: the
 * files arrive byte-identical and are bound with the same type and mode; under an ioredis
 * read/write loop every acknowledged write is on the target afterwards and clients follow MOVED;
 * a refused migration leaves the source owning the slot and nothing bound on the target, and a
 * retry resumes from the bytes already sent; kill -9 of the target or the source mid-transfer,
 * and a crash that loses the hand-over's answer, leave exactly one owner.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { ErrorReply, RespClient } from "../../bench/resp_client.ts";
import { hashSlot } from "../../core/slots.ts";
import { CLUSTER_NODE_ARGS, type TestCluster, startCluster } from "../helpers/cluster.ts";
import { startServer } from "../helpers/server.ts";

setDefaultTimeout(120_000);

const slotOf = (key: string) => {
  const b = Buffer.from(key);
  return hashSlot(b, 0, b.length);
};

/** Sends a command; its reply, an error reply as its message text. */
async function send(port: number, ...args: string[]): Promise<unknown> {
  const c = await RespClient.connect(port);
  try {
    const reply = await c.command(...args);
    return reply instanceof ErrorReply ? reply.message : reply;
  } finally {
    c.close();
  }
}

/** CLUSTER INFO's fields, Kvrocks's `name: value` lines included. */
async function clusterInfo(port: number): Promise<Record<string, string>> {
  const text = String(await send(port, "CLUSTER", "INFO"));
  return Object.fromEntries(
    text
      .split("\r\n")
      .filter((l) => l !== "")
      .map((l) => l.split(/: ?/, 2) as [string, string]),
  );
}

const crcOf = (file: string) => Bun.hash.crc32(fs.readFileSync(file)) >>> 0;

/** Doubles 0, 1, 2, ... as a file's bytes. */
function doubles(count: number): Uint8Array {
  return new Uint8Array(new Float64Array(count).map((_, i) => i).buffer);
}

let cluster: TestCluster;
/** The node that serves `slot` now, and the other one. */
const nodesFor = (slot: number) => {
  const source = cluster.ownerOf(slot);
  return { source, target: cluster.nodes.find((n) => n !== source)! };
};

beforeAll(async () => {
  cluster = await startCluster(2);
});

afterAll(async () => {
  await cluster.stop();
});

/** Polls until `check` holds (or fails after 30 s). */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const logs = cluster.nodes.map((n) => `node ${n.server.port}:\n${n.server.output().split("\n").slice(-15).join("\n")}`);
      throw new Error(`timed out waiting for ${what}\n${logs.join("\n")}`);
    }
    await Bun.sleep(20);
  }
}

describe("CLUSTERX MIGRATE", () => {
  test("argument rules and refusals, with Kvrocks's texts", async () => {
    const { source, target } = nodesFor(slotOf("{a}"));
    const p = source.server.port;
    const slot = String(slotOf("{a}"));
    expect(await send(p, "CLUSTERX", "MIGRATE", slot)).toBe("ERR wrong number of arguments");
    expect(await send(p, "CLUSTERX", "MIGRATE", slot, target.id, "SYNC", "1", "2")).toBe("ERR wrong number of arguments");
    expect(await send(p, "CLUSTERX", "MIGRATE", "x", target.id)).toBe("ERR value is not an integer or out of range");
    expect(await send(p, "CLUSTERX", "MIGRATE", slot, target.id, "LATER")).toBe("ERR Invalid sync flag");
    expect(await send(p, "CLUSTERX", "MIGRATE", slot, target.id, "ASYNC", "5")).toBe("ERR Async migration does not support timeout");
    expect(await send(p, "CLUSTERX", "MIGRATE", slot, target.id, "SYNC", "-1")).toBe("ERR timeout is negative");
    expect(await send(p, "CLUSTERX", "MIGRATE", slot, "f".repeat(40))).toBe("ERR Can't find the destination node id");
    expect(await send(p, "CLUSTERX", "MIGRATE", "16384", target.id)).toBe("ERR Slot is out of range");
    expect(await send(p, "CLUSTERX", "MIGRATE", slot, source.id)).toBe("ERR Can't migrate slot to myself");
    expect(await send(target.server.port, "CLUSTERX", "MIGRATE", slot, source.id)).toBe(
      "ERR Can't migrate slot which doesn't belong to me",
    );
  });

  test("the files arrive byte-identical and are bound with the same type and mode; the source answers MOVED and keeps its files", async () => {
    const slot = slotOf("{b}");
    const { source, target } = nodesFor(slot);
    fs.writeFileSync(path.join(source.server.dir, "b-ro.f64"), doubles(300_000));
    expect(await send(source.server.port, "MMAP", "{b}ro", "b-ro.f64", "double")).toBe(300_000);
    expect(await send(source.server.port, "MMAP", "{b}names", "b-names.bin", "string", "8", "WRITABLE")).toBe(0);
    expect(await send(source.server.port, "VADD", "{b}names", "alpha", "beta")).toBe(2);
    expect(await send(source.server.port, "MMAP", "{b}other", "b-ro.f64", "double")).toBe(300_000);
    expect(await send(source.server.port, "CLUSTERX", "MIGRATE", String(slot), target.id, "SYNC")).toBe("OK");
    for (const file of ["b-ro.f64", "b-names.bin"])
      expect(crcOf(path.join(target.server.dir, file))).toBe(crcOf(path.join(source.server.dir, file)));
    expect(await send(target.server.port, "VINFO", "{b}names")).toEqual([
      "path",
      "b-names.bin",
      "type",
      "string",
      "size",
      8,
      "count",
      2,
      "writable",
      1,
      "bytes",
      16,
      "shard",
      0,
    ]);
    expect(await send(target.server.port, "VTYPE", "{b}ro")).toBe("double");
    expect(await send(target.server.port, "VSET", "{b}ro", "0", "1")).toBe("ERR The file is not writable");
    expect(await send(target.server.port, "VGET", "{b}other", "299999")).toBe("299999");
    expect(await send(source.server.port, "VGET", "{b}ro", "0")).toBe(`MOVED ${slot} 127.0.0.1:${target.server.port}`);
    expect(await send(source.server.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot))).toBe(0);
    expect(fs.existsSync(path.join(source.server.dir, "b-ro.f64"))).toBe(true);
    expect(fs.existsSync(path.join(target.server.dir, ".mmapd-import", String(slot)))).toBe(false);
    expect((await clusterInfo(source.server.port)).migrating_state).toBe("success");
    expect((await clusterInfo(target.server.port)).import_state).toBe("success");
    // Both nodes now tell clients where the slot is; the version is still the controller's.
    expect(await send(source.server.port, "CLUSTERX", "VERSION")).toBe("1");
    const slots = (await send(source.server.port, "CLUSTER", "SLOTS")) as [number, number, unknown[]][];
    expect(slots.find(([s, e]) => slot >= s && slot <= e)![2][1]).toBe(target.server.port);
  });

  test("under an ioredis read/write loop: every acknowledged write is on the target, clients follow MOVED", async () => {
    const key = "{load}series";
    const slot = slotOf(key);
    const { source, target } = nodesFor(slot);
    const count = 1_000_000;
    fs.writeFileSync(path.join(source.server.dir, "load.f64"), doubles(count));
    expect(await send(source.server.port, "MMAP", key, "load.f64")).toBe(count);
    const client = new Redis.Cluster([{ host: "127.0.0.1", port: source.server.port }], { retryDelayOnTryAgain: 5 });
    const model = new Float64Array(count).map((_, i) => i);
    let stop = false;
    let acknowledged = 0;
    let errors = 0;
    let readsChecked = 0;
    const workers = 4;
    const loop = async (w: number) => {
      for (let round = 1; !stop; round++) {
        const index = (w + round * 7919 * workers) % count;
        const value = round * 10 + w;
        try {
          expect(await client.call("VSET", key, String(index), String(value))).toBe(1);
          model[index] = value;
          acknowledged++;
          expect(Number(await client.call("VGET", key, String(index)))).toBe(value);
          readsChecked++;
        } catch (e) {
          errors++;
          throw e;
        }
      }
    };
    try {
      const running = Array.from({ length: workers }, (_, w) => loop(w));
      await until(async () => acknowledged > 200, "writes before the migration");
      const started = performance.now();
      expect(await send(source.server.port, "CLUSTERX", "MIGRATE", String(slot), target.id, "SYNC")).toBe("OK");
      const took = performance.now() - started;
      const before = acknowledged;
      await until(async () => acknowledged > before + 200, "writes after the migration");
      stop = true;
      await Promise.all(running);
      expect(errors).toBe(0);
      expect(readsChecked).toBeGreaterThan(400);
      // Every acknowledged write, and nothing else, is in the target's file.
      expect(Buffer.from(fs.readFileSync(path.join(target.server.dir, "load.f64"))).equals(Buffer.from(model.buffer))).toBe(true);
      const line = /writes waited ([0-9.]+) ms, reads ([0-9.]+) ms/.exec(source.server.output())!;
      console.log(`migrated 8 MB under load in ${took.toFixed(0)} ms; TRYAGAIN for writes ${line[1]} ms, for reads ${line[2]} ms`);
    } finally {
      stop = true;
      client.disconnect();
    }
  });

  test("a refused migration leaves the slot with the source and nothing bound on the target; the retry resumes", async () => {
    const key = "{c}data";
    const slot = slotOf(key);
    const { source, target } = nodesFor(slot);
    fs.writeFileSync(path.join(source.server.dir, "c.f64"), doubles(2_000_000));
    expect(await send(source.server.port, "MMAP", key, "c.f64", "double", "WRITABLE")).toBe(2_000_000);
    expect(await send(source.server.port, "MMAP", "{c}second", "c2.f64")).toBe(0);
    // A file of the same name on the target: the migration must not overwrite it.
    fs.writeFileSync(path.join(target.server.dir, "c.f64"), "mine");
    const refused = String(await send(source.server.port, "CLUSTERX", "MIGRATE", String(slot), target.id, "SYNC"));
    expect(refused).toContain("'c.f64' already exists on this node");
    expect((await clusterInfo(source.server.port)).migrating_state).toBe("fail");
    await until(async () => (await clusterInfo(target.server.port)).import_state === "error", "the target to undo the import");
    expect(await send(source.server.port, "VGET", key, "1999999")).toBe("1999999");
    expect(await send(source.server.port, "VSET", key, "0", "-1")).toBe(1);
    expect(await send(target.server.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot))).toBe(0);
    expect(await send(target.server.port, "VGET", key, "0")).toBe(`MOVED ${slot} 127.0.0.1:${source.server.port}`);
    expect(fs.readFileSync(path.join(target.server.dir, "c.f64"), "utf8")).toBe("mine");
    fs.rmSync(path.join(target.server.dir, "c.f64"));
    const sentBefore = [...source.server.output().matchAll(/ ([0-9.]+) MB sent/g)].length;
    expect(await send(source.server.port, "CLUSTERX", "MIGRATE", String(slot), target.id, "SYNC")).toBe("OK");
    // The 16 MB were on the target already: the retry sent about one changed chunk.
    const sent = [...source.server.output().matchAll(/ ([0-9.]+) MB sent/g)].map((m) => Number(m[1]));
    expect(sent.length).toBe(sentBefore + 1);
    expect(sent.at(-1)!).toBeLessThan(2);
    expect(await send(target.server.port, "VGET", key, "0")).toBe("-1");
    expect(await send(target.server.port, "EXISTS", "{c}second")).toBe(1);
  });
});

describe("crashes during a migration leave exactly one owner", () => {
  /** Who answers for `key`: the node that serves it, and what the other one says. */
  async function owners(key: string): Promise<number[]> {
    const out: number[] = [];
    for (const node of cluster.nodes) {
      const reply = await send(node.server.port, "VCOUNT", key);
      if (typeof reply === "number") out.push(node.server.port);
      else expect(String(reply)).toMatch(/^MOVED /);
    }
    return out;
  }

  /** Binds a 256 MB sparse file under `key` on its node and starts migrating its slot (ASYNC). */
  async function startBigMigration(key: string, file: string) {
    const slot = slotOf(key);
    const { source, target } = nodesFor(slot);
    fs.writeFileSync(path.join(source.server.dir, file), "");
    fs.truncateSync(path.join(source.server.dir, file), 256 << 20);
    expect(await send(source.server.port, "MMAP", key, file, "double", "WRITABLE")).toBe(32 << 20);
    expect(await send(source.server.port, "CLUSTERX", "MIGRATE", String(slot), target.id)).toBe("OK");
    const staged = path.join(target.server.dir, ".mmapd-import", String(slot), file);
    await until(async () => fs.existsSync(staged) && fs.statSync(staged).size > 0, "the transfer to start");
    return { slot, source, target };
  }

  test("kill -9 of the target mid-transfer: the source keeps the slot; the restarted target has nothing bound", async () => {
    const key = "{d}big";
    const { slot, source, target } = await startBigMigration(key, "d.f64");
    await target.server.kill9();
    await until(async () => (await clusterInfo(source.server.port)).migrating_state === "fail", "the source to see the failure");
    expect(await send(source.server.port, "VSET", key, "5", "5")).toBe(1);
    target.server = await startServer({ dir: target.server.dir, port: target.server.port, args: CLUSTER_NODE_ARGS });
    expect(target.server.output()).toContain(`the import of slot ${slot}`);
    expect(await send(target.server.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot))).toBe(0);
    expect(await owners(key)).toEqual([source.server.port]);
  });

  test("kill -9 of the source mid-transfer: the restarted source keeps the slot; the target undid the import", async () => {
    const key = "{e}big";
    const { slot, source, target } = await startBigMigration(key, "e.f64");
    await source.server.kill9();
    await until(async () => (await clusterInfo(target.server.port)).import_state === "error", "the target to undo the import");
    expect(await send(target.server.port, "CLUSTER", "COUNTKEYSINSLOT", String(slot))).toBe(0);
    source.server = await startServer({ dir: source.server.dir, port: source.server.port, args: CLUSTER_NODE_ARGS });
    expect(await send(source.server.port, "VCOUNT", key)).toBe(32 << 20);
    expect(await owners(key)).toEqual([source.server.port]);
  });

  test("a hand-over whose answer was lost is settled with the target at the next start, both ways", async () => {
    // Taken: the target made the slot its own, but the source crashed before it recorded that.
    const key = "{f}x";
    const slot = slotOf(key);
    const { source, target } = nodesFor(slot);
    expect(await send(source.server.port, "MMAP", key, "f.f64")).toBe(0);
    expect(await send(source.server.port, "CLUSTERX", "MIGRATE", String(slot), target.id, "SYNC")).toBe("OK");
    await source.server.stop();
    const conf = path.join(source.server.dir, "cluster-nodes.conf");
    fs.writeFileSync(conf, fs.readFileSync(conf, "utf8").replace(`moved ${slot} ${target.id}\n`, ""));
    const journal = path.join(source.server.dir, "cluster-migration.json");
    fs.writeFileSync(journal, JSON.stringify({ importing: [], committing: { slot, target: target.id } }));
    source.server = await startServer({ dir: source.server.dir, port: source.server.port, args: CLUSTER_NODE_ARGS });
    await until(async () => String(await send(source.server.port, "VCOUNT", key)).startsWith("MOVED"), "the source to hand the slot over");
    expect(await owners(key)).toEqual([target.server.port]);
    // Not taken: the source asked, the target never imported the slot; the source keeps it.
    const other = "{g}x";
    const otherSlot = slotOf(other);
    const pair = nodesFor(otherSlot);
    expect(await send(pair.source.server.port, "MMAP", other, "g.f64")).toBe(0);
    await pair.source.server.stop();
    fs.writeFileSync(
      path.join(pair.source.server.dir, "cluster-migration.json"),
      JSON.stringify({ importing: [], committing: { slot: otherSlot, target: pair.target.id } }),
    );
    pair.source.server = await startServer({ dir: pair.source.server.dir, port: pair.source.server.port, args: CLUSTER_NODE_ARGS });
    await until(async () => (await send(pair.source.server.port, "VADD", other, "1")) === 1, "the source to keep the slot");
    expect(await owners(other)).toEqual([pair.source.server.port]);
  });
});
