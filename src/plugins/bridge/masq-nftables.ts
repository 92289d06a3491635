// Masquerading with nftables, laid out as upstream's plugins (v1.5+) lay it out, so that
// rules made by either are found and removed by the other: table inet
// cni_plugins_masquerade, a postrouting nat chain that skips multicast and jumps to
// masq_checks, and in masq_checks one rule per pod address whose comment starts with a
// hash of the network, then of ifname and container ID. The hash prefix scopes DEL (this
// container only) and GC (this network only).
import { sha512Hex } from '../../kernel/hash.ts';
import { formatIP, networkOf, type Cidr } from '../../net/ip.ts';
import { nftApply, nftList, rulesOf, type NftCommand } from './nft.ts';

const TABLE = 'cni_plugins_masquerade';
const CHAIN = 'masq_checks';
const COMMENT_MAX = 128;

const hash16 = (s: string) => sha512Hex(s).slice(0, 16);

function networkHash(network: string): string {
  return hash16(network);
}

export function instanceHash(network: string, ifname: string, containerId: string): string {
  return `${networkHash(network)}-${hash16(`${ifname}:${containerId}`)}`;
}

export function instanceComment(network: string, ifname: string, containerId: string): string {
  const strip = (s: string) => s.replaceAll('"', '');
  const c = `${instanceHash(network, ifname, containerId)}, net: ${strip(network)}, if: ${strip(ifname)}, id: ${strip(containerId)}`;
  return c.slice(0, COMMENT_MAX);
}

const obj = (kind: string, body: Record<string, unknown>) => ({ [kind]: { family: 'inet', table: TABLE, ...body } });

async function rulesWithPrefix(prefix: string): Promise<Array<{ handle: number; comment?: string }>> {
  const rules = rulesOf(await nftList(['chain', 'inet', TABLE, CHAIN]));
  return rules.filter((r) => r.chain === CHAIN && typeof r.comment === 'string' && r.comment.startsWith(prefix));
}

const deleteRule = (handle: number): NftCommand => ({ delete: obj('rule', { chain: CHAIN, handle }) });

/** Masquerades traffic from each address to anywhere outside its subnet. */
export async function setupNftMasq(addrs: Cidr[], network: string, ifname: string, containerId: string): Promise<void> {
  const stale = await rulesWithPrefix(instanceHash(network, ifname, containerId));
  const comment = instanceComment(network, ifname, containerId);
  const rule = (expr: unknown[], extra: Record<string, unknown> = {}): NftCommand => ({ add: obj('rule', { chain: 'postrouting', expr, ...extra }) });
  const match = (proto: string, field: string, op: string, right: unknown) => ({
    match: { op, left: { payload: { protocol: proto, field } }, right },
  });
  const prefix = (c: Cidr) => ({ prefix: { addr: formatIP(c.ip), len: c.prefix } });
  const commands: NftCommand[] = [
    { add: { table: { family: 'inet', name: TABLE } } },
    { add: obj('chain', { name: CHAIN }) },
    { add: obj('chain', { name: 'postrouting', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' }) },
    { flush: obj('chain', { name: 'postrouting' }) },
    rule([match('ip', 'daddr', '==', { prefix: { addr: '224.0.0.0', len: 4 } }), { return: null }]),
    rule([match('ip6', 'daddr', '==', { prefix: { addr: 'ff00::', len: 8 } }), { return: null }]),
    rule([{ goto: { target: CHAIN } }]),
    ...stale.map((r) => deleteRule(r.handle)),
    ...addrs.map((a) => {
      const proto = a.ip.family === 4 ? 'ip' : 'ip6';
      return {
        add: obj('rule', {
          chain: CHAIN,
          comment,
          expr: [match(proto, 'saddr', '==', formatIP(a.ip)), match(proto, 'daddr', '!=', prefix(networkOf(a))), { masquerade: null }],
        }),
      };
    }),
  ];
  await nftApply(commands);
}

/** Removes this container's rules; nothing to do is not an error. */
export async function teardownNftMasq(network: string, ifname: string, containerId: string): Promise<void> {
  const rules = await rulesWithPrefix(instanceHash(network, ifname, containerId));
  await nftApply(rules.map((r) => deleteRule(r.handle)));
}

/** Removes the rules of `network` that belong to none of `valid` (ifname, container ID). */
export async function gcNftMasq(network: string, valid: Array<{ ifname: string; containerId: string }>): Promise<void> {
  const keep = new Set(valid.map((v) => instanceComment(network, v.ifname, v.containerId)));
  const rules = await rulesWithPrefix(networkHash(network));
  await nftApply(rules.filter((r) => !keep.has(r.comment!)).map((r) => deleteRule(r.handle)));
}
