/**
 * Byte copies for the codec's hot paths.
 */

/** Copies src[from, to) to dst at dstPos; returns the end position in dst. */
export function copyBytes(dst: Uint8Array, dstPos: number, src: Uint8Array, from: number, to: number): number {
  // A byte loop beats creating a subarray view for the short values that dominate requests and replies.
  if (to - from <= 64) {
    for (let i = from; i < to; i++) dst[dstPos++] = src[i]!;
    return dstPos;
  }
  dst.set(src.subarray(from, to), dstPos);
  return dstPos + (to - from);
}
