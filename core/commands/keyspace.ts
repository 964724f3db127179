/**
 * The keyspace commands, shard side. Every key is a binding; unbinding never touches the file.
 * The server splits multi-key commands by shard and merges the replies (see `Route`).
 *
 *   DEL / UNLINK key [key ...]    -> number of keys unbound
 *   EXISTS key [key ...]          -> number of keys bound (a key named twice counts twice)
 *   TYPE key                      -> list | none (a binding is a list of values; see lists.ts)
 *   KEYS pattern                  -> matching keys
 *   SCAN cursor [MATCH p] [COUNT n] [TYPE t]   (t: list, or mmap)
 *   DBSIZE                        -> number of keys
 *   FLUSHDB / FLUSHALL [ASYNC|SYNC]
 */
import type { ArgList } from "../args.ts";
import { argInt, argIs, argString, keyString } from "../args.ts";
import { ALL_KEYS, KEY_AT_1 } from "../command_spec.ts";
import { CommandError, Errors } from "../errors.ts";
import { FNV_OFFSET, fnvMix } from "../fnv.ts";
import { globMatch } from "../glob.ts";
import type { Shard, ShardCommand } from "../shard.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";

function replyKey(w: ReplyWriter, key: string): void {
  const bytes = Buffer.from(key, "latin1");
  w.bulkBytes(bytes, 0, bytes.length);
}

function unbindKeys(shard: Shard, a: ArgList, w: ReplyWriter): void {
  let n = 0;
  for (let i = 1; i < a.argc; i++) if (shard.unbind(shard.keyOf(a, i))) n++;
  w.integer(n);
}

const flush: ShardCommand["run"] = (shard, a, w) => {
  if (a.argc > 2 || (a.argc === 2 && !argIs(a, 1, "async") && !argIs(a, 1, "sync"))) throw new CommandError(Errors.syntax);
  for (const key of [...shard.bindings.keys()]) shard.unbind(key);
  w.simple("OK");
};

/**
 * What TYPE says a key is: Redis's type closest to a binding, so that tools which size keys by
 * type (redis-cli --bigkeys calls LLEN for a list) understand it. SCAN's TYPE also takes `mmap`,
 * TYPE's answer before.
 */
const KEY_TYPE = "list";

/** FLUSHDB and FLUSHALL: one database, so the same command under two names. */
const FLUSH: ShardCommand = {
  name: "flushall",
  arity: -1,
  route: "all",
  merge: "ok",
  flags: ["write"],
  keys: null,
  group: "server",
  since: "0.1.0",
  summary: "Unbinds every key; no file is changed.",
  complexity: "O(N) where N is the number of keys",
  syntax: "[ASYNC|SYNC]",
  run: flush,
};

/** SCAN's default page size, as Redis. */
export const SCAN_DEFAULT_COUNT = 10;

/**
 * A key's place in SCAN order: its 32-bit FNV-1a hash. A place depends on the key alone, so a
 * cursor stays valid while other keys come and go (keys present throughout are all returned).
 */
function scanPlace(key: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < key.length; i++) h = fnvMix(h, key.charCodeAt(i));
  return h >>> 0;
}

export const keyspaceCommands: ShardCommand[] = [
  {
    name: "del",
    arity: -2,
    route: "keys",
    flags: ["write"],
    keys: ALL_KEYS,
    group: "generic",
    since: "0.1.0",
    summary: "Unbinds keys (their files are kept) and returns how many were bound.",
    complexity: "O(N) where N is the number of keys",
    syntax: "key [key ...]",
    run: unbindKeys,
  },
  {
    name: "unlink",
    arity: -2,
    route: "keys",
    flags: ["write", "fast"],
    keys: ALL_KEYS,
    group: "generic",
    since: "0.1.0",
    summary: "Unbinds keys, as DEL.",
    complexity: "O(N) where N is the number of keys",
    syntax: "key [key ...]",
    run: unbindKeys,
  },
  {
    name: "exists",
    arity: -2,
    route: "keys",
    flags: ["readonly", "fast"],
    keys: ALL_KEYS,
    group: "generic",
    since: "0.1.0",
    summary: "Returns how many of the keys are bound (a key named twice counts twice).",
    complexity: "O(N) where N is the number of keys",
    syntax: "key [key ...]",
    run(shard, a, w) {
      let n = 0;
      for (let i = 1; i < a.argc; i++) if (shard.find(a, i) !== undefined) n++;
      w.integer(n);
    },
  },
  {
    name: "type",
    arity: 2,
    route: "key",
    flags: ["readonly", "fast"],
    keys: KEY_AT_1,
    group: "generic",
    since: "0.1.0",
    summary: "Returns list for a bound key (an ordered run of values), none otherwise.",
    complexity: "O(1)",
    syntax: "key",
    run(shard, a, w) {
      w.simple(shard.find(a, 1) === undefined ? "none" : KEY_TYPE);
    },
  },
  {
    name: "keys",
    arity: 2,
    route: "all",
    flags: ["readonly"],
    keys: null,
    group: "generic",
    since: "0.1.0",
    summary: "Returns every key that matches a glob-style pattern.",
    complexity: "O(N) where N is the number of keys",
    syntax: "pattern",
    merge: "concat",
    run(shard, a, w) {
      const pattern = keyString(a, 1);
      const keys = [...shard.bindings.keys()].filter((k) => globMatch(pattern, k));
      w.array(keys.length);
      for (const k of keys) replyKey(w, k);
    },
  },
  {
    name: "scan",
    arity: -2,
    route: "scan",
    flags: ["readonly"],
    keys: null,
    group: "generic",
    since: "0.1.0",
    summary: "Iterates over the keys, a page at a time; cursor 0 comes with the last keys.",
    complexity: "O(1) per call, O(N) for a complete iteration",
    syntax: "cursor [MATCH pattern] [COUNT count] [TYPE type]",
    run(shard, a, w) {
      const cursor = argInt(a, 1);
      if (!(cursor >= 0)) throw new CommandError(Errors.invalidCursor);
      let pattern: string | undefined;
      let count = SCAN_DEFAULT_COUNT;
      let typeFilter: string | undefined;
      for (let i = 2; i < a.argc; i += 2) {
        if (i + 1 >= a.argc) throw new CommandError(Errors.syntax);
        if (argIs(a, i, "match")) pattern = keyString(a, i + 1);
        else if (argIs(a, i, "count")) {
          count = argInt(a, i + 1);
          if (!(count >= 1)) throw new CommandError(count !== count ? Errors.notAnInteger : Errors.syntax);
        } else if (argIs(a, i, "type")) typeFilter = argString(a, i + 1).toLowerCase();
        else throw new CommandError(Errors.syntax);
      }
      // The cursor is (place in SCAN order) * shards + shard: the page starts at the first key
      // whose place is at least that, so deleting keys never moves the ones not returned yet. A
      // page that ends this shard answers the next shard's start, which the server goes on into
      // in the same call (server/scan_pages.ts); the last shard's answers 0.
      const { index, count: shards } = shard.options;
      const from = Math.floor(cursor / shards);
      const candidates: { place: number; key: string }[] = [];
      for (const key of shard.bindings.keys()) {
        const place = scanPlace(key);
        if (place >= from) candidates.push({ place, key });
      }
      candidates.sort((x, y) => x.place - y.place || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
      let end = Math.min(candidates.length, count);
      // Keys sharing a place go out in one page: a cursor cannot point between them.
      while (end < candidates.length && candidates[end].place === candidates[end - 1].place) end++;
      const next = end < candidates.length ? (candidates[end - 1].place + 1) * shards + index : index + 1 < shards ? index + 1 : 0;
      const page = candidates
        .slice(0, end)
        .map((c) => c.key)
        .filter(
          (k) =>
            (pattern === undefined || globMatch(pattern, k)) &&
            (typeFilter === undefined || typeFilter === KEY_TYPE || typeFilter === "mmap"),
        );
      w.array(2);
      w.bulk(String(next));
      w.array(page.length);
      for (const k of page) replyKey(w, k);
    },
  },
  {
    name: "dbsize",
    arity: 1,
    route: "all",
    flags: ["readonly", "fast"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Returns the number of keys.",
    complexity: "O(1)",
    syntax: "",
    merge: "sum",
    run(shard, _a, w) {
      w.integer(shard.bindings.size);
    },
  },
  { ...FLUSH, name: "flushdb" },
  { ...FLUSH, name: "flushall" },
  {
    name: "_flush",
    arity: 1,
    route: "all",
    flags: [],
    keys: null,
    group: "internal",
    since: "0.1.0",
    summary: "Syncs the shard's written files to disk (sent by the server only).",
    complexity: "O(N) where N is the number of written files",
    syntax: "",
    merge: "ok",
    internal: true,
    run(shard, _a, w) {
      shard.flushDirty();
      w.simple("OK");
    },
  },
];
