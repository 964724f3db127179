/**
 * Index arguments, shared by the commands that address values by position.
 */
import type { ArgList } from "../args.ts";
import { argInt } from "../args.ts";
import { CommandError, Errors } from "../errors.ts";

/**
 * Argument i as an index in [0, count). Otherwise: `index argument must be integer` when it is not
 * one, the negative-index error below 0, `index exceeds size` at count or beyond.
 */
export function indexArg(a: ArgList, i: number, count: number): number {
  const n = integerArg(a, i);
  if (n < 0) throw new CommandError(Errors.indexNegative);
  if (n >= count) throw new CommandError(Errors.indexOutOfRange);
  return n;
}

/**
 * Argument i as an integer, for indices: any well-formed decimal integer is one, whatever its
 * size. Beyond 2^53 argInt gives up; such an integer is then ±Infinity, which every index rule
 * handles as "beyond either end" (out of range for VGET, clamped by VRANGE).
 */
export function integerArg(a: ArgList, i: number): number {
  const n = argInt(a, i);
  if (n === n) return n;
  if (!isIntegerText(a, i)) throw new CommandError(Errors.indexNotInteger);
  return a.buf[a.argStart[i]] === 45 /* - */ ? -Infinity : Infinity;
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
