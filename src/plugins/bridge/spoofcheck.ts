// MAC spoof check, laid out as the reference's (pkg/link/spoofcheck.go): in table bridge
// nat, a PREROUTING filter chain (priority -300) sends frames entering from the pod's port
// to cni-br-iface-<id>, which jumps to cni-br-iface-<id>-mac: frames with the pod's MAC
// return, everything else is dropped. <id> is "<containerID>-<ifname>"; every rule carries
// the comment macspoofchk-<id>, by which teardown finds the PREROUTING rule.
import { nftApply, nftList, rulesOf, type NftCommand } from './nft.ts';

const TABLE = 'nat';
const BASE = 'PREROUTING';

const obj = (kind: string, body: Record<string, unknown>) => ({ [kind]: { family: 'bridge', table: TABLE, ...body } });

export function spoofRefId(containerId: string, ifname: string): string {
  return `${containerId}-${ifname}`;
}

const chains = (refId: string) => {
  const iface = `cni-br-iface-${refId}`;
  return { iface, mac: `${iface}-mac`, comment: `macspoofchk-${refId}` };
};

/** Lets frames from host port `port` through only with source `mac`. */
export async function setupSpoofCheck(port: string, mac: string, refId: string): Promise<void> {
  const c = chains(refId);
  const rule = (chain: string, expr: unknown[]): NftCommand => ({ add: obj('rule', { chain, comment: c.comment, expr }) });
  await nftApply([
    { add: { table: { family: 'bridge', name: TABLE } } },
    { add: obj('chain', { name: BASE, type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' }) },
    { add: obj('chain', { name: c.iface }) },
    { add: obj('chain', { name: c.mac }) },
    { flush: obj('chain', { name: c.iface }) },
    { flush: obj('chain', { name: c.mac }) },
    rule(BASE, [{ match: { op: '==', left: { meta: { key: 'iifname' } }, right: port } }, { jump: { target: c.iface } }]),
    rule(c.iface, [{ jump: { target: c.mac } }]),
    rule(c.mac, [{ match: { op: '==', left: { payload: { protocol: 'ether', field: 'saddr' } }, right: mac } }, { return: null }]),
    rule(c.mac, [{ drop: null }]),
  ]);
}

/** Removes the container's rule and chains; what is already gone is skipped. */
export async function teardownSpoofCheck(refId: string): Promise<void> {
  const c = chains(refId);
  const objects = await nftList(['table', 'bridge', TABLE]);
  const names = new Set(objects.flatMap((o) => (o.chain ? [o.chain.name] : [])));
  const commands: NftCommand[] = rulesOf(objects)
    .filter((r) => r.chain === BASE && r.comment === c.comment)
    .map((r) => ({ delete: obj('rule', { chain: BASE, handle: r.handle }) }));
  // nft deletes only empty chains that nothing jumps to: flush both, then delete both.
  const present = [c.iface, c.mac].filter((n) => names.has(n));
  for (const name of present) commands.push({ flush: obj('chain', { name }) });
  for (const name of present) commands.push({ delete: obj('chain', { name }) });
  await nftApply(commands);
}
