/**
 * Every command on every value type, through ioredis (RESP2) and node-redis v5 (RESP3): replies,
 * the type's bounds and refusals (with the file left byte for byte as it was), the bytes mmapd
 * writes, files made by the test read back exactly, and the RESP spelling of each value checked
 * byte for byte in both protocols.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startServer, type TestServer } from "../helpers/server.ts";
import { connectIoredis, connectNodeRedis, err, errorOf, fileBytes, RawSession, type ProtocolClient } from "./clients.ts";
import { encodeFile, respOf, TYPE_CASES, x87Bytes, type TypeCase } from "./type_cases.ts";

setDefaultTimeout(30_000);

let server: TestServer;
const clients: ProtocolClient[] = [];

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
  clients.push(await connectIoredis(server.port), await connectNodeRedis(server.port));
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await server?.stop();
  server?.cleanup();
});

const bytesOf = (name: string) => fileBytes(server.dir, name);
const sizeOf = (name: string) => fs.statSync(path.join(server.dir, name)).size;

/** MMAP, VADD, the reads, VSET, every refusal, VPOP and VCLEAR on one type through one client. */
async function everyCommand(t: TypeCase, c: ProtocolClient): Promise<void> {
  const key = `${t.name}:resp${c.proto}`;
  const file = `${t.name}-resp${c.proto}.bin`;
  const inputs = t.samples.map((s) => s.input);
  const n = inputs.length;

  expect(await c.send("MMAP", key, file, ...t.mmapArgs, "WRITABLE")).toBe(0);
  expect(fs.existsSync(path.join(server.dir, file))).toBe(true);
  expect(sizeOf(file)).toBe(0);

  expect(await c.send("VADD", key, ...inputs)).toBe(n);
  expect(bytesOf(file)).toEqual(encodeFile(t, inputs));
  expect(await c.send("VCOUNT", key)).toBe(n);
  expect(await c.send("VTYPE", key)).toBe(t.name);
  expect(await c.send("VSIZE", key)).toBe(t.width);
  expect(await c.send("VFILEPATH", key)).toBe(file);

  expect(await c.send("VALL", key)).toEqual(t.samples.map(c.decoded));
  expect(await c.exact("VALL", key)).toEqual(t.samples.map((s) => s.text));
  for (let i = 0; i < n; i++) expect(await c.send("VGET", key, String(i))).toEqual(c.decoded(t.samples[i]!));
  const reversed = [...t.samples.keys()].reverse();
  expect(await c.send("VMGET", key, ...reversed.map(String))).toEqual(reversed.map((i) => c.decoded(t.samples[i]!)));

  // Swap the first and last values.
  expect(await c.send("VSET", key, "0", inputs[n - 1]!, String(n - 1), inputs[0]!)).toBe(2);
  const swapped = [inputs[n - 1]!, ...inputs.slice(1, n - 1), inputs[0]!];
  expect(bytesOf(file)).toEqual(encodeFile(t, swapped));
  expect(await c.exact("VMGET", key, "0", String(n - 1))).toEqual([t.samples[n - 1]!.text, t.samples[0]!.text]);

  // A refused value anywhere in a write means no change at all.
  const before = bytesOf(file);
  for (const [input, error] of t.refused) {
    expect(await errorOf(c.send("VADD", key, inputs[1]!, input))).toBe(error);
    expect(await errorOf(c.send("VSET", key, "1", inputs[0]!, "0", input))).toBe(error);
    expect(await errorOf(c.send("VSET", key, "0", input))).toBe(error);
  }
  expect(bytesOf(file)).toEqual(before);
  expect(await c.send("VCOUNT", key)).toBe(n);

  expect(await c.send("VPOP", key)).toEqual(c.decoded(t.samples[0]!));
  expect(await c.send("VCOUNT", key)).toBe(n - 1);
  expect(bytesOf(file)).toEqual(encodeFile(t, swapped.slice(0, n - 1)));

  expect(await c.send("VCLEAR", key)).toBe(n - 1);
  expect(sizeOf(file)).toBe(0);
  expect(await c.send("VCOUNT", key)).toBe(0);
  expect(await c.send("VALL", key)).toEqual([]);
  expect(await c.send("VPOP", key)).toBeNull();

  // The file grows again after a clear.
  expect(await c.send("VADD", key, inputs[2]!)).toBe(1);
  expect(bytesOf(file)).toEqual(encodeFile(t, [inputs[2]!]));
}

for (const t of TYPE_CASES) {
  describe(t.name, () => {
    test("every command, RESP2 (ioredis)", () => everyCommand(t, clients[0]!));
    test("every command, RESP3 (node-redis)", () => everyCommand(t, clients[1]!));

    test("a file written by the test is read back exactly, read-only, in both protocols", async () => {
      const file = `interop-${t.name}.bin`;
      const inputs = t.samples.map((s) => s.input);
      const bytes = encodeFile(t, inputs);
      fs.writeFileSync(path.join(server.dir, file), bytes);
      const key = `interop:${t.name}`;
      for (const c of clients) {
        expect(await c.send("MMAP", key, file, ...t.mmapArgs)).toBe(inputs.length);
        expect(await c.exact("VALL", key)).toEqual(t.samples.map((s) => s.text));
        expect(await c.send("VALL", key)).toEqual(t.samples.map(c.decoded));
        expect(await errorOf(c.send("VSET", key, "0", inputs[0]!))).toBe("ERR The file is not writable");
      }
      expect(bytesOf(file)).toEqual(bytes);
    });

    test("replies are spelled exactly, RESP2 and RESP3", async () => {
      const key = `interop:${t.name}`; // bound by the previous test
      for (const proto of [2, 3] as const) {
        const raw = await RawSession.open(server.port, proto);
        try {
          const all = `*${t.samples.length}\r\n` + t.samples.map((s) => respOf(s, proto)).join("");
          expect(await raw.command("VALL", key)).toBe(all);
          for (let i = 0; i < t.samples.length; i++) expect(await raw.command("VGET", key, String(i))).toBe(respOf(t.samples[i]!, proto));
          expect(await raw.command("VTYPE", key)).toBe(`$${t.name.length}\r\n${t.name}\r\n`);
          expect(await raw.command("VSIZE", key)).toBe(`:${t.width}\r\n`);
          expect(await raw.command("VCOUNT", key)).toBe(`:${t.samples.length}\r\n`);
        } finally {
          raw.close();
        }
      }
    });
  });
}

describe("type names and layouts", () => {
  test("aliases float32 and float64 bind as float and double", async () => {
    const c = clients[0]!;
    fs.writeFileSync(path.join(server.dir, "alias.bin"), new Uint8Array(16));
    expect(await c.send("MMAP", "alias32", "alias.bin", "float32")).toBe(4);
    expect(await c.send("VTYPE", "alias32")).toBe("float");
    expect(await c.send("VSIZE", "alias32")).toBe(4);
    expect(await c.send("MMAP", "alias64", "alias.bin", "FLOAT64", "8")).toBe(2);
    expect(await c.send("VTYPE", "alias64")).toBe("double");
    expect(await c.send("MMAP", "aliasLD", "alias.bin", "Long_Double")).toBe(1);
    expect(await c.send("VTYPE", "aliasLD")).toBe("long_double");
  });

  test("MMAP key path (blog form) is a writable double file", async () => {
    const c = clients[1]!;
    expect(await c.send("MMAP", "blog", "blog.f64")).toBe(0);
    expect(await c.send("VTYPE", "blog")).toBe("double");
    expect(await c.send("VSIZE", "blog")).toBe(8);
    expect(await c.send("VADD", "blog", "0.5")).toBe(1);
    expect(bytesOf("blog.f64")).toEqual(new Uint8Array(new Float64Array([0.5]).buffer));
  });

  test("NaN found in a file replies nan (float, double, long_double), in both protocols", async () => {
    const f32 = new DataView(new ArrayBuffer(8));
    f32.setUint32(0, 0x7fc00000, true); // quiet NaN
    f32.setUint32(4, 0xffc00001, true); // negative NaN with a payload
    fs.writeFileSync(path.join(server.dir, "nan.f32"), new Uint8Array(f32.buffer));
    const f64 = new DataView(new ArrayBuffer(16));
    f64.setBigUint64(0, 0x7ff8000000000000n, true);
    f64.setBigUint64(8, 0x7ff0000000000001n, true); // signalling NaN
    fs.writeFileSync(path.join(server.dir, "nan.f64"), new Uint8Array(f64.buffer));
    fs.writeFileSync(path.join(server.dir, "nan.f80"), x87Bytes(NaN));
    const raw2 = await RawSession.open(server.port, 2);
    const raw3 = await RawSession.open(server.port, 3);
    try {
      expect(await raw2.command("MMAP", "nan32", "nan.f32", "float")).toBe(":2\r\n");
      expect(await raw2.command("MMAP", "nan64", "nan.f64", "double")).toBe(":2\r\n");
      expect(await raw2.command("MMAP", "nan80", "nan.f80", "long_double")).toBe(":1\r\n");
      for (const key of ["nan32", "nan64"]) {
        expect(await raw2.command("VALL", key)).toBe("*2\r\n$3\r\nnan\r\n$3\r\nnan\r\n");
        expect(await raw3.command("VALL", key)).toBe("*2\r\n,nan\r\n,nan\r\n");
      }
      expect(await raw2.command("VGET", "nan80", "0")).toBe("$3\r\nnan\r\n");
      expect(await raw3.command("VGET", "nan80", "0")).toBe(",nan\r\n");
    } finally {
      raw2.close();
      raw3.close();
    }
  });

  test("long_double: 1.5 is written in the x87 80-bit layout", async () => {
    const c = clients[0]!;
    expect(await c.send("MMAP", "ld", "ld.f80", "long_double", "16", "WRITABLE")).toBe(0);
    expect(await c.send("VADD", "ld", "1.5", "-2", "0.1")).toBe(3);
    // 1.5: mantissa 0xC000000000000000 (explicit integer bit), exponent 0x3FFF, then 6 zero bytes.
    const onePointFive = [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0x3f, 0, 0, 0, 0, 0, 0];
    // -2: mantissa 0x8000000000000000, sign and exponent 0xC000.
    const minusTwo = [0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0xc0, 0, 0, 0, 0, 0, 0];
    // 0.1 as a double (0x3FB999999999999A) widened: mantissa 0xCCCCCCCCCCCCD000, exponent 0x3FFB.
    const pointOne = [0x00, 0xd0, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xfb, 0x3f, 0, 0, 0, 0, 0, 0];
    expect([...bytesOf("ld.f80")]).toEqual([...onePointFive, ...minusTwo, ...pointOne]);
    expect(await c.send("VALL", "ld")).toEqual(["1.5", "-2", "0.1"]);
  });

  test("long_double: a file a C program wrote is read through double", async () => {
    // 0.1L and 1/3.L carry 64-bit mantissas; the fifth is beyond double; 2^-16400 is an x87 denormal.
    const values: [mantissa: bigint, signExponent: number][] = [
      [0xcccccccccccccccdn, 0x3ffb],
      [0xaaaaaaaaaaaaaaabn, 0x3ffd],
      [0x8000000000000000n, 0x3fff],
      [0xc000000000000000n, 0xc000], // -3
      [0xd49689f5f5b63d26n, 0x73a2], // about 1e3979, beyond double
      [0x8000000000000000n, 0x7fff], // inf
      [0x8000000000000000n, 0xffff], // -inf
      [0x0000000000000000n, 0x8000], // -0
    ];
    const view = new DataView(new ArrayBuffer(16 * values.length));
    values.forEach(([mantissa, se], i) => {
      view.setBigUint64(16 * i, mantissa, true);
      view.setUint16(16 * i + 8, se, true);
      view.setUint16(16 * i + 10, 0xabcd, true); // padding bytes are ignored
    });
    fs.writeFileSync(path.join(server.dir, "c.f80"), new Uint8Array(view.buffer));
    const c = clients[0]!;
    expect(await c.send("MMAP", "cld", "c.f80", "long_double")).toBe(values.length);
    expect(await c.send("VALL", "cld")).toEqual(["0.1", "0.3333333333333333", "1", "-3", "inf", "inf", "-inf", "-0"]);
  });

  test("uint64 2^64-1 and int64 -2^63 are exact: RESP2 bulk / integer, RESP3 big number / integer", async () => {
    const raw2 = await RawSession.open(server.port, 2);
    const raw3 = await RawSession.open(server.port, 3);
    try {
      expect(await raw2.command("MMAP", "u64x", "u64x.bin", "uint64", "WRITABLE")).toBe(":0\r\n");
      expect(await raw2.command("MMAP", "i64x", "i64x.bin", "int64", "WRITABLE")).toBe(":0\r\n");
      expect(await raw2.command("VADD", "u64x", "18446744073709551615")).toBe(":1\r\n");
      expect(await raw2.command("VADD", "i64x", "-9223372036854775808")).toBe(":1\r\n");
      expect(await raw2.command("VGET", "u64x", "0")).toBe("$20\r\n18446744073709551615\r\n");
      expect(await raw3.command("VGET", "u64x", "0")).toBe("(18446744073709551615\r\n");
      expect(await raw2.command("VGET", "i64x", "0")).toBe(":-9223372036854775808\r\n");
      expect(await raw3.command("VGET", "i64x", "0")).toBe(":-9223372036854775808\r\n");
      expect([...bytesOf("u64x.bin")]).toEqual([255, 255, 255, 255, 255, 255, 255, 255]);
      expect([...bytesOf("i64x.bin")]).toEqual([0, 0, 0, 0, 0, 0, 0, 0x80]);
    } finally {
      raw2.close();
      raw3.close();
    }
    // node-redis decodes the big number to an exact BigInt.
    expect(await clients[1]!.send("VGET", "u64x", "0")).toBe(18446744073709551615n);
  });

  test("string N: stored NUL-padded, read up to the first NUL, any bytes", async () => {
    const raw = await RawSession.open(server.port, 3);
    try {
      expect(await raw.command("MMAP", "s4", "s4.bin", "string", "4", "WRITABLE")).toBe(":0\r\n");
      expect(await raw.command("VADD", "s4", "ab", "a\0b", "\r\n\xff", "abcd")).toBe(":4\r\n");
      expect([...bytesOf("s4.bin")]).toEqual([97, 98, 0, 0, 97, 0, 98, 0, 13, 10, 0xc3, 0xbf, 97, 98, 99, 100]);
      expect(await raw.command("VALL", "s4")).toBe("*4\r\n$2\r\nab\r\n$1\r\na\r\n$4\r\n\r\n\xff\r\n$4\r\nabcd\r\n");
      expect(await raw.command("VADD", "s4", "abcde")).toBe(err("ERR value is too long"));
      expect(await raw.command("VSIZE", "s4")).toBe(":4\r\n");
    } finally {
      raw.close();
    }
  });
});
