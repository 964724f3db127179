/**
 * mmapd's own commands, byte for byte in RESP2 and RESP3: VRANGE (LRANGE index rules, RAW bytes),
 * VSTATS (NaN skipped, exact integer sums), VINFO, and the raw writes VADDRAW / VSETRAW.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { RawClient, resp, startServer, type TestServer } from "../helpers/server.ts";

let server: TestServer;
let c: RawClient;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
  c = await RawClient.connect(server.port);
});

afterAll(async () => {
  c?.close();
  await server?.stop();
  server?.cleanup();
});

/** Sends one command and returns its reply as text. */
async function call(...args: (string | Uint8Array)[]): Promise<string> {
  c.write(resp(...args));
  return (await c.readReplies(1)).toString("latin1");
}

const f64 = (values: number[]) => {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeDoubleLE(v, i * 8));
  return b;
};

describe("VRANGE", () => {
  beforeAll(async () => {
    fs.writeFileSync(path.join(server.dir, "r.f64"), f64([0, 1.5, 2, 3.25, 4]));
    expect(await call("MMAP", "r", "r.f64", "double")).toBe(":5\r\n");
  });

  test("inclusive ranges with negative indices, clamped like LRANGE", async () => {
    expect(await call("VRANGE", "r", "1", "2")).toBe("*2\r\n$3\r\n1.5\r\n$1\r\n2\r\n");
    expect(await call("VRANGE", "r", "-2", "-1")).toBe("*2\r\n$4\r\n3.25\r\n$1\r\n4\r\n");
    expect(await call("VRANGE", "r", "3", "100")).toBe("*2\r\n$4\r\n3.25\r\n$1\r\n4\r\n");
    expect(await call("VRANGE", "r", "-100", "0")).toBe("*1\r\n$1\r\n0\r\n");
    expect(await call("VRANGE", "r", "3", "1")).toBe("*0\r\n");
    expect(await call("VRANGE", "r", "5", "9")).toBe("*0\r\n");
  });

  test("RAW returns the file's own bytes, ready for numpy.frombuffer", async () => {
    const reply = Buffer.from(await call("VRANGE", "r", "1", "3", "RAW"), "latin1");
    expect(reply.subarray(0, 5).toString()).toBe("$24\r\n");
    expect(reply.subarray(5, 29).equals(f64([1.5, 2, 3.25]))).toBe(true);
    expect(await call("VRANGE", "r", "4", "2", "raw")).toBe("$0\r\n\r\n");
  });

  test("errors: bad indices, unknown option, unbound key", async () => {
    expect(await call("VRANGE", "r", "a", "2")).toBe("-ERR index argument must be integer\r\n");
    expect(await call("VRANGE", "r", "0", "2", "BYTES")).toBe("-ERR syntax error\r\n");
    expect(await call("VRANGE", "nope", "0", "2")).toBe("-ERR You must do MMAP first\r\n");
  });
});

describe("VSTATS", () => {
  test("doubles: NaN skipped and counted; RESP2 flat array, RESP3 map of doubles", async () => {
    fs.writeFileSync(path.join(server.dir, "s.f64"), f64([1, NaN, 2.5, -4, NaN]));
    expect(await call("MMAP", "s", "s.f64", "double")).toBe(":5\r\n");
    expect(await call("VSTATS", "s")).toBe(
      "*12\r\n$5\r\ncount\r\n:3\r\n$3\r\nsum\r\n$4\r\n-0.5\r\n$3\r\nmin\r\n$2\r\n-4\r\n$3\r\nmax\r\n$3\r\n2.5\r\n" +
        "$4\r\nmean\r\n$20\r\n-0.16666666666666666\r\n$9\r\nnan_count\r\n:2\r\n",
    );
    expect(await call("HELLO", "3")).toContain("%7\r\n");
    expect(await call("VSTATS", "s", "0", "2")).toBe(
      "%6\r\n$5\r\ncount\r\n:2\r\n$3\r\nsum\r\n,3.5\r\n$3\r\nmin\r\n,1\r\n$3\r\nmax\r\n,2.5\r\n$4\r\nmean\r\n,1.75\r\n$9\r\nnan_count\r\n:1\r\n",
    );
    expect(await call("HELLO", "2")).toContain("*14\r\n");
  });

  test("int64 sums are exact past 2^63; an empty range has nil min, max and mean", async () => {
    expect(await call("MMAP", "i", "i.i64", "int64", "WRITABLE")).toBe(":0\r\n");
    expect(await call("VSTATS", "i")).toBe(
      "*12\r\n$5\r\ncount\r\n:0\r\n$3\r\nsum\r\n:0\r\n$3\r\nmin\r\n$-1\r\n$3\r\nmax\r\n$-1\r\n$4\r\nmean\r\n$-1\r\n$9\r\nnan_count\r\n:0\r\n",
    );
    expect(await call("VADD", "i", "9223372036854775807", "9223372036854775807", "-5")).toBe(":3\r\n");
    const reply = await call("VSTATS", "i");
    expect(reply).toContain("$3\r\nsum\r\n$20\r\n18446744073709551609\r\n");
    expect(reply).toContain("$3\r\nmin\r\n:-5\r\n$3\r\nmax\r\n:9223372036854775807\r\n");
  });

  test("strings have no statistics", async () => {
    expect(await call("MMAP", "t", "t.bin", "string", "4", "WRITABLE")).toBe(":0\r\n");
    expect(await call("VSTATS", "t")).toBe("-ERR VSTATS needs a numeric type\r\n");
    expect(await call("VSTATS", "t", "0")).toBe("-ERR wrong number of arguments for 'vstats' command\r\n");
  });
});

test("VINFO describes the binding", async () => {
  expect(await call("MMAP", "v", "v.u16", "uint16", "WRITABLE")).toBe(":0\r\n");
  expect(await call("VADD", "v", "1", "2", "3")).toBe(":3\r\n");
  const reply = await call("VINFO", "v");
  expect(reply).toMatch(
    /^\*14\r\n\$4\r\npath\r\n\$5\r\nv\.u16\r\n\$4\r\ntype\r\n\$6\r\nuint16\r\n\$4\r\nsize\r\n:2\r\n\$5\r\ncount\r\n:3\r\n\$8\r\nwritable\r\n:1\r\n\$5\r\nbytes\r\n:6\r\n\$5\r\nshard\r\n:[01]\r\n$/,
  );
});

describe("raw writes", () => {
  test("VADDRAW appends values in the file's layout; VSETRAW overwrites from an index", async () => {
    expect(await call("MMAP", "w", "w.f64")).toBe(":0\r\n");
    expect(await call("VADDRAW", "w", f64([1, 2, 3]))).toBe(":3\r\n");
    expect(await call("VSETRAW", "w", "1", f64([20, 30]))).toBe(":2\r\n");
    expect(fs.readFileSync(path.join(server.dir, "w.f64")).equals(f64([1, 20, 30]))).toBe(true);
  });

  test("a length that is not a multiple of the value size, or a range past the end, changes nothing", async () => {
    const before = fs.readFileSync(path.join(server.dir, "w.f64"));
    expect(await call("VADDRAW", "w", Buffer.alloc(12))).toBe("-ERR raw length 12 is not a multiple of value size 8\r\n");
    expect(await call("VSETRAW", "w", "2", f64([7, 8]))).toBe("-ERR index exceeds size\r\n");
    expect(await call("VSETRAW", "w", "3", f64([7]))).toBe("-ERR index exceeds size\r\n");
    expect(fs.readFileSync(path.join(server.dir, "w.f64")).equals(before)).toBe(true);
  });

  test("read-only bindings refuse raw writes", async () => {
    expect(await call("VADDRAW", "r", f64([1]))).toBe("-ERR The file is not writable\r\n");
  });
});
