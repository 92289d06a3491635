// Address math (src/net/ip.ts): parsing and formatting as Go's net package does (the
// reference's lease file names and results), checked against ip-address as an oracle,
// and against known Go outputs (what the kernel prints: test/system/net-ip-kernel.test.ts).
import { Address4, Address6 } from 'ip-address';
import { describe, expect, it } from 'vitest';
import { contains, formatCidr, formatIP, ipCompare, lastOf, networkOf, nextIP, parseCidr, parseIP, prevIP, sameCidr } from '../../src/net/ip.ts';

const ip = (s: string) => {
  const r = parseIP(s);
  if (!r) throw new Error(`unparsable ${s}`);
  return r;
};
const cidr = (s: string) => {
  const r = parseCidr(s);
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
      const text = formatIP({ family: 6, n });
      expect(text).toBe(oracle.correctForm());
      expect(parseIP(text)).toEqual({ family: 6, n });
      // Expanded and upper-case input parses to the same address.
      expect(parseIP(oracle.canonicalForm().toUpperCase())).toEqual({ family: 6, n });
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
      const text = formatIP({ family: 4, n });
      expect(text).toBe(Address4.fromBigInt(n).correctForm());
      expect(parseIP(text)).toEqual({ family: 4, n });
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

  it('parses and prints IPv4 and IPv6 in canonical form', () => {
    expect(formatIP(ip('10.244.1.2'))).toBe('10.244.1.2');
    expect(formatIP(ip('fd00:0:0::1'))).toBe('fd00::1');
    expect(formatIP(ip('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(formatIP(ip('::'))).toBe('::');
    expect(formatIP(ip('FE80::A'))).toBe('fe80::a');
    expect(parseIP('10.0.0.256')).toBeUndefined();
    expect(parseIP('nope')).toBeUndefined();
  });
});

describe('parseCidr', () => {
  it('keeps the host bits and the prefix, like Go ParseCIDR', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ ip: ip('10.1.2.3'), prefix: 8, maskBits: 32 });
    expect(parseCidr('fd00::5/64')).toEqual({ ip: ip('fd00::5'), prefix: 64, maskBits: 128 });
    expect(parseCidr('::ffff:10.0.0.0/104')?.maskBits).toBe(128);
    for (const s of ['10.9.0.0/33', 'fd00::/129', '10.0.0.0', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/a', 'x/24', '10.0.0.1/33', '10.0.0.1']) {
      expect(parseCidr(s), s).toBeUndefined();
    }
  });

  it("prints as Go's IPNet.String(): canonical, and an IPv4-mapped CIDR as IPv4", () => {
    expect(formatCidr(cidr('fd00:0::2/64'))).toBe('fd00::2/64');
    expect(formatCidr(cidr('10.1.2.3/8'))).toBe('10.1.2.3/8');
    expect(formatCidr(networkOf(cidr('::ffff:10.1.2.3/120')))).toBe('10.1.2.0/24');
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
    expect(formatIP(networkOf(cidr('10.1.2.3/16')).ip)).toBe('10.1.0.0');
    expect(formatIP(lastOf(cidr('10.1.2.3/16')))).toBe('10.1.255.255');
    expect(formatIP(lastOf(cidr('10.1.2.3/32')))).toBe('10.1.2.3');
    expect(formatIP(networkOf(cidr('fd00::1:2/112')).ip)).toBe('fd00::1:0');
    expect(formatIP(lastOf(cidr('fd00::/64')))).toBe('fd00::ffff:ffff:ffff:ffff');
    expect(formatIP(networkOf(cidr('1.2.3.4/0')).ip)).toBe('0.0.0.0');
    expect(contains(cidr('10.1.0.0/16'), ip('10.1.255.1'))).toBe(true);
    expect(contains(cidr('10.1.0.0/16'), ip('10.2.0.1'))).toBe(false);
    expect(contains(cidr('10.1.0.0/16'), ip('::ffff:10.1.0.1'))).toBe(true);
    expect(contains(cidr('fd00::/64'), ip('10.1.0.1'))).toBe(false);
    const oracle = new Address6('fd00:1:2:3::/64');
    expect(formatIP(lastOf(cidr('fd00:1:2:3::/64')))).toBe(oracle.endAddress().correctForm());
    // An IPv4-mapped CIDR's mask covers 128 bits: a /120 leaves IPv4 its last 8.
    expect(formatIP(lastOf(cidr('::ffff:10.1.2.3/120')))).toBe('10.1.2.255');
  });

  it('computes subnets, membership and the next address', () => {
    const c = cidr('10.244.1.77/24');
    expect(formatCidr(networkOf(c))).toBe('10.244.1.0/24');
    expect(formatIP(nextIP(networkOf(c).ip))).toBe('10.244.1.1');
    expect(formatCidr(networkOf(cidr('fd00:1:2:3:4::9/50')))).toBe('fd00:1:2::/50');
    expect(contains(c, ip('10.244.1.200'))).toBe(true);
    expect(contains(c, ip('10.244.2.1'))).toBe(false);
    expect(contains(c, ip('fd00::1'))).toBe(false);
    expect(sameCidr(cidr('fd00::1/64'), cidr('fd00:0::1/64'))).toBe(true);
    expect(sameCidr(cidr('fd00::1/64'), cidr('fd00::1/63'))).toBe(false);
  });
});
