/**
 * Turns a path given by a client into the absolute, symlink-free path mmapd opens, and keeps it
 * inside the data directory unless the server allows any path.
 */
import fs from "node:fs";
import path from "node:path";
import { CommandError, Errors } from "./errors.ts";
import { EINVAL, ENOENT, errnoOf, strerror } from "./libc.ts";

/** `text` with CR and LF replaced by spaces, so a client's path cannot break a one-line reply. */
export function replySafe(text: string): string {
  return text.replace(/[\r\n]/g, " ");
}

/** The error "ERR cannot open '<given>': <strerror(code)>". */
export function cannotOpen(given: string, code: number): CommandError {
  return new CommandError(`ERR cannot open '${replySafe(given)}': ${strerror(code)}`);
}

/** True if `candidate` (absolute, normalized) is `root` or lies below it. */
function isWithin(candidate: string, root: string): boolean {
  if (root === "/") return true;
  return candidate === root || candidate.startsWith(root + "/");
}

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

  let root: string;
  try {
    root = fs.realpathSync(dataDir);
  } catch (error) {
    throw new CommandError(`ERR cannot open the data directory: ${strerror(errnoOf(error))}`);
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
