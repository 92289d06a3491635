// A range set: the ranges one address per container is taken from (one set per
// address family in a dual-stack config). Same family throughout, no overlaps.
import { CniError, ErrCode } from '../cni/errors.ts';
import type { IP } from '../net/ip.ts';
import { canonicalizeRange, rangeContains, rangesOverlap, rangeToString, type Range } from './range.ts';

export type RangeSet = readonly Range[];

export function canonicalizeRangeSet(input: unknown): RangeSet {
  if (!Array.isArray(input)) throw new CniError(ErrCode.InvalidNetworkConfig, 'a range set must be a list of ranges');
  if (input.length === 0) throw new CniError(ErrCode.InvalidNetworkConfig, 'empty range set');
  const set = input.map((r) => canonicalizeRange(r));
  if (set.some((r) => r.subnet.ip.family !== set[0]!.subnet.ip.family)) {
    throw new CniError(ErrCode.InvalidNetworkConfig, 'mixed address families');
  }
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (rangesOverlap(set[i]!, set[j]!)) {
        throw new CniError(ErrCode.InvalidNetworkConfig, `subnets ${rangeToString(set[i]!)} and ${rangeToString(set[j]!)} overlap`);
      }
    }
  }
  return set;
}

/** The range of the set that holds `ip`, if any. */
export function rangeFor(set: RangeSet, ip: IP): Range | undefined {
  return set.find((r) => rangeContains(r, ip));
}

export function rangeSetContains(set: RangeSet, ip: IP): boolean {
  return rangeFor(set, ip) !== undefined;
}

export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  return a.some((r) => b.some((o) => rangesOverlap(r, o)));
}

export function rangeSetToString(set: RangeSet): string {
  return set.map(rangeToString).join(',');
}
