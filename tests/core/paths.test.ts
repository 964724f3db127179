/**
 * Tests for core/paths.ts: which client paths resolve inside the data directory, which are refused,
 * the error texts, the early refusal of special files, and the open confined beneath the data
 * directory (openat2), on real directories and symlinks in a fresh temp dir.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ELOOP, ENOENT, EXDEV } from "../../core/libc.ts";
import { openDataFile, refuseSpecialFile, replySafe, resolveDataPath } from "../../core/paths.ts";
import { replyOf } from "../helpers/command_error.ts";

const OUTSIDE = "ERR path is outside the data directory";

let base: string; // temp dir holding data/ and outside/
let data: string; // the data directory (realpath'd)
let outside: string;

beforeEach(() => {
  base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "mmapd-paths-")));
  data = path.join(base, "data");
  outside = path.join(base, "outside");
  fs.mkdirSync(path.join(data, "sub"), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, "secret.bin"), "x");
  fs.writeFileSync(path.join(data, "sub", "real.bin"), "y");
});

afterEach(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

describe("resolveDataPath inside the data directory", () => {
  test("a relative path resolves under the data directory, file missing or not", () => {
    expect(resolveDataPath(data, "a.bin", false)).toBe(path.join(data, "a.bin"));
    expect(resolveDataPath(data, "sub/real.bin", false)).toBe(path.join(data, "sub", "real.bin"));
    expect(resolveDataPath(data, "sub/../a.bin", false)).toBe(path.join(data, "a.bin"));
  });

  test("an absolute path inside the data directory is accepted", () => {
    expect(resolveDataPath(data, path.join(data, "sub", "new.bin"), false)).toBe(path.join(data, "sub", "new.bin"));
  });

  test("a data directory given through a symlink is resolved, and paths through either spelling pass", () => {
    const link = path.join(base, "datalink");
    fs.symlinkSync(data, link);
    expect(resolveDataPath(link, "a.bin", false)).toBe(path.join(data, "a.bin"));
    expect(resolveDataPath(link, path.join(link, "a.bin"), false)).toBe(path.join(data, "a.bin"));
  });

  test("a symlinked directory inside pointing inside is followed", () => {
    fs.symlinkSync(path.join(data, "sub"), path.join(data, "inlink"));
    expect(resolveDataPath(data, "inlink/a.bin", false)).toBe(path.join(data, "sub", "a.bin"));
  });

  test("a symlinked file inside pointing inside resolves to its target", () => {
    fs.symlinkSync(path.join(data, "sub", "real.bin"), path.join(data, "file-link"));
    expect(resolveDataPath(data, "file-link", false)).toBe(path.join(data, "sub", "real.bin"));
  });
});

describe("resolveDataPath outside the data directory", () => {
  test("../x is refused", () => {
    expect(replyOf(() => resolveDataPath(data, "../x", false))).toBe(OUTSIDE);
  });

  test("/etc/passwd is refused", () => {
    expect(replyOf(() => resolveDataPath(data, "/etc/passwd", false))).toBe(OUTSIDE);
  });

  test("a/../../x is refused", () => {
    expect(replyOf(() => resolveDataPath(data, "a/../../x", false))).toBe(OUTSIDE);
  });

  test("an outside path with a missing parent is refused as outside (no probing outside)", () => {
    expect(replyOf(() => resolveDataPath(data, "/no/such/dir/x", false))).toBe(OUTSIDE);
  });

  test("a symlinked directory inside pointing out is refused", () => {
    fs.symlinkSync(outside, path.join(data, "out-dir"));
    expect(replyOf(() => resolveDataPath(data, "out-dir/secret.bin", false))).toBe(OUTSIDE);
    expect(replyOf(() => resolveDataPath(data, "out-dir/new.bin", false))).toBe(OUTSIDE);
  });

  test("a symlinked file inside pointing out is refused", () => {
    fs.symlinkSync(path.join(outside, "secret.bin"), path.join(data, "out-file"));
    expect(replyOf(() => resolveDataPath(data, "out-file", false))).toBe(OUTSIDE);
  });

  test("allowAnyPath lets outside paths through, resolved", () => {
    expect(resolveDataPath(data, "/etc/passwd", true)).toBe(fs.realpathSync("/etc/passwd"));
    expect(resolveDataPath(data, "../outside/secret.bin", true)).toBe(path.join(outside, "secret.bin"));
    fs.symlinkSync(path.join(outside, "secret.bin"), path.join(data, "out-file"));
    expect(resolveDataPath(data, "out-file", true)).toBe(path.join(outside, "secret.bin"));
  });
});

describe("resolveDataPath errors", () => {
  test("a missing parent directory is not created and names the given path", () => {
    expect(replyOf(() => resolveDataPath(data, "nodir/x.bin", false))).toBe("ERR cannot open 'nodir/x.bin': No such file or directory");
    expect(fs.existsSync(path.join(data, "nodir"))).toBe(false);
  });

  test("an empty path is refused", () => {
    expect(replyOf(() => resolveDataPath(data, "", false))).toBe("ERR cannot open '': No such file or directory");
  });

  test("a parent that is a file is refused with the OS reason", () => {
    expect(replyOf(() => resolveDataPath(data, "sub/real.bin/x", false))).toBe("ERR cannot open 'sub/real.bin/x': Not a directory");
  });

  test("a dangling symlink is refused", () => {
    fs.symlinkSync(path.join(data, "gone.bin"), path.join(data, "dangling"));
    expect(replyOf(() => resolveDataPath(data, "dangling", false))).toBe("ERR cannot open 'dangling': No such file or directory");
  });

  test("a NUL byte is refused", () => {
    expect(replyOf(() => resolveDataPath(data, "a\0b", false))).toBe("ERR cannot open 'a\0b': Invalid argument");
  });

  test("CR and LF in a path cannot break the one-line reply", () => {
    expect(replyOf(() => resolveDataPath(data, "no\r\ndir/x", false))).toBe("ERR cannot open 'no  dir/x': No such file or directory");
    expect(replySafe("a\nb\rc")).toBe("a b c");
  });
});

describe("refuseSpecialFile", () => {
  test("regular files and missing paths pass; directories, FIFOs and devices are refused", () => {
    refuseSpecialFile(path.join(data, "sub", "real.bin"), "sub/real.bin");
    refuseSpecialFile(path.join(data, "missing.bin"), "missing.bin");
    expect(replyOf(() => refuseSpecialFile(path.join(data, "sub"), "sub"))).toBe("ERR 'sub' is not a regular file");
    expect(replyOf(() => refuseSpecialFile("/dev/null", "/dev/null"))).toBe("ERR '/dev/null' is not a regular file");
    expect(replyOf(() => refuseSpecialFile(path.join(data, "sub"), "a\r\nb"))).toBe("ERR 'a  b' is not a regular file");
  });
});

describe("openDataFile", () => {
  const { O_RDONLY, O_RDWR, O_CREAT } = fs.constants;

  /** Opens and closes; returns the fd's sign: the errno when negative. */
  function tryOpen(file: string, flags: number, root: string | undefined): number {
    const fd = openDataFile(file, flags, 0o644, root);
    if (fd >= 0) fs.closeSync(fd);
    return Math.min(fd, 0);
  }

  test("a file beneath the root opens; one created there is created", () => {
    expect(tryOpen(path.join(data, "sub", "real.bin"), O_RDONLY, data)).toBe(0);
    expect(tryOpen(path.join(data, "sub", "new.bin"), O_RDWR | O_CREAT, data)).toBe(0);
    expect(fs.existsSync(path.join(data, "sub", "new.bin"))).toBe(true);
    expect(tryOpen(path.join(data, "nope.bin"), O_RDONLY, data)).toBe(-ENOENT);
  });

  test("outside the root, or through any symlink, nothing is opened or created", () => {
    expect(tryOpen(path.join(outside, "secret.bin"), O_RDONLY, data)).toBe(-EXDEV);
    fs.symlinkSync(outside, path.join(data, "out"));
    fs.symlinkSync(path.join(data, "sub"), path.join(data, "in"));
    // A symlink, even one that stays inside, means the path changed since it was resolved.
    expect(tryOpen(path.join(data, "out", "secret.bin"), O_RDONLY, data)).toBe(-ELOOP);
    expect(tryOpen(path.join(data, "out", "made.bin"), O_RDWR | O_CREAT, data)).toBe(-ELOOP);
    expect(tryOpen(path.join(data, "in", "real.bin"), O_RDONLY, data)).toBe(-ELOOP);
    expect(fs.existsSync(path.join(outside, "made.bin"))).toBe(false);
  });

  test("without a root it is a plain open", () => {
    expect(tryOpen(path.join(outside, "secret.bin"), O_RDONLY, undefined)).toBe(0);
  });
});
