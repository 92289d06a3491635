// Address text as the kernel prints it (ip -j) against src/net/ip.ts's formatCidr.
import { describe, expect, it } from 'vitest';
import { formatCidr, parseCidr } from '../../src/net/ip.ts';
import { createNs } from '../helpers/netns.ts';
import { cidrsOf, type IpLink } from '../helpers/ip-json.ts';

const cidr = (s: string) => {
  const r = parseCidr(s);
  if (!r) throw new Error(`unparsable ${s}`);
  return r;
};

describe('the kernel', () => {
  it('prints IPv6 addresses as formatCidr does', async () => {
    const ns = await createNs('cidr');
    const addrs = ['fd00:0:0:1::5/64', '2001:db8:0:0:0:0:2:1/64', 'fd00:1:0:0:1::/80'];
    await ns.ip('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    for (const a of addrs) await ns.ip('-6', 'addr', 'add', a, 'dev', 'v0', 'nodad');
    const [link] = await ns.ipJson<IpLink>('-6', 'addr', 'show', 'dev', 'v0');
    const printed = cidrsOf(link, { scope: 'global' });
    expect(printed.sort()).toEqual(addrs.map((a) => formatCidr(cidr(a))).sort());
  });
});
