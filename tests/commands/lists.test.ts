/**
 * The list commands a binding answers, in-process: TYPE calls every binding a list, so tools that
 * size keys by type (redis-cli --bigkeys: tests/server/introspection.test.ts) ask LLEN, which
 * answers the number of values, and 0 for a key that does not exist, as Redis does.
 */
import { describe, expect, test } from "bun:test";
import { int, shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const run = h.run;

describe("LLEN", () => {
  test("the number of values, 0 for no key (as Redis); TYPE: list", () => {
    expect(run(["MMAP", "prices", "prices.f64"])).toBe(int(0));
    expect(run(["VADD", "prices", "1", "2", "3"])).toBe(int(3));
    expect(run(["LLEN", "prices"])).toBe(int(3));
    expect(run(["LLEN", "nokey"])).toBe(int(0));
    expect(run(["TYPE", "prices"])).toBe("+list\r\n");
  });
});
