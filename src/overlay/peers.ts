// What makes another node's subnet reachable through flannel.<VNI>, exactly as flannel
// programs it (and as the walk-through shows on worker01 for worker02):
//   route  10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
//   neigh  10.244.2.0 dev flannel.1 lladdr <worker02's VtepMAC> PERMANENT
//   fdb    <worker02's VtepMAC> dev flannel.1 dst 172.16.1.102 self permanent
// The route sends the packet to the peer's gateway address, the neighbour entry gives
// that address the peer VTEP's MAC, and the fdb entry tells VXLAN where that MAC lives.
import { bridgeBatch, fdbDelLine, fdbReplaceLine, listFdb } from '../kernel/fdb.ts';
import { listNeighs, neighDelLine, neighReplaceLine } from '../kernel/neigh.ts';
import { IP, run, runOk } from '../kernel/run.ts';
import { contains, formatCidr, formatIp, parseCidr, parseIp, type Cidr } from './ipv4.ts';
import type { Lease } from './lease.ts';

export interface Peer {
  subnet: Cidr;
  publicIP: string;
  vtepMAC: string;
}

/** The lease as a peer to program; undefined when it cannot be one (another backend, no MAC). */
export function peerOf(lease: Lease): Peer | undefined {
  if (lease.backendType !== 'vxlan' || !lease.vtepMAC || parseIp(lease.publicIP) === undefined) return undefined;
  return { subnet: lease.subnet, publicIP: lease.publicIP, vtepMAC: lease.vtepMAC };
}

export function samePeer(a: Peer, b: Peer): boolean {
  return a.subnet.ip === b.subnet.ip && a.subnet.len === b.subnet.len && a.publicIP === b.publicIP && a.vtepMAC === b.vtepMAC;
}

const gateway = (p: Peer) => formatIp(p.subnet.ip);

/**
 * Programs `set` and removes `drop` on `dev`. A drop whose subnet (route, neighbour) or MAC
 * (fdb) is also being set keeps that part: a peer that changed MAC keeps its route.
 * At most four processes: removals first (failures ignored: gone is gone), then additions.
 */
export async function applyPeers(dev: string, set: readonly Peer[], drop: readonly Peer[]): Promise<void> {
  const setSubnets = new Set(set.map((p) => p.subnet.ip));
  const setMacs = new Set(set.map((p) => p.vtepMAC));
  const ipDel: string[] = [];
  const fdbDel: string[] = [];
  for (const p of drop) {
    if (!setSubnets.has(p.subnet.ip)) ipDel.push(`route del ${formatCidr(p.subnet)} dev ${dev}`, neighDelLine(gateway(p), dev));
    if (!setMacs.has(p.vtepMAC)) fdbDel.push(fdbDelLine(p.vtepMAC, dev, p.publicIP));
  }
  await removeLines(ipDel, fdbDel);
  // fdb first, then neighbour, then route: a packet routed is never left without a way out.
  await bridgeBatch(set.map((p) => fdbReplaceLine(p.vtepMAC, dev, p.publicIP)));
  const ipAdd = set.flatMap((p) => [neighReplaceLine(gateway(p), dev, p.vtepMAC), `route replace ${formatCidr(p.subnet)} via ${gateway(p)} dev ${dev} onlink`]);
  if (ipAdd.length > 0) await runOk(IP, ['-batch', '-'], `${ipAdd.join('\n')}\n`);
}

/**
 * Makes `dev` carry exactly `peers`: reads what the kernel has, removes the routes and
 * neighbours inside `network` and the fdb entries that no peer accounts for, then sets
 * every peer. Run after (re)connecting, when events may have been missed.
 */
export async function reconcilePeers(dev: string, network: Cidr, peers: readonly Peer[]): Promise<void> {
  const [routes, neighs, fdb] = await Promise.all([listRoutes(dev), listNeighs(dev), listFdb(dev)]);
  const subnets = new Set(peers.map((p) => formatCidr(p.subnet)));
  const gateways = new Set(peers.map(gateway));
  const fdbWanted = new Set(peers.map((p) => `${p.vtepMAC} ${p.publicIP}`));
  const ipDel: string[] = [];
  for (const r of routes) {
    const c = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
    if (c && contains(network, c.ip) && !subnets.has(formatCidr(c))) ipDel.push(`route del ${r.dst} dev ${dev}`);
  }
  for (const n of neighs) {
    const ip = parseIp(n.dst);
    if (ip !== undefined && contains(network, ip) && !gateways.has(n.dst)) ipDel.push(neighDelLine(n.dst, dev));
  }
  const fdbDel = fdb.filter((e) => !fdbWanted.has(`${e.mac} ${e.dst ?? ''}`)).map((e) => fdbDelLine(e.mac, dev, e.dst));
  await removeLines(ipDel, fdbDel);
  await applyPeers(dev, peers, []);
}

/** Removals: failures are ignored (what is already gone is gone). */
async function removeLines(ipDel: string[], fdbDel: string[]): Promise<void> {
  if (ipDel.length > 0) await run(IP, ['-force', '-batch', '-'], `${ipDel.join('\n')}\n`);
  await bridgeBatch(fdbDel, true);
}

async function listRoutes(dev: string): Promise<Array<{ dst: string }>> {
  const out = await runOk(IP, ['-4', '-j', 'route', 'show', 'dev', dev]);
  return out.trim() === '' ? [] : (JSON.parse(out) as Array<{ dst: string }>);
}
