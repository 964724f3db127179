/**
 * MMAP: binds a key to a file.
 *
 *   MMAP key path                                   blog form: double, writable, file created if missing
 *   MMAP key path type [size] [WRITABLE|READONLY]   module form: read-only unless WRITABLE
 *
 * Replies with the number of values in the file. Binding a bound key again with the same
 * arguments replies the count; with others it is refused, naming what differs.
 */
import type { ArgList } from "../args.ts";
import { KEY_AT_1 } from "../command_spec.ts";
import { argInt, argIs, argString } from "../args.ts";
import { BindingErrors, CommandError, Errors } from "../errors.ts";
import { MappedFile } from "../mapped_file.ts";
import { resolveDataPath } from "../paths.ts";
import type { Shard, ShardCommand } from "../shard.ts";
import { Binding, FailedBinding } from "../shard.ts";
import type { ValueType } from "../value_types.ts";
import { DEFAULT_TYPE, VALUE_TYPES } from "../value_types.ts";

/** What an MMAP asks for, once its arguments are checked. */
export interface BindSpec {
  key: string;
  path: string;
  type: ValueType;
  width: number;
  writable: boolean;
}

/** The largest width of a `string` type. */
const MAX_STRING_WIDTH = 255;

/** Parses `MMAP key path [type [size] [WRITABLE|READONLY]]` (argument 0 is the name). Throws on bad input. */
export function parseMmapArgs(a: ArgList, key: string): BindSpec {
  const path = argString(a, 2);
  if (a.argc === 3) return { key, path, type: DEFAULT_TYPE, width: DEFAULT_TYPE.width, writable: true };
  const type = VALUE_TYPES.get(argString(a, 3).toLowerCase());
  if (type === undefined) throw new CommandError(BindingErrors.unknownType);
  let size = -1;
  let mode: "writable" | "readonly" | undefined;
  for (let i = 4; i < a.argc; i++) {
    const word = argIs(a, i, "writable") ? "writable" : argIs(a, i, "readonly") ? "readonly" : undefined;
    if (word !== undefined && mode === undefined) mode = word;
    else if (word === undefined && size < 0) {
      size = argInt(a, i);
      // A negative size is no size at all: refused, not taken as "size not given".
      if (!(size >= 0)) throw new CommandError(type.width === 0 ? BindingErrors.stringSize(MAX_STRING_WIDTH) : BindingErrors.invalidSize);
    } else throw new CommandError(Errors.syntax);
  }
  let width = type.width;
  if (type.width === 0) {
    if (size < 1 || size > MAX_STRING_WIDTH) throw new CommandError(BindingErrors.stringSize(MAX_STRING_WIDTH));
    width = size;
  } else if (size >= 0 && size !== type.width) throw new CommandError(BindingErrors.invalidSize);
  return { key, path, type, width, writable: mode === "writable" };
}

const byteCount = (n: number) => `${n} byte${n === 1 ? "" : "s"}`;

/** How a binding is described in errors: `float (4 bytes, read-only)`. */
function describe(typeName: string, width: number, writable: boolean): string {
  return `${typeName} (${byteCount(width)}, ${writable ? "writable" : "read-only"})`;
}

/**
 * The error for an MMAP of a bound key, on the same file, with another type, size or mode: it
 * names the binding in place and what the MMAP asked for that differs. Null when nothing differs.
 */
function rebindError(existing: Binding, spec: BindSpec): string | null {
  const typeDiffers = existing.type !== spec.type || existing.width !== spec.width;
  const modeDiffers = existing.writable !== spec.writable;
  if (!typeDiffers && !modeDiffers) return null;
  const wanted: string[] = [];
  if (typeDiffers) wanted.push(spec.type.width === 0 ? `as ${spec.type.name} (${byteCount(spec.width)})` : `as ${spec.type.name}`);
  if (modeDiffers) wanted.push(spec.writable ? "writable" : "read-only");
  const key = Buffer.from(existing.key, "latin1").toString("utf8");
  return Errors.alreadyBound(key, describe(existing.type.name, existing.width, existing.writable), existing.displayPath, wanted.join(", "));
}

/**
 * Binds `spec` in `shard`: the rules of COMMANDS.md "Binding" that one shard can check, then the
 * file is opened and mapped. `create` is false when bindings are restored at start, so a file
 * that went missing is reported instead of recreated empty.
 */
function bindFile(shard: Shard, spec: BindSpec, create: boolean): Binding {
  const absPath = resolveDataPath(shard.options.dataDir, spec.path, shard.options.allowAnyPath);
  const existing = shard.bindings.get(spec.key);
  // A binding that failed at start is replaced by whatever MMAP binds; it stays if this MMAP fails too.
  if (existing instanceof Binding) {
    if (existing.absPath !== absPath) throw new CommandError(BindingErrors.otherFile);
    const differs = rebindError(existing, spec);
    if (differs !== null) throw new CommandError(differs);
    // The same binding: nothing changes, unless another process resized the file; then it is mapped anew.
    if (!existing.file.changedOutside()) return existing;
    shard.unbind(spec.key);
  }
  const writer = shard.writers.get(absPath);
  if (writer !== undefined) throw new CommandError(BindingErrors.boundWritable(Buffer.from(writer.key, "latin1").toString("utf8")));
  const root = shard.options.allowAnyPath ? undefined : shard.options.dataDir;
  const file = MappedFile.open(absPath, { writable: spec.writable, create, valueSize: spec.width, displayPath: spec.path, root });
  const binding = new Binding(spec.key, file, spec.type, spec.width, spec.path, absPath);
  shard.bind(binding);
  return binding;
}

export const mmapCommand: ShardCommand = {
  name: "mmap",
  arity: -3,
  route: "key",
  flags: ["write"],
  keys: KEY_AT_1,
  group: "mmap",
  since: "0.1.0",
  summary: "Binds a key to a file of fixed-width values and returns the number of values in it.",
  complexity: "O(1)",
  syntax: "key path [type [size] [WRITABLE|READONLY]]",
  run(shard, a, w) {
    const key = shard.keyOf(a, 1);
    const spec = parseMmapArgs(a, key);
    const binding = bindFile(shard, spec, true);
    w.integer(binding.file.count);
  },
};

/**
 * `_BIND key path type size rw|ro`: restores a binding at start or after a shard restart.
 * Never creates a file. A binding that cannot be restored stays a key that answers why (see
 * FailedBinding), and the error goes back to the server, which logs it. Internal: the server
 * sends it, clients cannot.
 */
export const restoreBindingCommand: ShardCommand = {
  name: "_bind",
  arity: 6,
  route: "key",
  flags: [],
  keys: KEY_AT_1,
  group: "internal",
  since: "0.1.0",
  summary: "Restores a binding at start or after a shard restart (sent by the server only).",
  complexity: "O(1)",
  syntax: "key path type size mode",
  internal: true,
  run(shard, a, w) {
    const key = shard.keyOf(a, 1);
    const path = argString(a, 2);
    const typeName = argString(a, 3);
    const width = argInt(a, 4);
    const writable = argIs(a, 5, "rw");
    try {
      const type = VALUE_TYPES.get(typeName);
      if (type === undefined) throw new CommandError(BindingErrors.unknownType);
      w.integer(bindFile(shard, { key, path, type, width, writable }, false).file.count);
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      shard.keepFailed(new FailedBinding(key, path, typeName, width, writable, e.reply.replace(/^ERR /, "")));
      throw e;
    }
  },
};
