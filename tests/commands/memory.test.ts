/**
 * MEMORY, in-process and byte for byte: USAGE is the bytes of the key's file, of its name and of
 * its binding (nil for no key; SAMPLES accepted, sizes are exact), HELP in Redis's shape. MEMORY's
 * errors next to redis-server's, and what redis-cli --memkeys prints: tests/server/introspection.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { BINDING_OVERHEAD_BYTES } from "../../core/commands/memory.ts";
import { int, nil, shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const run = h.run;

describe("MEMORY", () => {
  test("USAGE: the file's bytes, the key's and the binding's; nil for no key", () => {
    expect(run(["MMAP", "prices", "prices.f64"])).toBe(int(0));
    expect(run(["MEMORY", "USAGE", "prices"])).toBe(int(6 + BINDING_OVERHEAD_BYTES));
    expect(run(["VADD", "prices", "1", "2", "3"])).toBe(int(3));
    expect(run(["MEMORY", "USAGE", "prices"])).toBe(int(24 + 6 + BINDING_OVERHEAD_BYTES));
    expect(run(["memory", "usage", "prices", "SAMPLES", "0"])).toBe(int(24 + 6 + BINDING_OVERHEAD_BYTES));
    expect(run(["MEMORY", "USAGE", "prices", "samples", "5", "SAMPLES", "7"])).toBe(int(24 + 6 + BINDING_OVERHEAD_BYTES));
    expect(run(["MEMORY", "USAGE", "nokey"])).toBe(nil(2));
    expect(run(["MEMORY", "USAGE", "nokey"], 3)).toBe(nil(3));
  });

  test("HELP in Redis's shape", () => {
    const help = run(["MEMORY", "HELP"]);
    expect(help).toStartWith(
      "*6\r\n+MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:\r\n+USAGE <key> [SAMPLES <count>]\r\n",
    );
    expect(help).toEndWith("+HELP\r\n+    Prints this help.\r\n");
  });
});
