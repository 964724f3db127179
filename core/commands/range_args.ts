/**
 * LRANGE-style ranges: negative indices count from the end, out-of-range ends are clamped.
 */
import type { ArgList } from "../args.ts";
import { argInt } from "../args.ts";
import { CommandError, Errors } from "../errors.ts";

/** Arguments i and i+1 as a half-open range [start, end) over `count` values (empty when start >= end). */
export function rangeArgs(a: ArgList, i: number, count: number): { start: number; end: number } {
  let start = argInt(a, i);
  let stop = argInt(a, i + 1);
  if (start !== start || stop !== stop) throw new CommandError(Errors.indexNotInteger);
  if (start < 0) start = Math.max(0, count + start);
  if (stop < 0) stop = count + stop;
  const end = Math.min(count, stop + 1);
  return start < end ? { start, end } : { start: 0, end: 0 };
}
