// The explanation as numbered hops, in the words and commands of the blog (and, for the
// backends the blog does not use, in the same style).
import type { Explanation, Neighbour, Overlay, RouteLookup } from './walk.ts';

/** A neighbour entry's line as `ip neigh show` prints it. */
const neighLine = (n: Neighbour): string => [n.ip, n.lladdr && `lladdr ${n.lladdr}`, ...n.state].filter(Boolean).join(' ');

const ind = (n: number) => ' '.repeat(n);

function lookup(r: RouteLookup, pad: number): string[] {
  const matched = r.matched
    ? `   (table entry: ${[r.matched.dst, r.matched.gateway && `via ${r.matched.gateway}`, r.matched.dev && `dev ${r.matched.dev}`, ...r.matched.flags].filter(Boolean).join(' ')})`
    : '';
  return [`${ind(pad)}$ ${r.command}`, `${ind(pad)}${r.text}${matched}`];
}

/** "172.16.1.102:8472", "[fd00:172:16:1::102]:8472". */
const hostPort = (ip: string, port: number | undefined) => `${ip.includes(':') ? `[${ip}]` : ip}:${port ?? '?'}`;

function overlayLines(o: Overlay, n: number, to: string, via: string): string[] {
  const out: string[] = [];
  out.push(`${ind(3)}An onlink route through ${o.device}: the next hop ${via} is looked up in the neighbour table:`);
  out.push(`${ind(5)}$ ip neigh show ${via} dev ${o.device}`);
  if (o.neighbour) {
    out.push(`${ind(5)}${neighLine(o.neighbour)}`);
  } else {
    out.push(`${ind(5)}(no entry: nothing tells ${o.device} which node owns ${via}; the overlay agent programs these)`);
  }
  if (o.neighbour?.lladdr) {
    out.push(`${ind(3)}and that MAC in ${o.device}'s forwarding database:`);
    out.push(`${ind(5)}$ bridge fdb show dev ${o.device} | grep ${o.neighbour.lladdr}`);
    if (o.fdb.length === 0) out.push(`${ind(5)}(no entry: the VXLAN device does not know where to send frames for ${o.neighbour.lladdr})`);
    for (const f of o.fdb) out.push(`${ind(5)}${[f.mac, `dev ${o.device}`, f.dst && `dst ${f.dst}`, ...f.flags, f.state].filter(Boolean).join(' ')}`);
    if (o.remoteVtep) out.push(`${ind(3)}so the remote VTEP for ${to} is ${o.remoteVtep}.`);
  }
  const v = o.vxlan ?? {};
  const desc = [
    v.id !== undefined && `id ${v.id}`,
    v.local && `local ${v.local}`,
    v.dev && `dev ${v.dev}`,
    v.dstport !== undefined && `dstport ${v.dstport}`,
    v.learning === false && 'nolearning',
  ]
    .filter(Boolean)
    .join(' ');
  out.push(`${n}. ${o.device} is a VXLAN device (${desc || 'no details'}):`);
  if (o.remoteVtep) {
    out.push(
      `${ind(3)}the packet leaves${v.dev ? ` ${v.dev}` : ''} encapsulated in UDP ${v.local ?? '?'} -> ${hostPort(o.remoteVtep, v.dstport)}, VNI ${v.id ?? '?'};`,
    );
    out.push(`${ind(3)}the node ${o.remoteVtep} decapsulates it and routes it to its own bridge.`);
  } else {
    out.push(`${ind(3)}without a remote VTEP the packet cannot be encapsulated: it is dropped here.`);
  }
  return out;
}

export function renderText(ex: Explanation): string {
  const p = ex.pod;
  const out: string[] = [];
  const who = [p.containerId && `container ${p.containerId}`, p.ifname && `interface ${p.ifname}`, p.network && `network ${p.network}`]
    .filter(Boolean)
    .join(', ');
  out.push(`Pod ${p.ip}${who ? `: ${who}` : ''}`);
  if (p.leaseFile) out.push(`${ind(2)}lease: ${p.leaseFile} (container ${p.containerId ?? '?'}${p.ifname ? `, ifname ${p.ifname}` : ''})`);
  out.push(`${ind(2)}netns: ${p.netns} (found through ${p.netnsFoundBy}${p.cacheFile && p.netnsFoundBy.startsWith('libcni') ? `: ${p.cacheFile}` : ''})`);
  out.push(`${ind(2)}to:    ${ex.to}`);
  out.push('');

  let n = 1;
  out.push(`${n}. In the pod, the route lookup for ${ex.to}:`);
  if (ex.podRoute) out.push(...lookup(ex.podRoute, 5));
  else out.push(`${ind(5)}(none: the pod cannot send to ${ex.to})`);
  const i = p.iface;
  if (ex.hostVeth) {
    out.push(`${ind(3)}${i.name} (ifindex ${i.ifindex}, ${i.mac ?? 'no mac'}, mtu ${i.mtu}) is one end of a veth pair; its peer_ifindex ${i.peerIfindex} is,`);
    out.push(`${ind(3)}on the node, ${ex.hostVeth.name} (ifindex ${ex.hostVeth.ifindex}, ${ex.hostVeth.mac ?? 'no mac'}, mtu ${ex.hostVeth.mtu}).`);
  }
  const h = ex.hostVeth;
  if (h && ex.bridge) {
    n++;
    const b = ex.bridge;
    out.push(`${n}. ${h.name} is a port of the bridge ${b.name}${h.hairpin === undefined ? '' : ` (hairpin ${h.hairpin ? 'on' : 'off'})`}:`);
    out.push(`${ind(5)}${b.name}: ${b.addresses.join(', ') || 'no address'}, ${b.mac ?? 'no mac'}, mtu ${b.mtu}`);
    const gw = ex.podRoute?.gateway;
    if (gw && b.addresses.some((a) => a.split('/')[0] === gw)) out.push(`${ind(3)}The pod's gateway ${gw} is ${b.name}'s address: the node routes the packet.`);
  } else if (h) {
    out.push(`${ind(3)}${h.name} is not a port of any bridge.`);
  }

  if (ex.nodeRoute) {
    n++;
    const from = ex.nodeRoute.command.includes(' iif ') && ex.bridge ? ` for a packet from ${p.ip} arriving on ${ex.bridge.name}` : '';
    out.push(`${n}. On the node, the route lookup${from}:`);
    out.push(...lookup(ex.nodeRoute, 5));
  }
  const d = ex.delivery;
  if (d?.kind === 'local') {
    const own = ex.podRoute?.type === 'local';
    if (!own && !ex.nodeRoute) n++;
    const where = own
      ? `${ind(3)}${ex.to} is the pod's own address`
      : ex.nodeRoute
        ? `${ind(3)}${ex.to} is the node's own address`
        : `${n}. ${ex.to} is ${d.dev}'s own address`;
    out.push(`${where}: delivered locally, never leaving ${own ? 'the pod' : 'the node'}.`);
  } else if (d?.kind === 'bridge') {
    if (!ex.nodeRoute) {
      n++;
      out.push(`${n}. ${ex.to} is on ${d.bridge}'s subnet: the bridge switches the frame, the node routes nothing.`);
    } else {
      out.push(`${ind(3)}${ex.to} is on ${d.bridge}'s subnet: the node hands the packet back to the bridge.`);
    }
    if (d.pod) {
      out.push(
        `${ind(3)}It leaves through ${d.pod.hostVeth ?? '?'}, the peer of ${d.pod.iface} of ${d.pod.containerId ? `container ${d.pod.containerId}` : 'the pod'} (netns ${d.pod.netns}).`,
      );
    } else {
      out.push(`${ind(3)}No pod of this node holds ${ex.to}.`);
    }
  } else if (d?.kind === 'vxlan') {
    n++;
    out.push(...overlayLines(d.overlay, n, ex.to, ex.nodeRoute?.gateway ?? ex.to));
  } else if (d?.kind === 'direct') {
    n++;
    out.push(`${n}. A route via another node: ${d.gateway} is on ${d.dev}'s network, and ${d.subnet} is a pod subnet of ${d.network}`);
    out.push(`${ind(3)}(flannel's host-gw, or vxlan's DirectRouting): no encapsulation. The next hop in the neighbour table:`);
    out.push(`${ind(5)}$ ip neigh show ${d.gateway} dev ${d.dev}`);
    if (d.neighbour) out.push(`${ind(5)}${neighLine(d.neighbour)}`);
    else out.push(`${ind(5)}(no entry yet: the kernel asks for ${d.gateway}'s MAC with the first packet)`);
    const mac = d.neighbour?.lladdr ? `, to ${d.neighbour.lladdr}` : '';
    out.push(`${ind(3)}The packet leaves ${d.dev} as it is${mac}; the node ${d.gateway} routes it to its own bridge.`);
  } else if (d?.kind === 'route') {
    out.push(`${ind(3)}The packet leaves the node through ${d.dev}${d.gateway ? ` via ${d.gateway}` : ''}: outside the pod network.`);
  }
  for (const note of ex.notes) out.push(`note: ${note}`);
  return `${out.join('\n')}\n`;
}
