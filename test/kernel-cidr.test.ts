// Address arithmetic and text forms, checked against what the kernel (ip -j) prints.
import { describe, expect, it } from 'vitest';
import { canonicalCidr, contains, formatCidr, formatIP, networkOf, nextIP, parseCidr, parseIP, sameCidr } from '../src/kernel/cidr.ts';
import { createNs } from './helpers/netns.ts';

describe('cidr', () => {
  it('parses and prints IPv4 and IPv6 in canonical form', () => {
    expect(formatIP(parseIP('10.244.1.2')!)).toBe('10.244.1.2');
    expect(formatIP(parseIP('fd00:0:0::1')!)).toBe('fd00::1');
    expect(formatIP(parseIP('2001:db8:0:0:1:0:0:1')!)).toBe('2001:db8::1:0:0:1');
    expect(formatIP(parseIP('::')!)).toBe('::');
    expect(formatIP(parseIP('::ffff:10.0.0.1')!)).toBe('::ffff:a00:1');
    expect(formatIP(parseIP('FE80::A')!)).toBe('fe80::a');
    expect(parseIP('10.0.0.256')).toBeNull();
    expect(parseIP('nope')).toBeNull();
    expect(parseCidr('10.0.0.1/33')).toBeNull();
    expect(parseCidr('10.0.0.1')).toBeNull();
    expect(canonicalCidr('fd00:0::2/64')).toBe('fd00::2/64');
  });

  it('computes subnets, membership and the next address', () => {
    const c = parseCidr('10.244.1.77/24')!;
    expect(formatCidr(networkOf(c))).toBe('10.244.1.0/24');
    expect(formatIP(nextIP(networkOf(c).ip))).toBe('10.244.1.1');
    expect(formatIP(nextIP(parseIP('10.0.0.255')!))).toBe('10.0.1.0');
    expect(formatCidr(networkOf(parseCidr('fd00:1:2:3:4::9/50')!))).toBe('fd00:1:2::/50');
    expect(contains(c, parseIP('10.244.1.200')!)).toBe(true);
    expect(contains(c, parseIP('10.244.2.1')!)).toBe(false);
    expect(contains(c, parseIP('fd00::1')!)).toBe(false);
    expect(sameCidr(parseCidr('fd00::1/64')!, parseCidr('fd00:0::1/64')!)).toBe(true);
    expect(sameCidr(parseCidr('fd00::1/64')!, parseCidr('fd00::1/63')!)).toBe(false);
  });

  it('prints IPv6 addresses as the kernel does', async () => {
    const ns = await createNs('cidr');
    const addrs = ['fd00:0:0:1::5/64', '2001:db8:0:0:0:0:2:1/64', 'fd00:1:0:0:1::/80'];
    await ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    for (const a of addrs) await ns.ip('-6', 'addr', 'add', a, 'dev', 'v0', 'nodad');
    const [link] = await ns.ipJson('-6', 'addr', 'show', 'dev', 'v0');
    const printed = link.addr_info.filter((a: any) => a.scope === 'global').map((a: any) => `${a.local}/${a.prefixlen}`);
    expect(printed.sort()).toEqual(addrs.map(canonicalCidr).sort());
  });
});
