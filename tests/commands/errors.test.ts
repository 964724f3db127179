/**
 * Every error path of the command contract, byte for byte over RESP2: MMAP's arguments and
 * binding rules (one writer per file, also across shards), reads and writes on keys that are not
 * bound or are read-only, index rules (leading zeros, negative, out of range, not integers),
 * Redis 8's VADD syntax, wrong arity, and that a refused write leaves the file as it was.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { hashSlot } from "../../core/slots.ts";
import { startServer, type TestServer } from "../helpers/server.ts";
import { err, fileBytes, RawSession } from "./clients.ts";

setDefaultTimeout(30_000);

const WORKERS = 2;
let server: TestServer;
let raw: RawSession;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", String(WORKERS)] });
  raw = await RawSession.open(server.port);
});

afterAll(async () => {
  raw?.close();
  await server?.stop();
  server?.cleanup();
});

const cmd = (...args: string[]) => raw.command(...args);
const int = (n: number | string) => `:${n}\r\n`;
const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;

/** The shard that owns a key. */
function shardOf(key: string): number {
  const bytes = Buffer.from(key);
  return hashSlot(bytes, 0, bytes.length) % WORKERS;
}

/** The first key `prefix<n>` that lives on `shard`. */
function keyOnShard(prefix: string, shard: number): string {
  for (let n = 0; ; n++) if (shardOf(`${prefix}${n}`) === shard) return `${prefix}${n}`;
}

/** Writes a file of doubles into the data directory. */
function writeDoubles(name: string, values: number[]): Uint8Array {
  const bytes = new Uint8Array(new Float64Array(values).buffer);
  fs.writeFileSync(path.join(server.dir, name), bytes);
  return bytes;
}

const UNKNOWN_TYPE = "ERR value_type must be int8, uint8, int16, uint16, int32, uint32, int64, uint64, float, double, long_double or string";

describe("MMAP arguments", () => {
  test("unknown type text", async () => {
    for (const type of ["bogus", "int128", "", "doubles", "str"]) {
      expect(await cmd("MMAP", "badtype", "badtype.bin", type)).toBe(err(UNKNOWN_TYPE));
    }
    expect(await cmd("EXISTS", "badtype")).toBe(int(0));
    expect(fs.existsSync(path.join(server.dir, "badtype.bin"))).toBe(false);
  });

  test("invalid value_size", async () => {
    const cases = [
      ["double", "4"],
      ["double", "16"],
      ["double", "0"],
      ["double", "-8"],
      ["double", "-5", "WRITABLE"],
      ["double", "eight"],
      ["int8", "2"],
      ["uint64", "4"],
      ["long_double", "8"],
      ["string"],
      ["string", "WRITABLE"],
      ["string", "0"],
      ["string", "-1"],
      ["string", "256"],
      ["string", "abc"],
    ];
    for (const args of cases) expect(await cmd("MMAP", "badsize", "badsize.bin", ...args)).toBe(err("ERR invalid value_size"));
    expect(await cmd("EXISTS", "badsize")).toBe(int(0));
  });

  test("size and WRITABLE in either order, any case; without WRITABLE read-only", async () => {
    const forms = [
      ["double", "8", "WRITABLE"],
      ["double", "WRITABLE", "8"],
      ["double", "writable"],
      ["string", "3", "WriTable"],
      ["string", "WRITABLE", "3"],
    ];
    for (const [i, args] of forms.entries()) {
      const key = `order${i}`;
      expect(await cmd("MMAP", key, `${key}.bin`, ...args)).toBe(int(0));
      expect(await cmd("VADD", key, "1")).toBe(int(1));
      expect(await cmd("VSIZE", key)).toBe(int(args[0] === "string" ? 3 : 8));
    }
    fs.writeFileSync(path.join(server.dir, "ro-size.bin"), new Uint8Array(8));
    expect(await cmd("MMAP", "ro-size", "ro-size.bin", "double", "8")).toBe(int(1));
    expect(await cmd("VADD", "ro-size", "1")).toBe(err("ERR The file is not writable"));
  });

  test("repeated or extra arguments are a syntax error", async () => {
    for (const args of [
      ["double", "8", "8"],
      ["double", "WRITABLE", "WRITABLE"],
      ["double", "8", "WRITABLE", "extra"],
      ["string", "4", "5"],
    ]) {
      expect(await cmd("MMAP", "syntax", "syntax.bin", ...args)).toBe(err("ERR syntax error"));
    }
    expect(await cmd("EXISTS", "syntax")).toBe(int(0));
  });

  test("a read-only binding of a missing file names the path and the reason, and creates nothing", async () => {
    expect(await cmd("MMAP", "missing", "x.f64", "double")).toBe(err("ERR cannot open 'x.f64': No such file or directory"));
    expect(await cmd("MMAP", "missing", "x.str", "string", "4")).toBe(err("ERR cannot open 'x.str': No such file or directory"));
    expect(fs.existsSync(path.join(server.dir, "x.f64"))).toBe(false);
    expect(await cmd("EXISTS", "missing")).toBe(int(0));
  });

  test("a writable binding does not create parent directories", async () => {
    expect(await cmd("MMAP", "nodir", "no/such/dir.f64")).toBe(err("ERR cannot open 'no/such/dir.f64': No such file or directory"));
  });

  test("a file whose size is not a multiple of the value size is refused", async () => {
    fs.writeFileSync(path.join(server.dir, "thirteen.bin"), new Uint8Array(13));
    expect(await cmd("MMAP", "t13", "thirteen.bin")).toBe(err("ERR file size 13 is not a multiple of value size 8"));
    expect(await cmd("MMAP", "t13", "thirteen.bin", "double")).toBe(err("ERR file size 13 is not a multiple of value size 8"));
    expect(await cmd("MMAP", "t13", "thirteen.bin", "string", "5")).toBe(err("ERR file size 13 is not a multiple of value size 5"));
    expect(await cmd("MMAP", "t13", "thirteen.bin", "int32", "WRITABLE")).toBe(err("ERR file size 13 is not a multiple of value size 4"));
    expect(fs.statSync(path.join(server.dir, "thirteen.bin")).size).toBe(13);
    expect(await cmd("MMAP", "t13", "thirteen.bin", "int8")).toBe(int(13));
  });

  test("a path outside the data directory is refused", async () => {
    expect(await cmd("MMAP", "outside", "../outside.f64")).toBe(err("ERR path is outside the data directory"));
    expect(await cmd("MMAP", "outside", "/tmp/outside.f64")).toBe(err("ERR path is outside the data directory"));
  });
});

describe("binding rules", () => {
  test("the same key: same path replies the count and changes nothing; another path is refused", async () => {
    expect(await cmd("MMAP", "same", "same.f64")).toBe(int(0));
    expect(await cmd("VADD", "same", "1", "2", "3")).toBe(int(3));
    expect(await cmd("MMAP", "same", "same.f64")).toBe(int(3));
    expect(await cmd("MMAP", "same", "./same.f64")).toBe(int(3));
    expect(await cmd("MMAP", "same", "other.f64")).toBe(err("ERR It is already mapped on another file"));
    expect(await cmd("MMAP", "same", "other.f64", "int8", "WRITABLE")).toBe(err("ERR It is already mapped on another file"));
    expect(fs.existsSync(path.join(server.dir, "other.f64"))).toBe(false);
    expect(await cmd("VFILEPATH", "same")).toBe(bulk("same.f64"));
    expect(await cmd("VALL", "same")).toBe("*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
  });

  for (const where of ["the same shard", "another shard"]) {
    test(`a file bound writable cannot be bound under another key on ${where}`, async () => {
      const tag = where === "the same shard" ? "s" : "o";
      const writer = keyOnShard(`writer-${tag}-`, 0);
      const other = keyOnShard(`other-${tag}-`, where === "the same shard" ? 0 : 1);
      const third = keyOnShard(`third-${tag}-`, where === "the same shard" ? 0 : 1);
      const file = `shared-${tag}.f64`;
      expect(await cmd("MMAP", writer, file)).toBe(int(0));
      expect(await cmd("VADD", writer, "7")).toBe(int(1));
      const refused = err(`ERR file is already bound writable to key '${writer}'`);
      expect(await cmd("MMAP", other, file)).toBe(refused);
      expect(await cmd("MMAP", other, file, "double")).toBe(refused);
      expect(await cmd("MMAP", other, file, "double", "WRITABLE")).toBe(refused);
      expect(await cmd("MMAP", third, `./${file}`, "int8")).toBe(refused);
      expect(await cmd("EXISTS", other, third)).toBe(int(0));
      // Once the writer is gone, the file may be bound again.
      expect(await cmd("DEL", writer)).toBe(int(1));
      expect(await cmd("MMAP", other, file, "double")).toBe(int(1));
      expect(await cmd("MMAP", third, file, "double")).toBe(int(1));
      expect(await cmd("VGET", third, "0")).toBe(bulk("7"));
    });
  }

  test("several read-only bindings may share a file, on both shards", async () => {
    writeDoubles("readers.f64", [1.5, 2.5]);
    const readers = [keyOnShard("reader-", 0), keyOnShard("reader-", 1), keyOnShard("reader-x", 0)];
    for (const key of readers) expect(await cmd("MMAP", key, "readers.f64", "double")).toBe(int(2));
    for (const key of readers) expect(await cmd("VGET", key, "1")).toBe(bulk("2.5"));
  });
});

describe("keys that are not bound, and read-only bindings", () => {
  test("every command on a key that is not bound: You must do MMAP first", async () => {
    const notMapped = err("ERR You must do MMAP first");
    for (const args of [
      ["VGET", "nokey", "0"],
      ["VMGET", "nokey", "0", "1"],
      ["VALL", "nokey"],
      ["VCOUNT", "nokey"],
      ["VTYPE", "nokey"],
      ["VSIZE", "nokey"],
      ["VFILEPATH", "nokey"],
      ["VSET", "nokey", "0", "1"],
      ["VADD", "nokey", "1"],
      ["VPOP", "nokey"],
      ["VCLEAR", "nokey"],
    ]) {
      expect(await cmd(...args)).toBe(notMapped);
    }
    // Also after DEL.
    expect(await cmd("MMAP", "gone", "gone.f64")).toBe(int(0));
    expect(await cmd("DEL", "gone")).toBe(int(1));
    expect(await cmd("VCOUNT", "gone")).toBe(notMapped);
  });

  test("writes on a read-only binding: The file is not writable, and the file is unchanged", async () => {
    const bytes = writeDoubles("ro.f64", [1, 2, 3]);
    expect(await cmd("MMAP", "ro", "ro.f64", "double")).toBe(int(3));
    const notWritable = err("ERR The file is not writable");
    expect(await cmd("VSET", "ro", "0", "9")).toBe(notWritable);
    expect(await cmd("VADD", "ro", "9")).toBe(notWritable);
    expect(await cmd("VPOP", "ro")).toBe(notWritable);
    expect(await cmd("VCLEAR", "ro")).toBe(notWritable);
    expect(fileBytes(server.dir, "ro.f64")).toEqual(bytes);
    expect(await cmd("VCOUNT", "ro")).toBe(int(3));
    expect(await cmd("VMGET", "ro", "2", "0")).toBe("*2\r\n$1\r\n3\r\n$1\r\n1\r\n");
  });
});

describe("indices", () => {
  beforeAll(async () => {
    const values = new Int32Array(5000).map((_, i) => i);
    fs.writeFileSync(path.join(server.dir, "idx.i32"), new Uint8Array(values.buffer));
    expect(await cmd("MMAP", "idx", "idx.i32", "int32", "WRITABLE")).toBe(int(5000));
  });

  test("leading zeros (redis-benchmark's __rand_int__)", async () => {
    expect(await cmd("VGET", "idx", "000000004711")).toBe(int(4711));
    expect(await cmd("VGET", "idx", "000000000000")).toBe(int(0));
    expect(await cmd("VMGET", "idx", "0004711", "00", "000000004999")).toBe(`*3\r\n${int(4711)}${int(0)}${int(4999)}`);
    expect(await cmd("VSET", "idx", "000000004711", "-4711")).toBe(int(1));
    expect(await cmd("VGET", "idx", "4711")).toBe(int(-4711));
    expect(new DataView(fileBytes(server.dir, "idx.i32").buffer).getInt32(4711 * 4, true)).toBe(-4711);
    expect(await cmd("VSET", "idx", "4711", "4711")).toBe(int(1));
  });

  test("negative or out of range: index exceeds size", async () => {
    const exceeds = err("ERR index exceeds size");
    for (const index of ["-1", "-0000001", "5000", "000000005000", "9007199254740991", "99999999999999999999", "-99999999999999999999"]) {
      expect(await cmd("VGET", "idx", index)).toBe(exceeds);
      expect(await cmd("VMGET", "idx", "0", index)).toBe(exceeds);
      expect(await cmd("VSET", "idx", index, "1")).toBe(exceeds);
    }
  });

  test("not an integer: index argument must be integer", async () => {
    const notInteger = err("ERR index argument must be integer");
    for (const index of ["", "abc", "1.5", "1e3", " 1", "1 ", "0x10", "-", "+", "４"]) {
      expect(await cmd("VGET", "idx", index)).toBe(notInteger);
      expect(await cmd("VMGET", "idx", index, "0")).toBe(notInteger);
      expect(await cmd("VSET", "idx", index, "1")).toBe(notInteger);
    }
  });

  test("VMGET checks every index before it reads any", async () => {
    expect(await cmd("VMGET", "idx", "0", "1", "5000", "2")).toBe(err("ERR index exceeds size"));
    expect(await cmd("VMGET", "idx", "0", "1", "x")).toBe(err("ERR index argument must be integer"));
  });

  test("VSET checks every index and value before it writes: the file is unchanged", async () => {
    const before = fileBytes(server.dir, "idx.i32");
    expect(await cmd("VSET", "idx", "0", "-5", "5000", "1")).toBe(err("ERR index exceeds size"));
    expect(await cmd("VSET", "idx", "0", "-5", "1", "1.5")).toBe(err("ERR value must be integer"));
    expect(await cmd("VSET", "idx", "0", "-5", "1", "2147483648")).toBe(err("ERR value must be between -2147483648 and 2147483647"));
    expect(await cmd("VSET", "idx", "0", "-5", "x", "1")).toBe(err("ERR index argument must be integer"));
    expect(fileBytes(server.dir, "idx.i32")).toEqual(before);
    expect(await cmd("VGET", "idx", "0")).toBe(int(0));
  });
});

describe("writes refused as a whole", () => {
  test("VADD with one bad value among many appends nothing", async () => {
    expect(await cmd("MMAP", "whole", "whole.f64")).toBe(int(0));
    expect(await cmd("VADD", "whole", "1", "2")).toBe(int(2));
    const before = fileBytes(server.dir, "whole.f64");
    expect(await cmd("VADD", "whole", "3", "4", "5", "x", "6")).toBe(err("ERR value must be double"));
    expect(await cmd("VADD", "whole", "3", "1e400")).toBe(err("ERR value is out of range for double"));
    expect(await cmd("VADD", "whole", "3", "NaN")).toBe(err("ERR value must be double"));
    expect(fileBytes(server.dir, "whole.f64")).toEqual(before);
    expect(await cmd("VCOUNT", "whole")).toBe(int(2));
  });

  test("integer values: leading zeros and many digits are still integers", async () => {
    expect(await cmd("MMAP", "zeros8", "zeros.i8", "int8", "WRITABLE")).toBe(int(0));
    expect(await cmd("VADD", "zeros8", "007", "-000000000000000000000001", "000000000000000000000127")).toBe(int(3));
    expect(await cmd("VALL", "zeros8")).toBe(`*3\r\n${int(7)}${int(-1)}${int(127)}`);
    expect(await cmd("VADD", "zeros8", "000000000000000000000128")).toBe(err("ERR value must be between -128 and 127"));
    expect(await cmd("VADD", "zeros8", "123456789012345678901234567890")).toBe(err("ERR value must be between -128 and 127"));
    expect(await cmd("VCOUNT", "zeros8")).toBe(int(3));
  });
});

describe("Redis 8's VADD", () => {
  test("REDUCE, FP32 or VALUES first on a numeric type: the clash error, nothing appended", async () => {
    const clash = err("ERR this is mmapd's VADD (append values); Redis 8 vector-set syntax is not supported");
    const types = [["double"], ["float"], ["int8"], ["uint64"], ["long_double"]];
    for (const [i, type] of types.entries()) {
      const key = `vec${i}`;
      expect(await cmd("MMAP", key, `${key}.bin`, ...type, "WRITABLE")).toBe(int(0));
      expect(await cmd("VADD", key, "REDUCE", "3", "VALUES", "3", "0.1", "0.2", "0.3", "element")).toBe(clash);
      expect(await cmd("VADD", key, "FP32", "\x00\x00\x80\x3f", "element")).toBe(clash);
      expect(await cmd("VADD", key, "values", "1", "1", "element")).toBe(clash);
      expect(await cmd("VADD", key, "Reduce", "2")).toBe(clash);
      expect(await cmd("VCOUNT", key)).toBe(int(0));
      expect(fs.statSync(path.join(server.dir, `${key}.bin`)).size).toBe(0);
    }
    // Only the first value is looked at: later ones are plain values.
    expect(await cmd("VADD", "vec0", "1", "REDUCE")).toBe(err("ERR value must be double"));
  });

  test("a string type stores those words as values", async () => {
    expect(await cmd("MMAP", "vecs", "vecs.bin", "string", "8", "WRITABLE")).toBe(int(0));
    expect(await cmd("VADD", "vecs", "REDUCE", "FP32", "VALUES")).toBe(int(3));
    expect(await cmd("VALL", "vecs")).toBe(`*3\r\n${bulk("REDUCE")}${bulk("FP32")}${bulk("VALUES")}`);
  });
});

describe("wrong number of arguments", () => {
  test("each command's arity error names it in lowercase", async () => {
    const cases: [string[], string][] = [
      [["MMAP"], "mmap"],
      [["MMAP", "k"], "mmap"],
      [["VGET", "k"], "vget"],
      [["VgEt", "k", "1", "2"], "vget"],
      [["VMGET", "k"], "vmget"],
      [["VALL"], "vall"],
      [["VALL", "k", "x"], "vall"],
      [["VCOUNT"], "vcount"],
      [["VCOUNT", "k", "x"], "vcount"],
      [["VTYPE"], "vtype"],
      [["VSIZE", "k", "x"], "vsize"],
      [["VFILEPATH"], "vfilepath"],
      [["VSET", "k", "1"], "vset"],
      [["VSET", "k", "1", "2", "3"], "vset"],
      [["vset", "k"], "vset"],
      [["VADD", "k"], "vadd"],
      [["VPOP"], "vpop"],
      [["VPOP", "k", "x"], "vpop"],
      [["VCLEAR"], "vclear"],
      [["VCLEAR", "k", "x"], "vclear"],
    ];
    for (const [args, name] of cases) expect(await cmd(...args)).toBe(err(`ERR wrong number of arguments for '${name}' command`));
  });

  test("arity is checked before the key: even a bound key", async () => {
    expect(await cmd("MMAP", "arity", "arity.f64")).toBe(int(0));
    expect(await cmd("VADD", "arity", "1")).toBe(int(1));
    expect(await cmd("VSET", "arity", "0", "5", "0")).toBe(err("ERR wrong number of arguments for 'vset' command"));
    expect(await cmd("VGET", "arity", "0")).toBe(bulk("1"));
  });
});
