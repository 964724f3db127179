/**
 * Index arguments, shared by the commands that address values by position.
 */
import type { ArgList } from "../args.ts";
import { argInt } from "../args.ts";
import { CommandError, Errors } from "../errors.ts";

/** Argument i as an index in [0, count): `index argument must be integer` or `index exceeds size` otherwise. */
export function indexArg(a: ArgList, i: number, count: number): number {
  const n = argInt(a, i);
  // Beyond 2^53 argInt gives up, but a well-formed integer that large is out of range, not malformed.
  if (n !== n) throw new CommandError(isIntegerText(a, i) ? Errors.indexOutOfRange : Errors.indexNotInteger);
  if (n < 0 || n >= count) throw new CommandError(Errors.indexOutOfRange);
  return n;
}

/** True when argument i is an optional sign and at least one decimal digit (cold path). */
function isIntegerText(a: ArgList, i: number): boolean {
  let p = a.argStart[i];
  const end = a.argEnd[i];
  if (p < end && (a.buf[p] === 45 || a.buf[p] === 43)) p++; // '-' or '+'
  if (p === end) return false;
  for (; p < end; p++) if (a.buf[p] < 48 || a.buf[p] > 57) return false;
  return true;
}
