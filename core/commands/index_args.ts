/**
 * Index arguments, shared by the commands that address values by position.
 */
import type { ArgList } from "../args.ts";
import { argInt } from "../args.ts";
import { CommandError, Errors } from "../errors.ts";

/** Argument i as an index in [0, count): `index argument must be integer` or `index exceeds size` otherwise. */
export function indexArg(a: ArgList, i: number, count: number): number {
  const n = argInt(a, i);
  if (n !== n) throw new CommandError(Errors.indexNotInteger);
  if (n < 0 || n >= count) throw new CommandError(Errors.indexOutOfRange);
  return n;
}
