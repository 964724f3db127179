/**
 * LRANGE-style ranges: negative indices count from the end, out-of-range ends are clamped.
 */
import type { ArgList } from "../args.ts";
import { integerArg } from "./index_args.ts";

/**
 * Arguments i and i+1 as a half-open range [start, end) over `count` values (empty when start >= end).
 * Integers of any size are indices, as in VGET (see integerArg): beyond either end they are clamped.
 */
export function rangeArgs(a: ArgList, i: number, count: number): { start: number; end: number } {
  let start = integerArg(a, i);
  let stop = integerArg(a, i + 1);
  if (start < 0) start = Math.max(0, count + start);
  if (stop < 0) stop = count + stop;
  const end = Math.min(count, stop + 1);
  return start < end ? { start, end } : { start: 0, end: 0 };
}
