// ADD: a short list of named steps, each with its undo; when one fails, what was done is
// undone (lease, veth, rules) and the error answered. Each step returns what later steps
// need. The node and the pod each get a netlink connection (the pod's opened inside it);
// the veth pair is made on a worker thread while IPAM runs, and the bridge is read on a
// second node connection meanwhile; then the node's side (bridge, port, gateway address)
// and the pod's (sysctls, addresses, routes) are set up side by side. Node sysctls are
// plain file writes; the pod's are written from inside it.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { ipamFor } from './ipam.ts';
import type { Interface, Result } from '../../cni/result.ts';
import { withRollback } from '../../cni/rollback.ts';
import type { Invocation } from '../../cni/skel.ts';
import { Errno, isErrno, KernelError } from '../../kernel/errors.ts';
import { randomBytes, randomMac } from '../../kernel/hash.ts';
import { Netlink } from '../../kernel/netlink.ts';
import { addrCidr, type Addr, type Link } from '../../kernel/records.ts';
import { ensureSysctl, trySysctl } from '../../kernel/sysctl.ts';
import type { Cidr } from '../../net/ip.ts';
import { NetnsHandle } from '../../sys/netns.ts';
import { planAddresses, type AddressPlan } from './address-plan.ts';
import { deleteLink } from './pod-deletion.ts';
import { bridgeAddrChanges } from './bridge-addrs.ts';
import { pairOp, podAddrOps, podRouteOps, portOps, type HostPlan, type PodPlan } from './changes.ts';
import { checkAddConf, loadConf, type BridgeConf } from './conf.ts';
import { setupMasq, teardownMasq } from './masq.ts';
import { setupSpoofCheck, spoofRefId, teardownSpoofCheck } from './spoofcheck.ts';
import { phase } from './timings.ts';
import { applyVlans, defaultPvid, type PortVlans } from './vlans.ts';

/** "veth" + 8 hex characters; a clash shows up as EEXIST and is retried. */
const randomVethName = () => `veth${randomBytes(4).toString('hex')}`;

/** A promise whose failure is kept for later instead of becoming an unhandled rejection. */
function later<T>(p: Promise<T>): () => Promise<T> {
  const kept = p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  return async () => {
    const r = await kept;
    if (!r.ok) throw r.error;
    return r.value;
  };
}

/** Some kernels are built without VLAN filtering on bridges (CONFIG_BRIDGE_VLAN_FILTERING). */
const noVlanFiltering = () =>
  new CniError(
    ErrCode.UnsupportedField,
    'this kernel has no VLAN filtering on bridges: "vlan" and "vlanTrunk" cannot be used here',
    'CONFIG_BRIDGE_VLAN_FILTERING is off',
  );

const notABridge = (name: string) => new CniError(ErrCode.InvalidNetworkConfig, `"${name}" already exists but is not a bridge`);

/** Where an ADD works: the node's namespace (two connections: one for changes, one for
 *  questions that must neither wait behind a slow change nor block Node's thread while
 *  that change holds the kernel's rtnl lock) and the pod's. */
interface Kernel {
  node: Netlink;
  nodeAsk: Netlink;
  podNs: NetnsHandle;
  pod: Netlink;
}

function openKernel(netns: string): Kernel {
  // Code 4 when it is no network namespace. Both connections live for this call only: they
  // may remember link indexes (a lookup per op less).
  const { ns: podNs, value: pod } = NetnsHandle.openRunning(netns, () => Netlink.open({ rememberIndexes: true }));
  const opened: Array<{ close(): void }> = [podNs, pod];
  try {
    const node = Netlink.open({ rememberIndexes: true });
    opened.push(node);
    return { node, nodeAsk: Netlink.open({ offThread: true }), podNs, pod };
  } catch (err) {
    for (const o of opened) o.close();
    throw err;
  }
}

function closeKernel(k: Kernel): void {
  for (const o of [k.node, k.nodeAsk, k.pod, k.podNs]) o.close();
}

/** The host end, named and given its MAC by us (set explicitly, udev leaves it alone). */
interface Veth {
  name: string;
  mac: string;
}

/** Our bridge as found before this ADD changed it (no link: it does not exist yet). */
interface BridgeNow {
  link?: Link;
  addrs: Cidr[];
}

/** `<bridge>.<vlan>`, the gateway link of a VLAN with isGateway. */
interface VlanGateway {
  name: string;
  link?: Link;
  addrs: () => Promise<Cidr[]>;
  /** The host end of its veth pair, when it is to be made. */
  port: string;
  mac: string;
}

export async function cmdAdd(inv: Invocation): Promise<Result> {
  phase('start');
  // Everything that can be refused from the input is refused before anything is made.
  const conf = loadConf(inv);
  checkAddConf(conf);
  phase('config read');
  const ipam = conf.ipamType ? ipamFor(inv, conf.ipamType) : undefined;
  phase('IPAM plugin found');
  const k = openKernel(inv.netns);
  phase('sockets opened');
  try {
    return await withRollback(async (rb) => {
      // The veth pair needs nothing from IPAM: it is made while IPAM works. Deleting the
      // host end removes the pod's end too.
      const pair = makePair(k, conf, inv);
      pair.catch(() => {}); // awaited below
      rb.onUndo('veth pair', async () => {
        const veth = await pair.catch(() => undefined); // a failed pair cleaned up after itself
        if (veth) await deleteLink(k.node, veth.name);
      });
      // Asked while the kernel makes the pair, on the other connection.
      const bridgeNow = later(readBridge(k.nodeAsk, conf.bridge));
      const vlanGw = conf.vlan > 0 && conf.isGateway && ipam ? await readVlanGateway(k, conf) : undefined;
      const lease = ipam
        ? await rb.step(
            'IPAM ADD',
            () => ipam.add(),
            () => ipam.del(),
          )
        : undefined;
      phase('ipam added');
      const veth = await rb.step('veth pair', () => pair);
      phase('veth made');
      const p = lease ? planAddresses(lease.ips ?? [], lease.routes ?? [], conf) : undefined;
      // The node's side joins the port to the bridge and sets the gateway while the pod
      // is configured.
      const port = setUpPort(k, conf, veth, await bridgeNow(), p, vlanGw);
      port.catch(() => {}); // awaited below
      const podLink = await rb.step('pod interface', () => setUpPod(k, conf, inv.ifname, p));
      const bridgeMac = await rb.step('bridge port', () => port);
      phase('pod and port set up');
      await rb.step('forwarding', () => enableForwarding(conf, p));
      await rb.step('VLANs', () => setUpVlans(conf, veth, vlanGw));
      if (p && conf.ipMasq) {
        const who = { network: conf.name, ifname: inv.ifname, containerId: inv.containerId };
        const families = [...new Set(p.addrs.map((a) => a.ip.family))];
        await rb.step(
          'ipMasq',
          () => setupMasq(conf, p.addrs, who),
          () => teardownMasq(conf, who, families),
          { partial: true },
        );
      }
      if (conf.macspoofchk) {
        const refId = spoofRefId(inv.containerId, inv.ifname);
        await rb.step(
          'macspoofchk',
          () => setupSpoofCheck(veth.name, podLink.mac!, refId),
          () => teardownSpoofCheck(refId),
          { partial: true },
        );
      }
      // The pod end has carrier only when the host end is up too: that answers the
      // reference's wait for the port, most often without looking again.
      if (!conf.disableContainerInterface && !podLink.lowerUp) await rb.step('port up', () => waitPortUp(k.node, veth.name));
      phase('done');
      return result(conf, inv, veth, bridgeMac, podLink.mac!, vlanGw, p, lease);
    });
  } finally {
    closeKernel(k);
  }
}

/**
 * The veth pair, its pod end moved into the pod, the host end up (one request); then the
 * sysctls that do not wait for IPAM's answer. The kernel makes the pair on a worker thread
 * (the request is sent before this returns). A clash of our random name is retried with another; whatever
 * fails after the pair exists removes it again.
 */
async function makePair(k: Kernel, conf: BridgeConf, inv: Invocation): Promise<Veth> {
  for (let attempt = 0; ; attempt++) {
    const veth: Veth = { name: randomVethName(), mac: randomMac() };
    try {
      await k.node.apply(pairOp({ veth: veth.name, vethMac: veth.mac, mtu: conf.mtu, ifname: inv.ifname, netns: inv.netns, podMac: conf.mac }));
    } catch (err) {
      if (!isErrno(err, Errno.EEXIST) || attempt >= 3) throw err;
      // Either our random name was taken (try another), or the pod has that interface already.
      if (!(await k.node.link(veth.name))) throw new CniError(ErrCode.Internal, `container veth name provided (${inv.ifname}) already exists`);
      continue;
    }
    try {
      trySysctl(`net/ipv6/conf/${veth.name}/accept_ra`, '0'); // we own the routes of our links
      earlyPodSysctls(k.podNs, conf, inv.ifname);
    } catch (err) {
      await deleteLink(k.node, veth.name).catch(() => {});
      throw err;
    }
    return veth;
  }
}

/**
 * The pod's sysctls that IPAM's answer does not decide, written as soon as its interface
 * exists (while IPAM may still work), before it gets addresses or goes up. Best effort, as
 * the reference's.
 */
function earlyPodSysctls(podNs: NetnsHandle, conf: BridgeConf, ifname: string): void {
  if (!conf.ipamType) return; // layer 2: the reference sets none
  podNs.run(() => {
    if (conf.enabledad) {
      trySysctl(`net/ipv6/conf/${ifname}/enhanced_dad`, '1');
      trySysctl(`net/ipv6/conf/${ifname}/accept_dad`, '1');
    } else {
      trySysctl(`net/ipv6/conf/${ifname}/accept_dad`, '0');
    }
    trySysctl(`net/ipv4/conf/${ifname}/arp_notify`, '1');
  });
}

const cidrsOf = (addrs: Addr[]): Cidr[] => addrs.map(addrCidr);

/** Our bridge and its addresses, if it exists. */
async function readBridge(nodeAsk: Netlink, name: string): Promise<BridgeNow> {
  const link = await nodeAsk.link(name);
  if (link?.kind !== 'bridge') return { addrs: [] };
  return { link, addrs: cidrsOf(await nodeAsk.addrs({ index: link.index })) };
}

async function readVlanGateway(k: Kernel, conf: BridgeConf): Promise<VlanGateway> {
  const name = `${conf.bridge}.${conf.vlan}`;
  // On the question connection: the other one is busy making the veth pair.
  const link = await k.nodeAsk.link(name);
  const addrs = later(link ? k.nodeAsk.addrs({ index: link.index }).then(cidrsOf) : Promise.resolve([]));
  return { name, ...(link ? { link } : {}), addrs, port: link ? '' : randomVethName(), mac: randomMac() };
}

/** The bridge (made or reused), the port, the gateway address; resolves to the bridge's MAC. */
async function setUpPort(
  k: Kernel,
  conf: BridgeConf,
  veth: Veth,
  found: BridgeNow,
  p: AddressPlan | undefined,
  vlanGw: VlanGateway | undefined,
): Promise<string | undefined> {
  const addrDevice = vlanGw?.name ?? conf.bridge;
  const existing = vlanGw ? await vlanGw.addrs() : found.addrs;
  const changes = p ? bridgeAddrChanges(addrDevice, existing, p.bridgeAddrs, conf.forceAddress) : { remove: [], add: [] };
  // The gateway link's MAC is pinned (the reference sets it to itself) so that it stops
  // following its ports': at creation, or when we add its address. Re-pinning on every
  // ADD, as the reference does, flushes the bridge's ARP entries each time.
  const pinNow = changes.add.length > 0;
  const hostPlan = (bridge: Link | undefined): HostPlan => ({
    bridge: conf.bridge,
    createBridge: !bridge,
    mtu: conf.mtu,
    vlanFiltering: conf.vlanFiltering,
    promisc: conf.promiscMode,
    pinBridgeMac: vlanGw || !pinNow ? undefined : (bridge?.mac ?? randomMac()),
    veth: veth.name,
    hairpin: conf.hairpinMode,
    isolated: conf.portIsolation,
    vlanGateway: vlanGw && {
      name: vlanGw.name,
      port: vlanGw.port,
      mtu: bridge?.mtu ?? conf.mtu,
      mac: vlanGw.mac,
      create: !vlanGw.link,
      pinMac: pinNow ? vlanGw.link?.mac : undefined,
    },
    addrDevice,
    removeAddrs: changes.remove,
    addAddrs: changes.add,
  });
  let bridge = found.link;
  for (let attempt = 0; ; attempt++) {
    try {
      for (const op of portOps(hostPlan(bridge))) await k.node.apply(op);
      break;
    } catch (err) {
      const creating = err instanceof KernelError && err.op?.kind === 'bridge-add';
      if (creating && err.errno === Errno.EOPNOTSUPP && conf.vlanFiltering) throw noVlanFiltering();
      if (!creating || err.errno !== Errno.EEXIST || attempt >= 3) throw err;
      // A concurrent ADD made the bridge meanwhile, or the name is some other link's.
      bridge = await k.node.link(conf.bridge);
      if (!bridge) throw err;
      if (bridge.kind !== 'bridge') throw notABridge(conf.bridge);
    }
  }
  for (const l of [conf.bridge, ...(vlanGw?.port ? [vlanGw.name, vlanGw.port] : [])]) trySysctl(`net/ipv6/conf/${l}/accept_ra`, '0');
  // An unpinned bridge has taken its ports' lowest MAC: read it now for the result.
  return (await k.node.link(conf.bridge))?.mac;
}

/** The pod's side: addresses, up, routes; resolves to its link. */
async function setUpPod(k: Kernel, conf: BridgeConf, ifname: string, p: AddressPlan | undefined): Promise<Link> {
  const { pod } = k;
  if (p?.addrs.some((a) => a.ip.family === 6)) {
    k.podNs.run(() => {
      trySysctl('net/ipv6/conf/lo/disable_ipv6', '0');
      trySysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, '0');
    });
  }
  const podPlan: PodPlan = { ifname, addrs: p?.addrs ?? [], up: !conf.disableContainerInterface, routes: p?.podRoutes ?? [] };
  for (const op of podAddrOps(podPlan)) await pod.apply(op);
  // With DAD on, routes wait until the addresses are no longer tentative (as the reference).
  if (conf.enabledad && p?.ips.some((ip) => ip.gateway?.includes(':'))) await settleDad(pod, ifname);
  for (const op of podRouteOps(podPlan)) await pod.apply(op);
  const link = await pod.link(ifname);
  if (!link?.mac) throw new CniError(ErrCode.Internal, `could not read the MAC of "${ifname}"`);
  return link;
}

/** Waits (up to 10 s, as the reference) until no IPv6 address of `ifname` is tentative. */
async function settleDad(pod: Netlink, ifname: string): Promise<void> {
  const link = await pod.link(ifname);
  if (!link) return;
  for (let n = 0; n < 200; n++) {
    const addrs = await pod.addrs({ index: link.index, family: 6 });
    if (!addrs.some((a) => a.tentative)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A gateway bridge routes: forwarding on for each family it is the gateway of. */
function enableForwarding(conf: BridgeConf, p: AddressPlan | undefined): void {
  if (!p || !conf.isGateway) return;
  if (p.gwFamilies.has(4)) ensureSysctl('net/ipv4/ip_forward', '1');
  if (p.gwFamilies.has(6)) ensureSysctl('net/ipv6/conf/all/forwarding', '1');
}

async function setUpVlans(conf: BridgeConf, veth: Veth, vlanGw: VlanGateway | undefined): Promise<void> {
  if (!conf.vlanFiltering) return;
  const dropDefault = conf.preserveDefaultVlan ? undefined : defaultPvid(conf.bridge) || undefined;
  const ports: PortVlans[] = [{ port: veth.name, access: conf.vlan || undefined, trunk: conf.vlanTrunk, dropDefault }];
  if (vlanGw?.port) ports.push({ port: vlanGw.port, access: conf.vlan, dropDefault });
  await applyVlans(ports).catch((err: Error) => {
    throw /not supported/.test(err.message) ? noVlanFiltering() : err;
  });
}

/** The reference waits for the host end to be up (0, 50, 500, 1000, 1000 ms); finer steps here. */
async function waitPortUp(node: Netlink, name: string): Promise<void> {
  const delays = [0, 1, 2, 5, 10, 20, 50, 100, 300, 500, 1000, 1000];
  let state = 'unknown';
  for (const ms of delays) {
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    state = (await node.link(name))?.operstate ?? 'missing';
    if (state === 'up') return;
  }
  throw new CniError(ErrCode.Internal, `bridge port in error state: ${state}`);
}

/** The reference's result: bridge, host end, pod end (its sandbox), IPAM's IPs and routes. */
function result(
  conf: BridgeConf,
  inv: Invocation,
  veth: Veth,
  bridgeMac: string | undefined,
  podMac: string,
  vlanGw: VlanGateway | undefined,
  p: AddressPlan | undefined,
  lease: Result | undefined,
): Result {
  const interfaces: Interface[] = [
    { name: conf.bridge, mac: bridgeMac },
    { name: veth.name, mac: veth.mac },
    { name: inv.ifname, mac: podMac, sandbox: inv.netns },
  ];
  if (vlanGw) interfaces.push({ name: vlanGw.name, mac: vlanGw.link?.mac ?? vlanGw.mac });
  const out: Result = { cniVersion: conf.cniVersion, interfaces };
  if (p) {
    out.ips = p.ips;
    out.routes = p.routes;
  }
  const dns = conf.dns ?? lease?.dns;
  if (dns) out.dns = dns;
  return out;
}
