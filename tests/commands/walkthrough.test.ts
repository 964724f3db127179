/**
 * The RedisMMap walkthrough, replayed step by step with redis-cli: a double file grows with VADD,
 * is read and written, survives a restart, outlives its key (DEL never touches the file), is
 * bound again under another key and cleared; then a file written by the test is bound and read.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { hasTool, redisCli, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(60_000);

const haveCli = hasTool("redis-cli");

test.skipIf(!haveCli)("the walkthrough with redis-cli (apt package redis-tools)", async () => {
  const first = await startServer({ args: ["--workers", "2"] });
  let server: TestServer = first;
  const dir = first.dir;
  const cli = (...args: string[]) => redisCli(server.port, ...args);
  const size = (name: string) => fs.statSync(path.join(dir, name)).size;
  const doubles = (name: string) => [...new Float64Array(new Uint8Array(fs.readFileSync(path.join(dir, name))).buffer)];
  try {
    expect(cli("MMAP", "db", "file.mmap")).toBe("0");
    expect(size("file.mmap")).toBe(0);
    expect(cli("VADD", "db", "0.0")).toBe("1");
    expect(size("file.mmap")).toBe(8);
    for (const v of ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]) expect(cli("VADD", "db", v)).toBe("1");
    expect(cli("VCOUNT", "db")).toBe("10");
    expect(size("file.mmap")).toBe(80);
    expect(cli("VADD", "db", "1.0", "1.1", "1.2", "1.3", "1.4", "1.5")).toBe("6");
    expect(cli("VCOUNT", "db")).toBe("16");
    expect(cli("VGET", "db", "5")).toBe("0.5");
    expect(cli("VMGET", "db", "1", "2", "3", "4", "5")).toBe("0.1\n0.2\n0.3\n0.4\n0.5");
    expect(cli("VSET", "db", "5", "50", "10", "100")).toBe("2");
    expect(cli("VPOP", "db")).toBe("1.5");
    expect(cli("VCOUNT", "db")).toBe("15");
    const values = [0, 0.1, 0.2, 0.3, 0.4, 50, 0.6, 0.7, 0.8, 0.9, 100, 1.1, 1.2, 1.3, 1.4];
    expect(size("file.mmap")).toBe(120);
    expect(doubles("file.mmap")).toEqual(values);

    // Restart on the same data directory: the binding comes back.
    expect(await server.stop()).toBe(0);
    server = await startServer({ dir, args: ["--workers", "2"] });
    expect(cli("VCOUNT", "db")).toBe("15");
    expect(cli("VALL", "db")).toBe(values.map(String).join("\n"));

    // DEL unbinds; the file stays as it was.
    expect(cli("DEL", "db")).toBe("1");
    expect(cli("KEYS", "*")).toBe("");
    expect(cli("DBSIZE")).toBe("0");
    expect(size("file.mmap")).toBe(120);
    expect(doubles("file.mmap")).toEqual(values);

    expect(cli("MMAP", "dba", "file.mmap")).toBe("15");
    expect(cli("VGET", "dba", "5")).toBe("50");
    expect(cli("VCLEAR", "dba")).toBe("15");
    expect(size("file.mmap")).toBe(0);
    expect(cli("VCOUNT", "dba")).toBe("0");

    // A file of 100 doubles made outside mmapd.
    fs.writeFileSync(path.join(dir, "file2.mmap"), new Uint8Array(Float64Array.from({ length: 100 }, (_, i) => i).buffer));
    expect(cli("MMAP", "db", "file2.mmap")).toBe("100");
    expect(cli("VMGET", "db", "1", "3", "5", "7", "9")).toBe("1\n3\n5\n7\n9");
    expect(cli("VGET", "db", "99")).toBe("99");
    expect(cli("KEYS", "*").split("\n").sort()).toEqual(["db", "dba"]);
  } finally {
    await server.stop();
    if (server !== first) await first.stop();
    first.cleanup();
  }
});
