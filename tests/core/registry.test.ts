/**
 * The bindings registry on its own (core/registry.ts, on the main thread): records survive a
 * reopen; a log cut at every byte offset, or with a corrupt line in the middle, loads with its
 * intact records, reports the damage and keeps a copy; the data directory is locked while open.
 */
import { afterAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { DAMAGED_REGISTRY_FILE, encodeRecord, REGISTRY_FILE, Registry } from "../../core/registry.ts";
import type { BindingRecord } from "../../core/registry.ts";
import type { CatalogEvent } from "../../core/shard.ts";
import { tempDir } from "../helpers/server.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function freshDir(): string {
  const d = tempDir("mmapd-registry-");
  dirs.push(d);
  return d;
}

/** Loads the registry of `dir`, hands it to `body`, and always closes it (releasing the lock). */
function withRegistry<T>(dir: string, body: (r: Registry, problems: string[]) => T): T {
  const r = new Registry(dir);
  try {
    const report = r.load();
    return body(r, report.problems);
  } finally {
    r.close();
  }
}

// Keys and paths as shards report them: keys are latin1 strings (any bytes), paths as given.
const EVENTS: CatalogEvent[] = [
  { op: "bind", key: "alpha", path: "alpha.f64", type: "double", size: 8, writable: true },
  { op: "bind", key: "b\u00e9ta\u00ff", path: "sub/b\u00e9ta.i16", type: "int16", size: 2, writable: false },
  { op: "bind", key: "gamma", path: "gamma.str", type: "string", size: 17, writable: true },
  { op: "unbind", key: "alpha" },
  { op: "bind", key: "delta with spaces\n and a newline", path: "delta.u64", type: "uint64", size: 8, writable: true },
  { op: "bind", key: "alpha", path: "alpha2.i8", type: "int8", size: 1, writable: false },
  { op: "unbind", key: "gamma" },
];

/** The bindings after applying `events` in order, sorted by key. */
function model(events: CatalogEvent[]): BindingRecord[] {
  const m = new Map<string, BindingRecord>();
  for (const e of events) {
    if (e.op === "bind") m.set(e.key, { key: e.key, path: e.path, type: e.type, size: e.size, writable: e.writable });
    else m.delete(e.key);
  }
  return sorted([...m.values()]);
}

function sorted(list: BindingRecord[]): BindingRecord[] {
  return [...list].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A log holding exactly `events`, as a running server would have appended them. */
function writtenLog(events: CatalogEvent[]): Buffer {
  const dir = freshDir();
  withRegistry(dir, (r) => {
    for (const e of events) expect(r.record(e)).toBe(true);
    expect(r.syncIfNeeded()).toBe(true);
  });
  return fs.readFileSync(path.join(dir, REGISTRY_FILE));
}

describe("registry", () => {
  test("records survive a reopen, and the log is rewritten with the live bindings only", () => {
    const dir = freshDir();
    withRegistry(dir, (r, problems) => {
      expect(problems).toEqual([]);
      expect(r.bindings.size).toBe(0);
      for (const e of EVENTS) r.record(e);
      // Restoring a binding as it is appends nothing; unbinding an unknown key neither.
      expect(r.record({ ...(EVENTS[1] as CatalogEvent & { op: "bind" }) })).toBe(false);
      expect(r.record({ op: "unbind", key: "never bound" })).toBe(false);
    });
    expect(fs.readFileSync(path.join(dir, REGISTRY_FILE), "latin1").split("\n").length - 1).toBe(EVENTS.length);
    withRegistry(dir, (r, problems) => {
      expect(problems).toEqual([]);
      expect(sorted([...r.bindings.values()])).toEqual(model(EVENTS));
    });
    // Compacted at load: one line per live binding.
    const log = path.join(dir, REGISTRY_FILE);
    expect(fs.readFileSync(log, "latin1").split("\n").length - 1).toBe(model(EVENTS).length);
    expect(fs.existsSync(path.join(dir, DAMAGED_REGISTRY_FILE))).toBe(false);
    // A clean, compact log is not rewritten at the next load (same file), and still appends.
    const inode = fs.statSync(log).ino;
    withRegistry(dir, (r) => {
      expect(r.record({ op: "unbind", key: "alpha" })).toBe(true);
      expect(r.syncIfNeeded()).toBe(true);
    });
    expect(fs.statSync(log).ino).toBe(inode);
    withRegistry(dir, (r) => expect(sorted([...r.bindings.values()])).toEqual(model([...EVENTS, { op: "unbind", key: "alpha" }])));
  });

  test("a log cut at every byte offset loads with every whole record, and reports the cut one", () => {
    const full = writtenLog(EVENTS);
    // Where each record's line ends (just past its newline).
    const ends: number[] = [];
    for (let i = 0; i < full.length; i++) if (full[i] === 10) ends.push(i + 1);
    expect(ends.length).toBe(EVENTS.length);
    // The sweep runs on tmpfs when there is one: a load rewrites the log with two fsyncs.
    const base = fs.existsSync("/dev/shm") ? fs.mkdtempSync("/dev/shm/mmapd-registry-") : freshDir();
    if (base.startsWith("/dev/shm")) dirs.push(base);
    let withProblems = 0;
    for (let length = 0; length <= full.length; length++) {
      const dir = path.join(base, String(length));
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, REGISTRY_FILE), full.subarray(0, length));
      // Whole records: those whose line fits, and a last one that lost only its newline.
      const whole = ends.filter((end) => end - 1 <= length).length;
      const cutInside = !ends.includes(length) && length !== 0 && !ends.includes(length + 1);
      withRegistry(dir, (r, problems) => {
        expect({ length, bindings: sorted([...r.bindings.values()]) }).toEqual({ length, bindings: model(EVENTS.slice(0, whole)) });
        if (cutInside) {
          withProblems++;
          expect(problems.length).toBe(2);
          expect(problems[0]).toMatch(/^torn record at the end of bindings\.log \(\d+ bytes\) ignored$/);
          expect(problems[1]).toContain(DAMAGED_REGISTRY_FILE);
          expect(fs.readFileSync(path.join(dir, DAMAGED_REGISTRY_FILE)).equals(full.subarray(0, length))).toBe(true);
        } else expect({ length, problems }).toEqual({ length, problems: [] });
      });
      // The rewritten log is clean and holds the same bindings.
      withRegistry(dir, (r, problems) => {
        expect(problems).toEqual([]);
        expect(sorted([...r.bindings.values()])).toEqual(model(EVENTS.slice(0, whole)));
      });
      fs.rmSync(dir, { recursive: true });
    }
    expect(withProblems).toBe(full.length + 1 - 1 - 2 * EVENTS.length);
  });

  test("a corrupt line in the middle is skipped and reported, the others are kept", () => {
    const full = writtenLog(EVENTS);
    const lines = full.toString("latin1").split("\n");
    // Line 3 (gamma's bind): one byte of its JSON changed, so its checksum fails.
    lines[2] = lines[2].replace('"gamma"', '"gamm@"');
    // Line 5: a record with a good checksum but not a binding.
    lines[4] = Buffer.from(encodeRecord({ op: "bind", key: "x" } as unknown as CatalogEvent), "utf8")
      .toString("latin1")
      .trimEnd();
    const dir = freshDir();
    fs.writeFileSync(path.join(dir, REGISTRY_FILE), Buffer.from(lines.join("\n"), "latin1"));
    withRegistry(dir, (r, problems) => {
      expect(problems[0]).toMatch(/^corrupt record on line 3 of bindings\.log \(\d+ bytes\) ignored$/);
      expect(problems[1]).toMatch(/^unreadable record on line 5 of bindings\.log \(\d+ bytes\) ignored$/);
      expect(problems[2]).toContain(DAMAGED_REGISTRY_FILE);
      expect(problems.length).toBe(3);
      const kept = EVENTS.filter((_, i) => i !== 2 && i !== 4);
      expect(sorted([...r.bindings.values()])).toEqual(model(kept));
    });
    expect(fs.readFileSync(path.join(dir, DAMAGED_REGISTRY_FILE), "latin1")).toBe(lines.join("\n"));
  });

  test("a second registry on the same directory is refused while the first is open", () => {
    const dir = freshDir();
    const first = new Registry(dir);
    first.load();
    try {
      expect(() => new Registry(dir).load()).toThrow(/is in use by another mmapd process/);
    } finally {
      first.close();
    }
    withRegistry(dir, (_r, problems) => expect(problems).toEqual([]));
  });

  test("a log that exists but cannot be read stops the load instead of being overwritten", () => {
    const dir = freshDir();
    fs.mkdirSync(path.join(dir, REGISTRY_FILE));
    fs.writeFileSync(path.join(dir, REGISTRY_FILE, "keep"), "x");
    const r = new Registry(dir);
    try {
      expect(() => r.load()).toThrow(/cannot read/);
    } finally {
      r.close();
    }
    expect(fs.readFileSync(path.join(dir, REGISTRY_FILE, "keep"), "latin1")).toBe("x");
  });

  test("a failed append is reported and the next sync rewrites the whole log", () => {
    const dir = freshDir();
    const warnings: string[] = [];
    const r = new Registry(dir, (m) => warnings.push(m));
    r.load();
    try {
      r.record(EVENTS[0]);
      expect(r.syncIfNeeded()).toBe(true);
      // Take the log's descriptor away, as a failing disk would make writes fail.
      const fd = (r as unknown as { fd: number }).fd;
      fs.closeSync(fd);
      (r as unknown as { fd: number }).fd = 1_000_000;
      r.record(EVENTS[1]);
      expect(warnings.length).toBe(1);
      expect(warnings[0]).toContain("binding changes are not durable");
      // Within the retry delay nothing is attempted; after it, the log is rewritten whole.
      expect(r.syncIfNeeded()).toBe(false);
      (r as unknown as { retryAt: number }).retryAt = 0;
      expect(r.syncIfNeeded()).toBe(true);
      expect(warnings[1]).toContain("is written again");
    } finally {
      r.close();
    }
    withRegistry(dir, (again, problems) => {
      expect(problems).toEqual([]);
      expect(sorted([...again.bindings.values()])).toEqual(model(EVENTS.slice(0, 2)));
    });
  });
});
