// Ranges, range sets and the allocator against an in-memory store: defaults, edge
// prefixes, and the reference's exact allocation order (observed from /usr/lib/cni/host-local).
import { describe, expect, it } from 'vitest';
import { CniError, ErrCode } from '../../src/cni/errors.ts';
import { allocate, RangeIterator } from '../../src/ipam/allocator.ts';
import { formatIP, parseIP } from '../../src/net/ip.ts';
import { MemoryStore } from '../../src/ipam/memory-store.ts';
import { canonicalizeRange, rangeCapacity, type RangeInput } from '../../src/ipam/range.ts';
import { canonicalizeRangeSet, rangeSetToString } from '../../src/ipam/range-set.ts';
import { cniErrorOf } from '../helpers/cni-error.ts';

const ip = (s: string) => parseIP(s)!;
const set = (...ranges: RangeInput[]) => canonicalizeRangeSet(ranges);
const text = (r: ReturnType<typeof canonicalizeRange>) => ({
  start: formatIP(r.start),
  end: formatIP(r.end),
  gateway: formatIP(r.gateway),
});

/** Allocates `n` times for containers c0..c(n-1); the addresses, undefined once exhausted. */
function take(store: MemoryStore, s: ReturnType<typeof set>, n: number, first = 0): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (let i = first; i < first + n; i++) {
    try {
      out.push(formatIP(allocate(store, s, 0, `c${i}`, 'eth0').ip));
    } catch (err) {
      // Only "no addresses left" (11, try again later) means exhausted; anything else is a bug.
      if (!(err instanceof CniError) || err.code !== ErrCode.TryAgainLater) throw err;
      out.push(undefined);
    }
  }
  return out;
}

describe('range defaults and checks', () => {
  it('defaults start, end and gateway like the reference', () => {
    expect(text(canonicalizeRange({ subnet: '10.1.0.0/24' }))).toEqual({ start: '10.1.0.1', end: '10.1.0.254', gateway: '10.1.0.1' });
    expect(text(canonicalizeRange({ subnet: '10.1.0.0/30' }))).toEqual({ start: '10.1.0.1', end: '10.1.0.2', gateway: '10.1.0.1' });
    expect(text(canonicalizeRange({ subnet: 'fd00::/64' }))).toEqual({ start: 'fd00::1', end: 'fd00::ffff:ffff:ffff:ffff', gateway: 'fd00::1' });
    expect(text(canonicalizeRange({ subnet: 'fd00::/126' }))).toEqual({ start: 'fd00::1', end: 'fd00::3', gateway: 'fd00::1' });
    expect(text(canonicalizeRange({ subnet: '10.1.0.0/24', rangeStart: '', gateway: '' })).start).toBe('10.1.0.1');
  });

  it('refuses /31, /32, /127, /128 and bad subnets with code 7', () => {
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.3.0.0/31' }))).toEqual({ code: 7, msg: 'Network 10.3.0.0/31 too small to allocate from' });
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.3.0.0/32' })).code).toBe(7);
    expect(cniErrorOf(() => canonicalizeRange({ subnet: 'fd00::/127' })).msg).toBe('Network fd00::/127 too small to allocate from');
    expect(cniErrorOf(() => canonicalizeRange({ subnet: 'fd00::/128' })).code).toBe(7);
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.9.0.0/33' }))).toEqual({ code: 7, msg: 'invalid CIDR address: 10.9.0.0/33' });
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.9.0.1/24' })).msg).toBe(
      'Network has host bits set. For a subnet mask of length 24 the network address is 10.9.0.0',
    );
    expect(cniErrorOf(() => canonicalizeRange({})).code).toBe(7);
    expect(cniErrorOf(() => canonicalizeRange({ subnet: 24 })).code).toBe(7);
  });

  it('refuses start, end or gateway outside the subnet', () => {
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.9.0.0/24', rangeStart: '10.8.0.1' })).msg).toBe('RangeStart 10.8.0.1 not in network 10.9.0.0/24');
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.9.0.0/24', rangeEnd: '10.9.1.1' })).msg).toBe('RangeEnd 10.9.1.1 not in network 10.9.0.0/24');
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.9.0.0/24', rangeStart: '10.9.0.9', rangeEnd: '10.9.0.8' })).code).toBe(7);
    // The reference accepts this one (and hands out .1); a gateway must be on the subnet.
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.4.0.0/24', gateway: '10.5.0.1' })).msg).toBe('gateway 10.5.0.1 not in network 10.4.0.0/24');
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.4.0.0/24', gateway: 'fd00::1' })).code).toBe(7);
    expect(cniErrorOf(() => canonicalizeRange({ subnet: '10.4.0.0/24', gateway: 'bogus' })).msg).toBe('invalid IP address: bogus');
  });

  it('checks range sets: families, overlaps, emptiness', () => {
    expect(cniErrorOf(() => set({ subnet: '10.9.0.0/24' }, { subnet: 'fd00::/64' })).msg).toBe('mixed address families');
    expect(cniErrorOf(() => set({ subnet: '10.9.0.0/24' }, { subnet: '10.9.0.0/16' })).msg).toBe(
      'subnets 10.9.0.1-10.9.0.254 and 10.9.0.1-10.9.255.254 overlap',
    );
    expect(cniErrorOf(() => canonicalizeRangeSet([])).msg).toBe('empty range set');
    // Disjoint start..end inside one subnet do not overlap (as in the reference).
    expect(
      rangeSetToString(
        set(
          { subnet: '10.9.0.0/24', rangeStart: '10.9.0.10', rangeEnd: '10.9.0.20' },
          { subnet: '10.9.0.0/24', rangeStart: '10.9.0.30', rangeEnd: '10.9.0.40' },
        ),
      ),
    ).toBe('10.9.0.10-10.9.0.20,10.9.0.30-10.9.0.40');
  });

  it('counts what can be handed out', () => {
    expect(rangeCapacity(canonicalizeRange({ subnet: '10.1.0.0/24' }))).toBe(253n);
    expect(rangeCapacity(canonicalizeRange({ subnet: '10.1.0.0/30' }))).toBe(1n);
    expect(rangeCapacity(canonicalizeRange({ subnet: '10.1.0.0/30', rangeStart: '10.1.0.0', rangeEnd: '10.1.0.3' }))).toBe(1n);
    expect(rangeCapacity(canonicalizeRange({ subnet: 'fd00::/126' }))).toBe(2n);
    expect(rangeCapacity(canonicalizeRange({ subnet: 'fd00::/64' }))).toBe((1n << 64n) - 2n);
  });
});

describe('allocation order (as observed from the reference)', () => {
  it('starts at .2 with gateway .1 and goes round robin: after DEL of .2 the next is .3... then wraps', () => {
    const store = new MemoryStore();
    const s = set({ subnet: '10.2.0.0/29' });
    expect(take(store, s, 2)).toEqual(['10.2.0.2', '10.2.0.3']);
    store.releaseByID('c0', 'eth0');
    expect(take(store, s, 4, 2)).toEqual(['10.2.0.4', '10.2.0.5', '10.2.0.6', '10.2.0.2']);
    expect(take(store, s, 1, 6)).toEqual([undefined]);
    store.releaseByID('c3', 'eth0'); // held .5
    expect(take(store, s, 1, 7)).toEqual(['10.2.0.5']);
  });

  it('exhausts with code 11 naming the range, and reserves nothing', () => {
    const store = new MemoryStore();
    const s = set({ subnet: '10.3.0.0/30' });
    expect(take(store, s, 1)).toEqual(['10.3.0.2']);
    const before = new Map(store.leases);
    expect(cniErrorOf(() => allocate(store, s, 0, 'x', 'eth0'))).toEqual({ code: 11, msg: 'no IP addresses available in range set: 10.3.0.1-10.3.0.2' });
    expect(store.leases).toEqual(before);
  });

  it('skips a gateway inside the range', () => {
    const store = new MemoryStore();
    const s = set({ subnet: '10.6.0.0/24', gateway: '10.6.0.5', rangeStart: '10.6.0.4', rangeEnd: '10.6.0.6' });
    expect(take(store, s, 3)).toEqual(['10.6.0.4', '10.6.0.6', undefined]);
  });

  it('never hands out the network or broadcast address, even when the range names them', () => {
    // The reference hands out .0, .2 and .3 here.
    const store = new MemoryStore();
    const s = set({ subnet: '10.2.0.0/30', rangeStart: '10.2.0.0', rangeEnd: '10.2.0.3' });
    expect(take(store, s, 2)).toEqual(['10.2.0.2', undefined]);
    const v6 = set({ subnet: 'fd00::/126', rangeStart: 'fd00::' });
    expect(take(new MemoryStore(), v6, 3)).toEqual(['fd00::2', 'fd00::3', undefined]);
  });

  it('allocates IPv6 /126 like the reference: ::2, ::3, then none', () => {
    const store = new MemoryStore();
    expect(take(store, set({ subnet: 'fd00::/126' }), 3)).toEqual(['fd00::2', 'fd00::3', undefined]);
  });

  it('walks several ranges of a set in order and wraps to the first', () => {
    const store = new MemoryStore();
    const s = set({ subnet: '10.0.0.0/30' }, { subnet: '10.0.1.0/29', gateway: '10.0.1.6' });
    expect(take(store, s, 7)).toEqual(['10.0.0.2', '10.0.1.1', '10.0.1.2', '10.0.1.3', '10.0.1.4', '10.0.1.5', undefined]);
    store.releaseByID('c0', 'eth0');
    store.releaseByID('c3', 'eth0');
    expect(take(store, s, 2, 10)).toEqual(['10.0.0.2', '10.0.1.3']);
  });

  it('continues after last_reserved_ip, from its range, and ignores one outside the set', () => {
    const s = set({ subnet: '10.0.0.0/24' }, { subnet: '10.0.1.0/24' });
    const order = (last: string | undefined, n: number) => {
      const it = new RangeIterator(s, last ? ip(last) : undefined);
      return Array.from({ length: n }, () => it.next()).map((c) => (c ? formatIP(c.ip) : undefined));
    };
    expect(order('10.0.0.7', 2)).toEqual(['10.0.0.8', '10.0.0.9']);
    expect(order('10.0.0.254', 2)).toEqual(['10.0.1.2', '10.0.1.3']); // .1.1 is that range's gateway
    expect(order('10.0.1.254', 1)).toEqual(['10.0.0.2']);
    expect(order('192.168.0.1', 1)).toEqual(['10.0.0.2']);
    expect(order(undefined, 1)).toEqual(['10.0.0.2']);
  });

  it('offers every address exactly once, last_reserved_ip last', () => {
    const s = set({ subnet: '10.0.0.0/28' });
    const it = new RangeIterator(s, ip('10.0.0.9'));
    const seen: string[] = [];
    for (let c = it.next(); c; c = it.next()) seen.push(formatIP(c.ip));
    expect(seen).toHaveLength(13); // .2 .. .14
    expect(new Set(seen).size).toBe(13);
    expect(seen[0]).toBe('10.0.0.10');
    expect(seen.at(-1)).toBe('10.0.0.9');
  });

  it('round robin on IPv6 crosses group boundaries', () => {
    const s = set({ subnet: 'fd00::/112' });
    const it = new RangeIterator(s, ip('fd00::fffe'));
    expect(formatIP(it.next()!.ip)).toBe('fd00::ffff');
    expect(formatIP(it.next()!.ip)).toBe('fd00::2');
  });
});

describe('requested addresses and duplicates', () => {
  const s = set({ subnet: '10.2.0.0/24' });

  it('gives a free requested address, refuses a taken one (11), the gateway or one outside (7)', () => {
    const store = new MemoryStore();
    expect(formatIP(allocate(store, s, 0, 'a', 'eth0', ip('10.2.0.9')).ip)).toBe('10.2.0.9');
    expect(cniErrorOf(() => allocate(store, s, 0, 'b', 'eth0', ip('10.2.0.9')))).toEqual({
      code: 11,
      msg: 'requested IP address 10.2.0.9 is not available in range set 10.2.0.1-10.2.0.254',
    });
    expect(cniErrorOf(() => allocate(store, s, 0, 'b', 'eth0', ip('10.2.0.1')))).toEqual({ code: 7, msg: "requested ip 10.2.0.1 is subnet's gateway" });
    expect(cniErrorOf(() => allocate(store, s, 0, 'b', 'eth0', ip('10.2.0.255'))).code).toBe(7);
    expect(cniErrorOf(() => allocate(store, s, 0, 'b', 'eth0', ip('10.3.0.1'))).code).toBe(7);
    expect(store.leases.size).toBe(1);
  });

  it('refuses a second address for the same container and interface in a set', () => {
    const store = new MemoryStore();
    allocate(store, s, 0, 'a', 'eth0');
    expect(cniErrorOf(() => allocate(store, s, 0, 'a', 'eth0')).msg).toBe('10.2.0.2 has been allocated to a, duplicate allocation is not allowed');
    expect(formatIP(allocate(store, s, 0, 'a', 'eth1').ip)).toBe('10.2.0.3');
  });

  it("treats an old one-line lease as the container's on every interface", () => {
    const store = new MemoryStore();
    store.leases.set('10.2.0.7', 'old\n');
    expect(store.getByID('old', 'eth3').map(formatIP)).toEqual(['10.2.0.7']);
    expect(cniErrorOf(() => allocate(store, s, 0, 'old', 'eth3')).code).toBe(999);
    // The current form wins when both exist: only it is released.
    store.leases.set('10.2.0.8', 'old\r\neth3');
    expect(store.releaseByID('old', 'eth3').map(formatIP)).toEqual(['10.2.0.8']);
    expect(store.releaseByID('old', 'eth3').map(formatIP)).toEqual(['10.2.0.7']);
  });
});
