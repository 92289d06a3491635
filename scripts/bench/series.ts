// Samples of one figure for one implementation; a failure or skip keeps its reason and
// stops further runs of that implementation for the figure (a broken plugin is not timed).
export interface Series {
  samples: number[];
  error?: string;
  skipped?: string;
  /** Said beside the numbers (e.g. why a failing run still counts). */
  note?: string;
  /** Extra facts for the report (e.g. duplicates found, leases kept). */
  facts?: Record<string, number | string | boolean>;
}

export const newSeries = (): Series => ({ samples: [] });

export const usable = (s: Series): boolean => s.error === undefined && s.skipped === undefined;

export function fail(s: Series, why: string): void {
  s.error ??= why;
}
