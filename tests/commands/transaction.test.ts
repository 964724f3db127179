/**
 * The shard's side of transactions, in-process: `_WATCH`, `_UNWATCH` and `_EXEC` (what the
 * server sends for WATCH, UNWATCH and EXEC), including the barrier of a transaction that spans
 * shards when another participant is already there, has seen a change, or died.
 */
import { describe, expect, test } from "bun:test";
import { shardCommandId, SHARD_COMMAND_INDEX } from "../../core/commands.ts";
import { Args } from "../../core/args.ts";
import { BARRIER_WORDS, CANCELLED, EXEC_ABORTED, EXEC_CANCELLED, EXEC_RAN } from "../../core/commands/transaction.ts";
import { int, shardHarness } from "../helpers/harness.ts";

const barriers = new Int32Array(new SharedArrayBuffer(8 * BARRIER_WORDS * 4));
const h = shardHarness({ index: 0, barriers });
const id = (name: string) => String(shardCommandId.get(SHARD_COMMAND_INDEX.find(Args.of(name), 0)!));
/** `_EXEC client slot checkers finishers` with each command as (id, argc, args...); `shards` take part in both barriers. */
const exec = (client: number, slot: number, shards: number, ...commands: string[][]) => [
  "_exec",
  String(client),
  String(slot),
  String(shards),
  String(shards),
  "p",
  ...commands.flatMap((c) => [id(c[0]), String(c.length), ...c]),
];
const header = (status: number, replies: number) => `*${2 + replies}\r\n:0\r\n:${status}\r\n`;

h.run(["mmap", "k", "k.f64"]);
h.run(["vadd", "k", "1", "2"]);

describe("one shard", () => {
  test("runs the commands in order and answers each", () => {
    expect(h.run(exec(7, 0, 1, ["vset", "k", "0", "5"], ["vget", "k", "0"], ["vcount", "k"]))).toBe(
      `${header(EXEC_RAN, 3)}:1\r\n$1\r\n5\r\n:2\r\n`,
    );
  });

  test("a run-time error stays in its place; the rest runs", () => {
    expect(h.run(exec(7, 0, 1, ["vget", "nokey", "0"], ["vget", "k", "1"]))).toBe(
      `${header(EXEC_RAN, 2)}-ERR You must do MMAP first\r\n$1\r\n2\r\n`,
    );
  });

  test("a write to a watched key after _WATCH aborts; the watch is gone after _EXEC", () => {
    expect(h.run(["_watch", "7", "k"])).toBe("+OK\r\n");
    h.run(["vset", "k", "0", "9"]);
    expect(h.run(exec(7, 0, 1, ["vset", "k", "1", "100"]))).toBe(header(EXEC_ABORTED, 0));
    expect(h.run(["vget", "k", "1"])).toBe("$1\r\n2\r\n");
    expect(h.run(exec(7, 0, 1, ["vget", "k", "1"]))).toBe(`${header(EXEC_RAN, 1)}$1\r\n2\r\n`);
  });

  test("a failed write, a read, or a write to another key does not abort", () => {
    h.run(["_watch", "8", "k"]);
    h.run(["vset", "k", "99", "1"]);
    h.run(["vget", "k", "0"]);
    h.run(["mmap", "other", "other.f64"]);
    h.run(["vadd", "other", "1"]);
    expect(h.run(exec(8, 0, 1, ["vcount", "k"]))).toBe(`${header(EXEC_RAN, 1)}${int(2)}`);
  });

  test("unbinding a watched key aborts, as FLUSHALL does; _UNWATCH forgets", () => {
    h.run(["_watch", "9", "other"]);
    h.run(["del", "other"]);
    expect(h.run(exec(9, 0, 1))).toBe(header(EXEC_ABORTED, 0));
    h.run(["_watch", "10", "k"]);
    expect(h.run(["_unwatch", "10"])).toBe("+OK\r\n");
    h.run(["vset", "k", "0", "1"]);
    expect(h.run(exec(10, 0, 1))).toBe(header(EXEC_RAN, 0));
  });
});

describe("a whole transaction on one shard answers EXEC itself (form d)", () => {
  const direct = (client: number, ...commands: string[][]) => {
    const request = exec(client, 0, 0, ...commands);
    request[5] = "d";
    return request;
  };

  test("the array of the replies", () => {
    expect(h.run(direct(20, ["vset", "k", "1", "3"], ["vget", "k", "1"]))).toBe("*2\r\n:1\r\n$1\r\n3\r\n");
  });

  test("a null array when a watched key changed, in each protocol", () => {
    h.run(["_watch", "21", "k"]);
    h.run(["vset", "k", "1", "4"]);
    expect(h.run(direct(21, ["vget", "k", "1"]))).toBe("*-1\r\n");
    h.run(["_watch", "21", "k"]);
    h.run(["vset", "k", "1", "4"]);
    expect(h.run(direct(21, ["vget", "k", "1"]), 3)).toBe("_\r\n");
  });
});

describe("across shards: the barrier", () => {
  const slot = (n: number) => barriers.subarray(n * BARRIER_WORDS, (n + 1) * BARRIER_WORDS);

  test("with the other shard already through both barriers, this one runs its part", () => {
    slot(1).set([1, 0, 1, 0]);
    expect(h.run(exec(11, 1, 2, ["vget", "k", "0"]))).toBe(`${header(EXEC_RAN, 1)}$1\r\n1\r\n`);
    expect([...slot(1)]).toEqual([2, 0, 2, 0]);
  });

  test("when the other shard saw a watched key change, none runs", () => {
    slot(2).set([1, 1, 0, 0]);
    expect(h.run(exec(12, 2, 2, ["vset", "k", "0", "77"]))).toBe(header(EXEC_ABORTED, 0));
    expect(h.run(["vget", "k", "0"])).toBe("$1\r\n1\r\n");
  });

  test("when a participant's worker died, this part is cancelled instead of waiting for ever", () => {
    slot(3).fill(0);
    Atomics.store(barriers, 3 * BARRIER_WORDS + CANCELLED, 1);
    expect(h.run(exec(13, 3, 2, ["vset", "k", "0", "78"]))).toBe(header(EXEC_CANCELLED, 0));
    expect(h.run(["vget", "k", "0"])).toBe("$1\r\n1\r\n");
  });
});
