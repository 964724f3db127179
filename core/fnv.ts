/**
 * FNV-1a, 32 bits: the command index's hash of a name and SCAN's order of keys.
 */

/** FNV-1a's starting value. */
export const FNV_OFFSET = 2166136261;

/** Mixes one byte (or char code) into the hash `h`. */
export function fnvMix(h: number, byte: number): number {
  return Math.imul(h ^ byte, 16777619);
}
