/** The few statistics the benchmark reports: medians of rounds and latency percentiles. */

/** The median (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** The p-th percentile (0 < p <= 100) by the nearest-rank method, or NaN for no values. */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The slope of the least-squares line through (x, y) points, or NaN for fewer than two. */
export function slope(points: readonly { x: number; y: number }[]): number {
  if (points.length < 2) return Number.NaN;
  const meanX = points.reduce((s, p) => s + p.x, 0) / points.length;
  const meanY = points.reduce((s, p) => s + p.y, 0) / points.length;
  const covariance = points.reduce((s, p) => s + (p.x - meanX) * (p.y - meanY), 0);
  const variance = points.reduce((s, p) => s + (p.x - meanX) ** 2, 0);
  return variance === 0 ? Number.NaN : covariance / variance;
}

/** Buckets per factor of ten in a LatencyHistogram: 40 keeps each bucket within 6% of its neighbours. */
const BUCKETS_PER_DECADE = 40;
/** The histogram's range: 1 µs to 100 s. */
const SMALLEST_MS = 0.001;
const DECADES = 8;

/** Latencies counted in log-spaced buckets: percentiles of millions of requests in a few kilobytes. */
export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS_PER_DECADE * DECADES + 1);
  count = 0;

  record(ms: number): void {
    const bucket = ms <= SMALLEST_MS ? 0 : Math.ceil(Math.log10(ms / SMALLEST_MS) * BUCKETS_PER_DECADE);
    this.counts[Math.min(bucket, this.counts.length - 1)]++;
    this.count++;
  }

  /** The upper edge of the bucket holding the p-th percentile (0 < p <= 100), or NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let bucket = 0; bucket < this.counts.length; bucket++) {
      seen += this.counts[bucket];
      if (seen >= rank) return SMALLEST_MS * 10 ** (bucket / BUCKETS_PER_DECADE);
    }
    return Number.POSITIVE_INFINITY;
  }
}
