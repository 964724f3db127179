/**
 * MMAP, in-process and byte for byte: its arguments (types and their aliases, sizes, WRITABLE or
 * READONLY, in either order, the blog form), the files it refuses (missing, a size that is not a
 * multiple of the value size, outside the data directory) and the binding rules one shard keeps:
 * the same key twice (with the same arguments, or refused naming what differs), one writer per
 * file, several readers; and _BIND, the restore at start, which never creates a file, and whose
 * failed binding stays a key that answers why until MMAP or DEL. Writer claims across shards are
 * the server's: tests/server/routing.test.ts; failed bindings across a restart:
 * tests/durability/restart.test.ts.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import type { CatalogEvent } from "../../core/shard.ts";
import { bulk, err, int, nil, shardHarness } from "../helpers/harness.ts";

const h = shardHarness();
const run = h.run;

const UNKNOWN_TYPE =
  "ERR value_type must be int8, uint8, int16, uint16, int32, uint32, int64, uint64, float, double, long_double or string";

describe("MMAP arguments", () => {
  test("unknown type text", () => {
    for (const type of ["bogus", "int128", "", "doubles", "str"]) {
      expect(run(["MMAP", "badtype", "badtype.bin", type])).toBe(err(UNKNOWN_TYPE));
    }
    expect(run(["EXISTS", "badtype"])).toBe(int(0));
    expect(fs.existsSync(h.file("badtype.bin"))).toBe(false);
  });

  test("invalid value_size", () => {
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
    ];
    for (const args of cases) expect(run(["MMAP", "badsize", "badsize.bin", ...args])).toBe(err("ERR invalid value_size"));
    // A string's size is required: the error says so, and its range.
    for (const args of [
      ["string"],
      ["string", "WRITABLE"],
      ["string", "READONLY"],
      ["string", "0"],
      ["string", "-1"],
      ["string", "256"],
      ["string", "abc"],
    ]) {
      expect(run(["MMAP", "badsize", "badsize.bin", ...args])).toBe(
        err("ERR invalid value_size: string needs a size from 1 to 255 (MMAP key path string size)"),
      );
    }
    expect(run(["EXISTS", "badsize"])).toBe(int(0));
  });

  test("size and WRITABLE in either order, any case; without WRITABLE read-only", () => {
    const forms = [
      ["double", "8", "WRITABLE"],
      ["double", "WRITABLE", "8"],
      ["double", "writable"],
      ["string", "3", "WriTable"],
      ["string", "WRITABLE", "3"],
    ];
    for (const [i, args] of forms.entries()) {
      const key = `order${i}`;
      expect(run(["MMAP", key, `${key}.bin`, ...args])).toBe(int(0));
      expect(run(["VADD", key, "1"])).toBe(int(1));
      expect(run(["VSIZE", key])).toBe(int(args[0] === "string" ? 3 : 8));
    }
    fs.writeFileSync(h.file("ro-size.bin"), new Uint8Array(8));
    expect(run(["MMAP", "ro-size", "ro-size.bin", "double", "8"])).toBe(int(1));
    expect(run(["VADD", "ro-size", "1"])).toBe(err("ERR The file is not writable"));
  });

  test("READONLY is the explicit default, in any case and either order with the size", () => {
    fs.writeFileSync(h.file("t.f64"), new Uint8Array(16));
    expect(run(["MMAP", "t", "t.f64", "double", "READONLY"])).toBe(int(2));
    expect(run(["MMAP", "t2", "t.f64", "double", "readonly", "8"])).toBe(int(2));
    expect(run(["MMAP", "t3", "t.f64", "double", "8", "ReadOnly"])).toBe(int(2));
    expect(run(["VADD", "t", "1"])).toBe(err("ERR The file is not writable"));
    for (const args of [
      ["READONLY", "WRITABLE"],
      ["WRITABLE", "READONLY"],
      ["READONLY", "READONLY"],
      ["8", "READONLY", "x"],
    ]) {
      expect(run(["MMAP", "t4", "t.f64", "double", ...args])).toBe(err("ERR syntax error"));
    }
    // A missing file stays an error when read-only, whether said or not.
    expect(run(["MMAP", "m", "missing.f64", "double", "READONLY"])).toBe(err("ERR cannot open 'missing.f64': No such file or directory"));
  });

  test("repeated or extra arguments are a syntax error", () => {
    for (const args of [
      ["double", "8", "8"],
      ["double", "WRITABLE", "WRITABLE"],
      ["double", "8", "WRITABLE", "extra"],
      ["string", "4", "5"],
    ]) {
      expect(run(["MMAP", "syntax", "syntax.bin", ...args])).toBe(err("ERR syntax error"));
    }
    expect(run(["EXISTS", "syntax"])).toBe(int(0));
  });

  test("type names: the aliases float32 and float64, any case, bind as float and double", () => {
    fs.writeFileSync(h.file("alias.bin"), new Uint8Array(16));
    expect(run(["MMAP", "alias32", "alias.bin", "float32"])).toBe(int(4));
    expect(run(["VTYPE", "alias32"])).toBe(bulk("float"));
    expect(run(["VSIZE", "alias32"])).toBe(int(4));
    expect(run(["MMAP", "alias64", "alias.bin", "FLOAT64", "8"])).toBe(int(2));
    expect(run(["VTYPE", "alias64"])).toBe(bulk("double"));
    expect(run(["MMAP", "aliasLD", "alias.bin", "Long_Double"])).toBe(int(1));
    expect(run(["VTYPE", "aliasLD"])).toBe(bulk("long_double"));
  });

  test("MMAP key path (blog form) is a writable double file", () => {
    expect(run(["MMAP", "blog", "blog.f64"], 3)).toBe(int(0));
    expect(run(["VTYPE", "blog"], 3)).toBe(bulk("double"));
    expect(run(["VSIZE", "blog"], 3)).toBe(int(8));
    expect(run(["VADD", "blog", "0.5"], 3)).toBe(int(1));
    expect(new Uint8Array(fs.readFileSync(h.file("blog.f64")))).toEqual(new Uint8Array(new Float64Array([0.5]).buffer));
  });

  test("wrong number of arguments names mmap", () => {
    for (const args of [["MMAP"], ["MMAP", "k"]]) expect(run(args)).toBe(err("ERR wrong number of arguments for 'mmap' command"));
  });
});

describe("files MMAP refuses", () => {
  test("a read-only binding of a missing file names the path and the reason, and creates nothing", () => {
    expect(run(["MMAP", "missing", "x.f64", "double"])).toBe(err("ERR cannot open 'x.f64': No such file or directory"));
    expect(run(["MMAP", "missing", "x.str", "string", "4"])).toBe(err("ERR cannot open 'x.str': No such file or directory"));
    expect(fs.existsSync(h.file("x.f64"))).toBe(false);
    expect(run(["EXISTS", "missing"])).toBe(int(0));
  });

  test("a writable binding does not create parent directories", () => {
    expect(run(["MMAP", "nodir", "no/such/dir.f64"])).toBe(err("ERR cannot open 'no/such/dir.f64': No such file or directory"));
  });

  test("a file whose size is not a multiple of the value size is refused", () => {
    fs.writeFileSync(h.file("thirteen.bin"), new Uint8Array(13));
    expect(run(["MMAP", "t13", "thirteen.bin"])).toBe(err("ERR file size 13 is not a multiple of value size 8"));
    expect(run(["MMAP", "t13", "thirteen.bin", "double"])).toBe(err("ERR file size 13 is not a multiple of value size 8"));
    expect(run(["MMAP", "t13", "thirteen.bin", "string", "5"])).toBe(err("ERR file size 13 is not a multiple of value size 5"));
    expect(run(["MMAP", "t13", "thirteen.bin", "int32", "WRITABLE"])).toBe(err("ERR file size 13 is not a multiple of value size 4"));
    expect(fs.statSync(h.file("thirteen.bin")).size).toBe(13);
    expect(run(["MMAP", "t13", "thirteen.bin", "int8"])).toBe(int(13));
  });

  test("a path outside the data directory is refused", () => {
    expect(run(["MMAP", "outside", "../outside.f64"])).toBe(err("ERR path is outside the data directory"));
    expect(run(["MMAP", "outside", "/tmp/outside.f64"])).toBe(err("ERR path is outside the data directory"));
  });
});

describe("binding rules", () => {
  test("the same key: same path replies the count and changes nothing; another path is refused", () => {
    expect(run(["MMAP", "same", "same.f64"])).toBe(int(0));
    expect(run(["VADD", "same", "1", "2", "3"])).toBe(int(3));
    expect(run(["MMAP", "same", "same.f64"])).toBe(int(3));
    expect(run(["MMAP", "same", "./same.f64"])).toBe(int(3));
    expect(run(["MMAP", "same", "other.f64"])).toBe(err("ERR It is already mapped on another file"));
    expect(run(["MMAP", "same", "other.f64", "int8", "WRITABLE"])).toBe(err("ERR It is already mapped on another file"));
    expect(fs.existsSync(h.file("other.f64"))).toBe(false);
    expect(run(["VFILEPATH", "same"])).toBe(bulk("same.f64"));
    expect(run(["VALL", "same"])).toBe("*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
  });

  test("the same key with the same arguments (aliases, size given or not, READONLY spelled out) replies the count", () => {
    fs.writeFileSync(h.file("temps.f32"), new Uint8Array(8));
    expect(run(["MMAP", "temps", "temps.f32", "float"])).toBe(int(2));
    for (const args of [["float"], ["float32"], ["FLOAT", "4"], ["float", "READONLY"], ["float", "readonly", "4"]]) {
      expect(run(["MMAP", "temps", "./temps.f32", ...args])).toBe(int(2));
    }
  });

  test("the same key with another type, size or mode: refused, naming the binding and what differs; nothing changes", () => {
    const bound = "ERR key 'temps' is already bound as float (4 bytes, read-only) to 'temps.f32'; DEL it first to bind it";
    expect(run(["MMAP", "temps", "temps.f32", "int32"])).toBe(err(`${bound} as int32`));
    expect(run(["MMAP", "temps", "temps.f32", "float", "WRITABLE"])).toBe(err(`${bound} writable`));
    expect(run(["MMAP", "temps", "temps.f32", "uint8", "WRITABLE"])).toBe(err(`${bound} as uint8, writable`));
    // The blog form is a writable double.
    expect(run(["MMAP", "temps", "temps.f32"])).toBe(err(`${bound} as double, writable`));
    expect(run(["VTYPE", "temps"])).toBe(bulk("float"));
    expect(run(["MMAP", "names", "names.bin", "string", "16", "WRITABLE"])).toBe(int(0));
    expect(run(["MMAP", "names", "names.bin", "string", "8", "WRITABLE"])).toBe(
      err("ERR key 'names' is already bound as string (16 bytes, writable) to 'names.bin'; DEL it first to bind it as string (8 bytes)"),
    );
    expect(run(["MMAP", "names", "names.bin", "string", "16", "READONLY"])).toBe(
      err("ERR key 'names' is already bound as string (16 bytes, writable) to 'names.bin'; DEL it first to bind it read-only"),
    );
    // Another path as well: the module's text, as before.
    expect(run(["MMAP", "temps", "other.f32", "int32"])).toBe(err("ERR It is already mapped on another file"));
  });

  test("after DEL the key binds with the new arguments", () => {
    expect(run(["DEL", "temps"])).toBe(int(1));
    expect(run(["MMAP", "temps", "temps.f32", "int32"])).toBe(int(2));
    expect(run(["VTYPE", "temps"])).toBe(bulk("int32"));
  });

  test("the type is checked before the binding in place", () => {
    expect(run(["MMAP", "b", "b.f64"])).toBe(int(0));
    expect(run(["MMAP", "b", "b.f64", "bogus"])).toStartWith("-ERR value_type must be");
    expect(run(["MMAP", "b", "other.f64", "bogus"])).toStartWith("-ERR value_type must be");
  });

  test("a file bound writable cannot be bound under another key on the same shard", () => {
    const [writer, other, third, file] = ["writer-s-0", "other-s-0", "third-s-0", "shared-s.f64"];
    expect(run(["MMAP", writer, file])).toBe(int(0));
    expect(run(["VADD", writer, "7"])).toBe(int(1));
    const refused = err(`ERR file is already bound writable to key '${writer}'`);
    expect(run(["MMAP", other, file])).toBe(refused);
    expect(run(["MMAP", other, file, "double"])).toBe(refused);
    expect(run(["MMAP", other, file, "double", "WRITABLE"])).toBe(refused);
    expect(run(["MMAP", third, `./${file}`, "int8"])).toBe(refused);
    expect(run(["EXISTS", other, third])).toBe(int(0));
    // Once the writer is gone, the file may be bound again.
    expect(run(["DEL", writer])).toBe(int(1));
    expect(run(["MMAP", other, file, "double"])).toBe(int(1));
    expect(run(["MMAP", third, file, "double"])).toBe(int(1));
    expect(run(["VGET", third, "0"])).toBe(bulk("7"));
  });

  test("several read-only bindings may share a file", () => {
    fs.writeFileSync(h.file("readers.f64"), new Uint8Array(new Float64Array([1.5, 2.5]).buffer));
    const readers = ["reader-0", "reader-1", "reader-x0"];
    for (const key of readers) expect(run(["MMAP", key, "readers.f64", "double"])).toBe(int(2));
    for (const key of readers) expect(run(["VGET", key, "1"])).toBe(bulk("2.5"));
  });

  test("after DEL the key is not bound: You must do MMAP first", () => {
    expect(run(["MMAP", "gone", "gone.f64"])).toBe(int(0));
    expect(run(["DEL", "gone"])).toBe(int(1));
    expect(run(["VCOUNT", "gone"])).toBe(err("ERR You must do MMAP first"));
  });
});

describe("_BIND (restoring a binding at start)", () => {
  test("binds as the registry says, and a file that went missing is reported, not created", () => {
    fs.writeFileSync(h.file("kept.i16"), new Uint8Array(new Int16Array([-2, 3]).buffer));
    expect(run(["_BIND", "kept", "kept.i16", "int16", "2", "ro"])).toBe(int(2));
    expect(run(["VALL", "kept"])).toBe(`*2\r\n${int(-2)}${int(3)}`);
    expect(run(["VADD", "kept", "1"])).toBe(err("ERR The file is not writable"));
    expect(run(["_BIND", "lost", "lost.f64", "double", "8", "rw"])).toBe(err("ERR cannot open 'lost.f64': No such file or directory"));
    expect(fs.existsSync(h.file("lost.f64"))).toBe(false);
  });
});

describe("a binding that failed at start is a key that answers why", () => {
  // A shard of its own: DBSIZE, KEYS and FLUSHALL see only this binding.
  const f = shardHarness();
  const events: CatalogEvent[] = [];
  const failedY = "ERR binding of 'y' failed at start: cannot open 'y.f64': No such file or directory; MMAP it again or DEL it";

  beforeAll(() => {
    f.shard.options.onCatalogChange = (e) => events.push(e);
  });

  test("the restore of a missing file fails, and the key stays", () => {
    expect(f.run(["_bind", "y", "y.f64", "double", "8", "rw"])).toBe(err("ERR cannot open 'y.f64': No such file or directory"));
    expect(fs.existsSync(f.file("y.f64"))).toBe(false);
    expect(events).toEqual([]); // the registry holds it already
    for (const command of [
      ["VGET", "y", "0"],
      ["VMGET", "y", "0"],
      ["VALL", "y"],
      ["VCOUNT", "y"],
      ["VTYPE", "y"],
      ["VADD", "y", "1"],
      ["VSET", "y", "0", "1"],
      ["VPOP", "y"],
      ["VRANGE", "y", "0", "-1"],
      ["VSTATS", "y"],
      ["LLEN", "y"],
    ]) {
      expect(f.run(command)).toBe(err(failedY));
    }
    expect(f.run(["EXISTS", "y", "y", "nokey"])).toBe(int(2));
    expect(f.run(["TYPE", "y"])).toBe("+list\r\n");
    expect(f.run(["DBSIZE"])).toBe(int(1));
    expect(f.run(["KEYS", "*"])).toBe(`*1\r\n${bulk("y")}`);
    expect(f.run(["SCAN", "0"])).toBe(`*2\r\n${bulk("0")}*1\r\n${bulk("y")}`);
    expect(f.run(["MEMORY", "USAGE", "y"])).toBe(int(1 + 256));
  });

  test("VINFO shows the binding and why it failed", () => {
    const fields = (proto: 2 | 3) =>
      `${bulk("path")}${bulk("y.f64")}${bulk("type")}${bulk("double")}${bulk("size")}${int(8)}${bulk("count")}${nil(proto)}` +
      `${bulk("writable")}${int(1)}${bulk("bytes")}${nil(proto)}${bulk("shard")}${int(0)}${bulk("failed")}${bulk("cannot open 'y.f64': No such file or directory")}`;
    expect(f.run(["VINFO", "y"])).toBe(`*16\r\n${fields(2)}`);
    expect(f.run(["VINFO", "y"], 3)).toBe(`%8\r\n${fields(3)}`);
  });

  test("a failed MMAP leaves it failed; a successful one replaces it", () => {
    expect(f.run(["MMAP", "y", "y.f64", "double"])).toBe(err("ERR cannot open 'y.f64': No such file or directory"));
    expect(f.run(["VGET", "y", "0"])).toBe(err(failedY));
    // Any arguments: the failed binding holds nothing to keep.
    expect(f.run(["MMAP", "y", "y.i8", "int8", "WRITABLE"])).toBe(int(0));
    expect(events).toEqual([{ op: "bind", key: "y", path: "y.i8", type: "int8", size: 1, writable: true }]);
    expect(f.run(["VADD", "y", "5"])).toBe(int(1));
    expect(f.run(["VGET", "y", "0"])).toBe(int(5));
  });

  test("DEL forgets it and counts it; the key is then gone", () => {
    expect(f.run(["_bind", "z", "z.f64", "double", "8", "ro"])).toBe(err("ERR cannot open 'z.f64': No such file or directory"));
    events.length = 0;
    expect(f.run(["DEL", "z", "nokey"])).toBe(int(1));
    expect(events).toEqual([{ op: "unbind", key: "z" }]);
    expect(f.run(["EXISTS", "z"])).toBe(int(0));
    expect(f.run(["VGET", "z", "0"])).toBe(err("ERR You must do MMAP first"));
    expect(f.run(["_bind", "w", "w.f64", "double", "8", "ro"])).toStartWith("-ERR cannot open");
    expect(f.run(["FLUSHALL"])).toBe("+OK\r\n");
    expect(f.run(["DBSIZE"])).toBe(int(0));
  });

  test("a file whose size no longer fits its type fails the same way", () => {
    fs.writeFileSync(f.file("odd.f64"), new Uint8Array(12));
    expect(f.run(["_bind", "odd", "odd.f64", "double", "8", "ro"])).toBe(err("ERR file size 12 is not a multiple of value size 8"));
    expect(f.run(["VALL", "odd"])).toBe(
      err("ERR binding of 'odd' failed at start: file size 12 is not a multiple of value size 8; MMAP it again or DEL it"),
    );
    expect(f.run(["MMAP", "odd", "odd.f64", "int32"])).toBe(int(3));
  });
});
