/**
 * Files far larger than anything else in the suite, made sparse with ftruncate so they cost no
 * disk: VALL of 10 million doubles (a 70 MB reply, bigger than the ring between threads, so it
 * travels out of band) arrives whole, correct and in order with the replies after it; and a
 * 64 GiB file is read and written at index 8,000,000,000.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { resp, startServer, type TestServer } from "../helpers/server.ts";
import { RawSession } from "./clients.ts";

setDefaultTimeout(120_000);

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
});

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
});

/** Makes a sparse file of `bytes` zero bytes, then writes doubles at some indices. */
function sparseDoubles(name: string, bytes: number, values: Map<number, number>): string {
  const file = path.join(server.dir, name);
  const fd = fs.openSync(file, "w");
  try {
    fs.ftruncateSync(fd, bytes);
    for (const [index, value] of values) fs.writeSync(fd, new Uint8Array(new Float64Array([value]).buffer), 0, 8, index * 8);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/**
 * Reads a RESP2 array of bulk strings from a socket as it streams in, comparing each element with
 * `expected(i)` without holding the whole reply; then reads `after` more bytes. Resolves with a
 * report of what was seen.
 */
function streamArray(socket: net.Socket, count: number, expected: (i: number) => string, after: string): Promise<{ header: string; mismatches: string[]; elements: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const encoder = new TextEncoder();
    const zero = encoder.encode("$1\r\n0\r\n");
    let pending: Buffer = Buffer.alloc(0);
    let header: string | null = null;
    let elements = 0;
    const mismatches: string[] = [];
    let tail = "";
    const timer = setTimeout(() => reject(new Error(`timed out after ${elements} elements`)), 100_000);
    const finish = () => {
      clearTimeout(timer);
      socket.off("data", onData);
      resolve({ header: header ?? "", mismatches, elements, tail });
    };
    const onData = (chunk: Buffer) => {
      const b = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
      let p = 0;
      if (header === null) {
        const lf = b.indexOf(10);
        if (lf < 0) {
          pending = b;
          return;
        }
        header = b.toString("latin1", 0, lf + 1);
        p = lf + 1;
        if (!header.startsWith("*")) {
          finish(); // an error or another reply instead of the array: nothing more to read
          return;
        }
      }
      while (elements < count) {
        const want = expected(elements);
        if (want === "0") {
          if (p + zero.length > b.length) break;
          let same = true;
          for (let k = 0; k < zero.length; k++) if (b[p + k] !== zero[k]) same = false;
          if (!same) {
            const headerEnd = b.indexOf(10, p);
            const lf = headerEnd < 0 ? -1 : b.indexOf(10, headerEnd + 1);
            if (lf < 0) break;
            if (mismatches.length < 10) mismatches.push(`${elements}: ${JSON.stringify(b.toString("latin1", p, lf + 1))}`);
            p = lf + 1;
          } else p += zero.length;
        } else {
          const text = `$${want.length}\r\n${want}\r\n`;
          if (p + text.length > b.length) break;
          const got = b.toString("latin1", p, p + text.length);
          if (got !== text && mismatches.length < 10) mismatches.push(`${elements}: ${JSON.stringify(got)} instead of ${JSON.stringify(text)}`);
          p += text.length;
        }
        elements++;
      }
      if (elements === count) {
        tail += b.toString("latin1", p);
        pending = Buffer.alloc(0);
        if (tail.length >= after.length) finish();
        return;
      }
      pending = Buffer.from(b.subarray(p));
    };
    socket.on("data", onData);
  });
}

describe("VALL of 10 million doubles", () => {
  const COUNT = 10_000_000;
  const values = new Map<number, number>([
    [0, 1.5],
    [1, -2.25],
    [65_535, 1e21],
    [5_000_000, 0.1],
    [COUNT - 1, 42],
  ]);

  test("the 70 MB reply arrives whole and correct, and the replies after it in order", async () => {
    sparseDoubles("ten-million.f64", COUNT * 8, values);
    const setup = await RawSession.open(server.port);
    try {
      expect(await setup.command("MMAP", "big", "ten-million.f64", "double")).toBe(`:${COUNT}\r\n`);
    } finally {
      setup.close();
    }
    const socket = net.connect({ port: server.port, host: "127.0.0.1" });
    try {
      await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
      const after = "+PONG\r\n$2\r\n42\r\n";
      const reading = streamArray(socket, COUNT, (i) => (values.has(i) ? String(values.get(i)) : "0"), after);
      socket.write(Buffer.concat([resp("VALL", "big"), resp("PING"), resp("VGET", "big", String(COUNT - 1))]));
      const report = await reading;
      expect(report.header).toBe(`*${COUNT}\r\n`);
      expect(report.mismatches).toEqual([]);
      expect(report.elements).toBe(COUNT);
      expect(report.tail).toBe(after);
    } finally {
      socket.destroy();
    }
  });
});

describe("a 64 GiB sparse file", () => {
  const BYTES = 64 * 2 ** 30;
  const COUNT = BYTES / 8;
  let file = "";

  afterAll(() => {
    if (file !== "") fs.rmSync(file, { force: true });
  });

  test("VSET and VGET at index 8,000,000,000", async () => {
    file = sparseDoubles("huge.f64", BYTES, new Map([[COUNT - 1, -7.5]]));
    const raw = await RawSession.open(server.port);
    try {
      expect(await raw.command("MMAP", "huge", "huge.f64")).toBe(`:${COUNT}\r\n`);
      expect(await raw.command("VCOUNT", "huge")).toBe(`:${COUNT}\r\n`);
      expect(await raw.command("VSET", "huge", "8000000000", "2.5")).toBe(":1\r\n");
      expect(await raw.command("VGET", "huge", "8000000000")).toBe("$3\r\n2.5\r\n");
      expect(await raw.command("VGET", "huge", "7999999999")).toBe("$1\r\n0\r\n");
      expect(await raw.command("VGET", "huge", "000008000000000")).toBe("$3\r\n2.5\r\n");
      expect(await raw.command("VMGET", "huge", String(COUNT - 1), "8000000000", "0")).toBe("*3\r\n$4\r\n-7.5\r\n$3\r\n2.5\r\n$1\r\n0\r\n");
      expect(await raw.command("VGET", "huge", String(COUNT))).toBe("-ERR index exceeds size\r\n");
      expect(await raw.command("VSET", "huge", String(COUNT), "1")).toBe("-ERR index exceeds size\r\n");

      // The value is in the file, where a C program would look for it.
      const fd = fs.openSync(file, "r");
      try {
        const bytes = new Uint8Array(8);
        fs.readSync(fd, bytes, 0, 8, 8_000_000_000 * 8);
        expect(new Float64Array(bytes.buffer)[0]).toBe(2.5);
      } finally {
        fs.closeSync(fd);
      }

      // Growing and shrinking past 64 GiB.
      expect(await raw.command("VADD", "huge", "3.25")).toBe(":1\r\n");
      expect(await raw.command("VCOUNT", "huge")).toBe(`:${COUNT + 1}\r\n`);
      expect(await raw.command("VPOP", "huge")).toBe("$4\r\n3.25\r\n");
      expect(fs.statSync(file).size).toBe(BYTES);
      expect(await raw.command("DEL", "huge")).toBe(":1\r\n");
    } finally {
      raw.close();
    }
  });
});
