/**
 * Turns a path given by a client into the absolute, symlink-free path mmapd opens, keeps it
 * inside the data directory unless the server allows any path, and opens it so that nothing
 * changed on disk between the check and the open can lead it outside.
 */
import fs from "node:fs";
import path from "node:path";
import { BindingErrors, CommandError, Errors } from "./errors.ts";
import { EINVAL, ENOENT, ENOSYS, EPERM, EXDEV, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, errno, errnoOf, openat2, strerror } from "./libc.ts";

/** `text` with CR and LF replaced by spaces, so a client's path cannot break a one-line reply. */
export function replySafe(text: string): string {
  return text.replace(/[\r\n]/g, " ");
}

/** The error "ERR cannot open '<given>': <strerror(code)>". */
export function cannotOpen(given: string, code: number): CommandError {
  return new CommandError(BindingErrors.cannotOpen(replySafe(given), strerror(code)));
}

/** True if `candidate` (absolute, normalized) is `root` or lies below it. */
function isWithin(candidate: string, root: string): boolean {
  if (root === "/") return true;
  return candidate === root || candidate.startsWith(root + "/");
}

/**
 * The data directory's real path, resolved once per process: it is fixed at start, and the open
 * itself is confined beneath it by the kernel, so a later swap of it could not lead outside anyway.
 */
const realDataDirs = new Map<string, string>();

/**
 * Returns the absolute path to open for `given`: relative paths resolve under `dataDir`, and
 * symlinks in the parent directories and in the final component are resolved. Throws
 * "ERR path is outside the data directory" if the result is not under the data directory (unless
 * `allowAnyPath`), and "ERR cannot open '<given>': ..." if the parent directory is missing.
 */
export function resolveDataPath(dataDir: string, given: string, allowAnyPath: boolean): string {
  if (given === "") throw cannotOpen(given, ENOENT);
  // A NUL would silently cut the path short in the C calls below.
  if (given.includes("\0")) throw cannotOpen(given, EINVAL);

  let root = realDataDirs.get(dataDir);
  if (root === undefined) {
    try {
      root = fs.realpathSync(dataDir);
    } catch (error) {
      throw new CommandError(BindingErrors.dataDirUnopenable(strerror(errnoOf(error))));
    }
    realDataDirs.set(dataDir, root);
  }

  // `..` is settled lexically first: a path that leaves the data directory on its face is refused
  // before touching the file system, so clients cannot probe which outside directories exist.
  // Both spellings of the data directory count, so an absolute path through a symlinked dataDir
  // still passes this first look; the real check below uses resolved paths only.
  const lexical = path.resolve(root, given);
  if (!allowAnyPath && !isWithin(lexical, root) && !isWithin(lexical, path.resolve(dataDir))) {
    throw new CommandError(Errors.outsideDataDir);
  }

  // The file may not exist yet (create), so resolve its parent, which must exist.
  let parent: string;
  try {
    parent = fs.realpathSync(path.dirname(lexical));
  } catch (error) {
    throw cannotOpen(given, errnoOf(error));
  }
  const name = path.basename(lexical);
  let resolved = name === "" ? parent : path.join(parent, name);

  // A final component that is a symlink is followed here, once, and checked; the open that follows
  // uses O_NOFOLLOW, so a symlink swapped in afterwards is refused rather than followed.
  let isSymlink = false;
  try {
    isSymlink = fs.lstatSync(resolved).isSymbolicLink();
  } catch (error) {
    const code = errnoOf(error);
    if (code !== ENOENT) throw cannotOpen(given, code);
  }
  if (isSymlink) {
    try {
      resolved = fs.realpathSync(resolved);
    } catch (error) {
      throw cannotOpen(given, errnoOf(error));
    }
  }

  if (!allowAnyPath && !isWithin(resolved, root)) throw new CommandError(Errors.outsideDataDir);
  return resolved;
}

/**
 * Throws "ERR '<given>' is not a regular file" if `absPath` (from resolveDataPath) exists and is a
 * directory, device, FIFO or socket. A first look, for callers that want to refuse early (and log
 * it); MappedFile.open checks the file it actually opened.
 */
export function refuseSpecialFile(absPath: string, given: string): void {
  const stats = fs.statSync(absPath, { throwIfNoEntry: false });
  if (stats !== undefined && !stats.isFile()) throw new CommandError(BindingErrors.notRegularFile(replySafe(given)));
}

/** Whether openat2 works here; false once it answered ENOSYS or EPERM (old kernel, seccomp). */
let openat2Works = true;

/**
 * Opens `absPath`, a path resolveDataPath returned, with open(2) `flags` and `mode`. With a `root`
 * (the data directory, as a real path) the kernel resolves the path beneath it and refuses every
 * symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): the path had none when it was checked,
 * so a symlink or `..` trick swapped in since fails with ELOOP or EXDEV instead of being followed,
 * and nothing outside is ever opened. Without a root (--allow-any-path) it is a plain open.
 * Returns the fd, or minus the errno.
 */
export function openDataFile(absPath: string, flags: number, mode: number, root: string | undefined): number {
  if (root === undefined) return openPlain(absPath, flags, mode);
  const relative = path.relative(root, absPath);
  if (relative === "" || relative === ".." || relative.startsWith("../") || path.isAbsolute(relative)) {
    return relative === "" ? openPlain(root, flags, mode) : -EXDEV;
  }
  if (openat2Works) {
    let dirfd: number;
    try {
      dirfd = fs.openSync(root, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (error) {
      return -errnoOf(error);
    }
    try {
      const fd = openat2(dirfd, relative, flags, flags & fs.constants.O_CREAT ? mode : 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS);
      if (fd >= 0) return fd;
      const code = errno();
      if (code !== ENOSYS && code !== EPERM) return -code;
      openat2Works = false;
    } finally {
      fs.closeSync(dirfd);
    }
  }
  // Without openat2: open without following a final symlink, then make sure of what was opened.
  // An intermediate directory swapped for a symlink could lead the open outside; the file is then
  // closed unused. Opening is harmless for the regular files and FIFOs (O_NONBLOCK) mmapd may meet.
  const fd = openPlain(absPath, flags | fs.constants.O_NOFOLLOW, mode);
  if (fd < 0) return fd;
  let opened: string;
  try {
    opened = fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch (error) {
    fs.closeSync(fd);
    return -errnoOf(error);
  }
  if (!isWithin(opened, root)) {
    fs.closeSync(fd);
    return -EXDEV;
  }
  return fd;
}

/** open(2) through `fs`: the fd, or minus the errno. */
function openPlain(file: string, flags: number, mode: number): number {
  try {
    return fs.openSync(file, flags, mode);
  } catch (error) {
    return -errnoOf(error);
  }
}
