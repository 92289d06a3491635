// Summaries of timing samples: median and p95 (nearest rank), with the samples kept.
export interface Stat {
  median: number;
  p95: number;
  min: number;
  max: number;
  n: number;
  samples: number[];
}

function nearestRank(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(samples: readonly number[]): Stat {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    median: round(median),
    p95: round(nearestRank(sorted, 95)),
    min: round(sorted[0]!),
    max: round(sorted[sorted.length - 1]!),
    n: samples.length,
    samples: samples.map(round),
  };
}
