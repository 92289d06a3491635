// Address math: parsing and formatting as Go's net package does (the reference's lease
// file names), checked against ip-address as an oracle and against known Go outputs.
import { Address4, Address6 } from 'ip-address';
import { describe, expect, it } from 'vitest';
import { formatIP, ipCompare, lastOf, networkOf, nextIP, parseCidr, parseIP, prevIP, subnetContains } from '../src/ipam/ip.ts';

const ip = (s: string) => {
  const r = parseIP(s);
  if (!r) throw new Error(`unparsable ${s}`);
  return r;
};

/** A deterministic pseudo-random 128-bit value with many zero groups. */
function* samples(count: number): Generator<bigint> {
  let seed = 0x2545f4914f6cdd1dn;
  for (let i = 0; i < count; i++) {
    let n = 0n;
    for (let g = 0; g < 8; g++) {
      seed = (seed * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
      const r = Number(seed >> 33n);
      // About half the groups are zero, so runs of zeros of every length occur.
      const group = r % 2 === 0 ? 0 : r % 3 === 0 ? 1 : (r >>> 3) & 0xffff;
      n = (n << 16n) | BigInt(group);
    }
    yield n;
  }
}

describe('parseIP / formatIP', () => {
  it('formats IPv6 in RFC 5952 form exactly like ip-address (and Go)', () => {
    for (const n of samples(3000)) {
      const oracle = Address6.fromBigInt(n);
      if (oracle.is4()) continue; // v4-mapped: Go prints those as IPv4
      const text = formatIP({ bits: 128, n });
      expect(text).toBe(oracle.correctForm());
      expect(parseIP(text)).toEqual({ bits: 128, n });
      // Expanded and upper-case input parses to the same address.
      expect(parseIP(oracle.canonicalForm().toUpperCase())).toEqual({ bits: 128, n });
    }
  });

  it('matches Go on the cases RFC 5952 decides', () => {
    const cases: [string, string][] = [
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group stays
      ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['fd00::0001', 'fd00::1'],
      ['::1.2.3.4', '::102:304'],
      ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
      ['::ffff:10.1.2.3', '10.1.2.3'], // v4-mapped is IPv4
      ['::FFFF:a01:203', '10.1.2.3'],
    ];
    for (const [input, want] of cases) expect(formatIP(ip(input)), input).toBe(want);
  });

  it('round-trips IPv4 against ip-address', () => {
    for (const n of [0n, 1n, 0x0a000001n, 0x7f000001n, 0xc0a80101n, 0xffffffffn, 0x0a32ff00n]) {
      const text = formatIP({ bits: 32, n });
      expect(text).toBe(Address4.fromBigInt(n).correctForm());
      expect(parseIP(text)).toEqual({ bits: 32, n });
    }
  });

  it('rejects what Go rejects', () => {
    for (const s of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '1.2.3.256',
      '01.2.3.4', // leading zeros (Go >= 1.17)
      '1.2.3.-1',
      '1.2.3.4/24',
      ' 1.2.3.4',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      ':1::',
      '1:::2',
      '12345::',
      'fe80::1%eth0',
      '1.2.3.4::',
      'g::1',
      'last_reserved_ip.0',
      'lock',
      '.flannelette',
    ]) {
      expect(parseIP(s), s).toBeUndefined();
    }
  });
});

describe('parseCidr', () => {
  it('keeps the host bits and the prefix, like Go ParseCIDR', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ ip: ip('10.1.2.3'), prefix: 8, maskBits: 32 });
    expect(parseCidr('fd00::5/64')).toEqual({ ip: ip('fd00::5'), prefix: 64, maskBits: 128 });
    expect(parseCidr('::ffff:10.0.0.0/104')?.maskBits).toBe(128);
    for (const s of ['10.9.0.0/33', 'fd00::/129', '10.0.0.0', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/a', 'x/24']) {
      expect(parseCidr(s), s).toBeUndefined();
    }
  });
});

describe('arithmetic', () => {
  it('steps, wraps and compares', () => {
    expect(formatIP(nextIP(ip('10.0.0.255')))).toBe('10.0.1.0');
    expect(formatIP(prevIP(ip('10.0.1.0')))).toBe('10.0.0.255');
    expect(formatIP(nextIP(ip('255.255.255.255')))).toBe('0.0.0.0');
    expect(formatIP(nextIP(ip('fd00::ffff')))).toBe('fd00::1:0');
    expect(formatIP(prevIP(ip('::')))).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(ipCompare(ip('10.0.0.2'), ip('10.0.0.10'))).toBe(-1);
    expect(ipCompare(ip('255.255.255.255'), ip('::'))).toBe(-1); // v4 sorts before v6
  });

  it('finds network and last addresses, and containment', () => {
    expect(formatIP(networkOf(ip('10.1.2.3'), 16))).toBe('10.1.0.0');
    expect(formatIP(lastOf(ip('10.1.2.3'), 16))).toBe('10.1.255.255');
    expect(formatIP(lastOf(ip('10.1.2.3'), 32))).toBe('10.1.2.3');
    expect(formatIP(networkOf(ip('fd00::1:2'), 112))).toBe('fd00::1:0');
    expect(formatIP(lastOf(ip('fd00::'), 64))).toBe('fd00::ffff:ffff:ffff:ffff');
    expect(formatIP(networkOf(ip('1.2.3.4'), 0))).toBe('0.0.0.0');
    expect(subnetContains(ip('10.1.0.0'), 16, ip('10.1.255.1'))).toBe(true);
    expect(subnetContains(ip('10.1.0.0'), 16, ip('10.2.0.1'))).toBe(false);
    expect(subnetContains(ip('10.1.0.0'), 16, ip('::ffff:10.1.0.1'))).toBe(true);
    expect(subnetContains(ip('fd00::'), 64, ip('10.1.0.1'))).toBe(false);
    const oracle = new Address6('fd00:1:2:3::/64');
    expect(formatIP(lastOf(ip('fd00:1:2:3::'), 64))).toBe(oracle.endAddress().correctForm());
  });
});
