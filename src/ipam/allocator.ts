// Picking an address from a range set: a requested one, or round robin from the set's
// last reserved address, in exactly the reference's order (allocator.go), skipping the
// gateway and, unlike the reference, the network and IPv4 broadcast addresses.
import { CniError, ErrCode } from '../cni/errors.ts';
import { formatIP, nextIP, sameIP, type IP } from '../net/ip.ts';
import { isReservedAddress, rangeContains, type Range } from './range.ts';
import { rangeFor, rangeSetContains, rangeSetToString, type RangeSet } from './range-set.ts';
import type { LeaseTxn } from './lease-store.ts';

export interface Allocation {
  ip: IP;
  range: Range;
}

/** Walks the set's addresses once, round robin, starting after `last` when the set holds it. */
export class RangeIterator {
  private readonly set: RangeSet;
  private idx = 0;
  private cur: IP | undefined;
  private startIP: IP | undefined;

  constructor(set: RangeSet, last: IP | undefined) {
    this.set = set;
    const i = last ? set.findIndex((r) => rangeContains(r, last)) : -1;
    if (i >= 0) {
      this.idx = i;
      this.cur = last;
    } else {
      this.startIP = set[0]!.start;
    }
  }

  /** The next candidate and its range, or undefined once every address was offered. */
  next(): Allocation | undefined {
    for (;;) {
      let r = this.set[this.idx]!;
      if (this.cur === undefined) {
        this.cur = r.start;
        this.startIP = this.cur;
      } else {
        if (sameIP(this.cur, r.end)) {
          this.idx = (this.idx + 1) % this.set.length;
          r = this.set[this.idx]!;
          this.cur = r.start;
        } else {
          this.cur = nextIP(this.cur);
        }
        if (this.startIP === undefined) this.startIP = this.cur;
        else if (sameIP(this.cur, this.startIP)) return undefined;
      }
      if (!isReservedAddress(r, this.cur)) return { ip: this.cur, range: r };
    }
  }
}

/** Fails when (id, ifname) already holds an address in `set`: the spec forbids a second. */
export function checkNotAllocated(store: LeaseTxn, set: RangeSet, id: string, ifname: string): void {
  for (const ip of store.getByID(id, ifname)) {
    if (rangeSetContains(set, ip)) {
      throw new CniError(ErrCode.Internal, `${formatIP(ip)} has been allocated to ${id}, duplicate allocation is not allowed`);
    }
  }
}

/** Checks that `ip` may be asked for in `set`; returns its range. */
export function checkRequested(set: RangeSet, ip: IP): Range {
  const r = rangeFor(set, ip);
  if (!r) throw new CniError(ErrCode.InvalidNetworkConfig, `${formatIP(ip)} not in range set ${rangeSetToString(set)}`);
  if (sameIP(ip, r.gateway)) throw new CniError(ErrCode.InvalidNetworkConfig, `requested ip ${formatIP(ip)} is subnet's gateway`);
  if (isReservedAddress(r, ip)) {
    throw new CniError(ErrCode.InvalidNetworkConfig, `requested ip ${formatIP(ip)} is the subnet's network or broadcast address`);
  }
  return r;
}

/** Reserves one address of `set` (the `setIndex`th) for (id, ifname). */
export function allocate(store: LeaseTxn, set: RangeSet, setIndex: number, id: string, ifname: string, requested?: IP): Allocation {
  const rangeId = String(setIndex);
  if (requested) {
    const range = checkRequested(set, requested);
    if (!store.reserve(id, ifname, requested, rangeId)) {
      throw new CniError(ErrCode.TryAgainLater, `requested IP address ${formatIP(requested)} is not available in range set ${rangeSetToString(set)}`);
    }
    return { ip: requested, range };
  }
  checkNotAllocated(store, set, id, ifname);
  const iter = new RangeIterator(set, store.lastReservedIP(rangeId));
  for (let cand = iter.next(); cand; cand = iter.next()) {
    if (store.reserve(id, ifname, cand.ip, rangeId)) return cand;
  }
  throw new CniError(ErrCode.TryAgainLater, `no IP addresses available in range set: ${rangeSetToString(set)}`);
}
