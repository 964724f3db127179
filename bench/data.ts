/**
 * The benchmark's data: arbitrary doubles, as users' files hold them. A seeded generator gives
 * the same standard-normal values on every run and every machine; mmapd gets them as a file of
 * float64 and Redis gets the same numbers as text (`String(x)`, the shortest round-trip form that
 * mmapd also prints), so both servers send the same bytes for the same value.
 */
import fs from "node:fs";

/** The seed of every value the benchmark stores. */
const SEED = 0x6d6d6170;

/** mulberry32: a small 32-bit generator, good enough for test data and identical everywhere. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A seeded source of uniform doubles in (0, 1) with all 53 bits of mantissa filled. */
export class SeededRandom {
  private readonly next32: () => number;

  constructor(seed = SEED) {
    this.next32 = mulberry32(seed);
  }

  /** Uniform in (0, 1): never 0, so that a logarithm of it is finite. */
  uniform(): number {
    const high = this.next32() >>> 5;
    const low = this.next32() >>> 6;
    return (high * 67108864 + low + 0.5) / 9007199254740992;
  }

  /** A uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.uniform() * n);
  }
}

/** `count` standard-normal doubles (Box-Muller), the same ones for the same seed. */
export function standardNormals(count: number, seed = SEED): Float64Array {
  const random = new SeededRandom(seed);
  const values = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(random.uniform()));
    const angle = 2 * Math.PI * random.uniform();
    values[i] = radius * Math.cos(angle);
    if (i + 1 < count) values[i + 1] = radius * Math.sin(angle);
  }
  return values;
}

/** `count` distinct indices in [0, range), spread at random over it (seeded, so fixed from run to run), in ascending order. */
export function spreadIndices(count: number, range: number, seed = SEED + 1): number[] {
  const random = new SeededRandom(seed);
  const chosen = new Set<number>();
  while (chosen.size < count) chosen.add(random.below(range));
  return [...chosen].sort((a, b) => a - b);
}

/** Writes doubles as a file of native (little-endian) float64, the layout `MMAP key path double` reads. */
export function writeDoubles(file: string, values: Float64Array): void {
  fs.writeFileSync(file, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}

/** The text a server sends for a double: the shortest text that reads back to it. */
export const doubleText = (x: number): string => String(x);
