// ADD: a short list of named steps, each with its undo; when one fails, what was done is
// undone (lease, veth, rules) and the error answered. The node and the pod each get a
// session (a netlink socket with our addon, else an ip process, started at once); the veth
// pair is made while IPAM runs; then the node gets one batch (bridge, port, gateway
// address), the pod one (its sysctls, addresses, routes); node sysctls are plain file
// writes. Both batches end by showing a link, which gives the result its MACs.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { ipamFor, type Ipam } from './ipam.ts';
import type { Interface, Result } from '../../cni/result.ts';
import { withRollback } from '../../cni/rollback.ts';
import type { Invocation } from '../../cni/skel.ts';
import { applyVlans, defaultPvid, type PortVlans } from '../../kernel/bridge-vlan.ts';
import { randomBytes, randomMac } from '../../kernel/hash.ts';
import { deleteLink, linkFromJson, readLink, type LinkState } from '../../kernel/links.ts';
import { requireNetns } from '../../kernel/ns.ts';
import { command } from '../../kernel/legacy-ops.ts';
import { localSession, startNodeAndPod, type PodSession } from '../../kernel/pod-session.ts';
import { IpBatchError, type Session } from '../../kernel/session.ts';
import { setupSpoofCheck, spoofRefId, teardownSpoofCheck } from '../../kernel/spoofcheck.ts';
import { ensureSysctl, trySysctl } from '../../kernel/sysctl.ts';
import { addrsFromJson, bridgeAddrChanges } from './bridge-addrs.ts';
import { pairCommands, podAddrCommands, podRouteCommands, portCommands, type HostPlan, type PodPlan } from './commands.ts';
import { checkAddConf, loadConf, type BridgeConf } from './conf.ts';
import { plan, type Plan } from './gateways.ts';
import { setupMasq, teardownMasq } from './masq.ts';
import { trace } from './trace.ts';

/** "veth" + 8 hex characters; a clash shows up as "File exists" and is retried. */
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

/** What the steps of one ADD share. */
interface Add {
  inv: Invocation;
  conf: BridgeConf;
  ipam?: Ipam;
  /** The node's session; replaced by a new one when a batch failed and is retried. */
  node: Session;
  sessions: Session[];
  pod: PodSession;
  /** Our bridge with its addresses (as `ip -j -d addr show` prints it), if it exists; asked
   *  once the veth pair is on its way. */
  bridges?: () => Promise<any[]>;
  /** `<bridge>.<vlan>`, the gateway link of a VLAN with isGateway. */
  vlanGw?: { name: string; link: LinkState | null; addrs: () => Promise<any[]>; port: string; mac: string };
  /** The host end: named and given its MAC by us (set explicitly, udev leaves it alone). */
  veth: { name: string; mac: string };
}

export async function cmdAdd(inv: Invocation): Promise<Result> {
  trace('start');
  // Everything that can be refused from the input is refused before anything is made.
  const conf = loadConf(inv);
  checkAddConf(conf, inv.ifname);
  requireNetns(inv.netns);
  const add = await start(inv, conf);
  trace('sessions started');
  try {
    return await withRollback(async (rb) => {
      // The veth pair needs nothing from IPAM: it is made while IPAM works. Deleting the
      // host end (once its making is over, however far it got) removes the pod's end too.
      const pair = makePair(add);
      pair.catch(() => {}); // awaited below
      rb.onUndo('veth pair', async () => {
        await pair.catch(() => {});
        await deleteLink(add.veth.name);
      });
      const lease = add.ipam
        ? await rb.step(
            'IPAM ADD',
            () => add.ipam!.add(),
            () => add.ipam!.del(),
          )
        : undefined;
      trace('ipam added');
      await rb.step('veth pair', () => pair);
      trace('veth made');
      const p = lease ? plan(lease.ips ?? [], lease.routes ?? [], conf) : undefined;
      // The node's session joins the port to the bridge and sets the gateway while the pod
      // is configured.
      const port = setUpPort(add, p);
      port.catch(() => {}); // awaited below
      const podLink = await rb.step('pod interface', () => setUpPod(add, p));
      const bridgeMac = await rb.step('bridge port', () => port);
      trace('pod and port set up');
      await rb.step('forwarding', () => enableForwarding(add, p));
      await rb.step('VLANs', () => setUpVlans(add));
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
          () => setupSpoofCheck(add.veth.name, podLink.address, refId),
          () => teardownSpoofCheck(refId),
          { partial: true },
        );
      }
      // The pod end has carrier only when the host end is up too: that answers the
      // reference's wait for the port, most often without looking again.
      if (!conf.disableContainerInterface && !(podLink.flags ?? []).includes('LOWER_UP')) await rb.step('port up', () => waitPortUp(add.veth.name));
      trace('done');
      return result(add, bridgeMac, podLink.address, p, lease);
    });
  } finally {
    await Promise.all([...add.sessions.map((s) => s.abort()), add.pod.abort()]);
  }
}

/** Opens the node's and the pod's sessions; with a VLAN gateway, reads that link. */
async function start(inv: Invocation, conf: BridgeConf): Promise<Add> {
  const ipam = conf.ipamType ? ipamFor(inv, conf.ipamType) : undefined;
  const { node, pod } = startNodeAndPod(inv.netns);
  const add: Add = { inv, conf, ipam, node, sessions: [node], pod, veth: { name: randomVethName(), mac: randomMac() } };
  if (conf.vlan > 0 && conf.isGateway && ipam) {
    const name = `${conf.bridge}.${conf.vlan}`;
    const link = await readLink(name);
    const addrs = later(link ? node.askNow(command({ kind: 'addr-show', dev: name }, `read ${name}`)) : Promise.resolve([]));
    add.vlanGw = { name, link, addrs, port: link ? '' : randomVethName(), mac: randomMac() };
  }
  return add;
}

/** A fresh session for the node, after a failed batch ended the last one. */
function newNodeSession(add: Add): Session {
  add.node = localSession();
  add.sessions.push(add.node);
  return add.node;
}

/** Retried failures happen on a batch's first line, before it changed anything. */
const existsAlready = (err: unknown, what: string) =>
  err instanceof IpBatchError && (err.command?.what ?? '').startsWith(what) && /File exists/.test(err.stderr);

/**
 * The veth pair, its pod end moved into the pod; the host end up. Sent before IPAM starts
 * (with the addon the kernel makes it on a worker thread meanwhile); the bridge is looked
 * up while it is made.
 */
async function makePair(add: Add): Promise<void> {
  // Nothing is made before we know the pod's session is inside its namespace.
  if (!add.pod.enteredNow) await add.pod.ready();
  for (let attempt = 0; ; attempt++) {
    const commands = pairCommands(hostBase(add));
    const show = commands.pop()!;
    try {
      add.node.send(commands);
      // Empty when our bridge does not exist yet (that is no failure).
      add.bridges ??= later(add.node.askNow(command({ kind: 'addr-show', type: 'bridge', names: [add.conf.bridge] }, 'list the bridges')));
      await add.node.ask(show);
      trySysctl(`net/ipv6/conf/${add.veth.name}/accept_ra`, '0'); // we own the routes of our links
      earlyPodSysctls(add);
      return;
    } catch (err) {
      if (!existsAlready(err, 'create veth pair') || attempt >= 3) throw err;
      // Our random name was taken, or the pod has that interface already.
      if (!(await readLink(add.veth.name))) throw new CniError(ErrCode.Internal, `container veth name provided (${add.inv.ifname}) already exists`);
      add.veth.name = randomVethName();
      newNodeSession(add);
      add.bridges = undefined; // asked on the failed session: ask again on the new one
    }
  }
}

/** The plan's parts that do not depend on the bridge's state. */
function hostBase(add: Add): Omit<HostPlan, 'createBridge' | 'pinBridgeMac' | 'vlanGateway' | 'addrDevice' | 'removeAddrs' | 'addAddrs'> {
  const { conf, inv, veth } = add;
  return {
    bridge: conf.bridge,
    mtu: conf.mtu,
    vlanFiltering: conf.vlanFiltering,
    promisc: conf.promiscMode,
    veth: veth.name,
    vethMac: veth.mac,
    ifname: inv.ifname,
    netns: inv.netns,
    podMac: conf.mac,
    hairpin: conf.hairpinMode,
    isolated: conf.portIsolation,
  };
}

/** The bridge (made or reused), the port, the gateway address; resolves to the bridge's MAC. */
async function setUpPort(add: Add, p: Plan | undefined): Promise<string | undefined> {
  const { conf, vlanGw } = add;
  const brJson = (await add.bridges!()).find((l) => l.ifname === conf.bridge);
  let bridge: LinkState | null = brJson ? linkFromJson(brJson) : null;
  const addrDevice = vlanGw?.name ?? conf.bridge;
  const existing = addrsFromJson(vlanGw ? await vlanGw.addrs() : brJson ? [brJson] : []);
  const changes = p ? bridgeAddrChanges(addrDevice, existing, p.bridgeAddrs, conf.forceAddress) : { remove: [], add: [] };
  // The gateway link's MAC is pinned (the reference sets it to itself) so that it stops
  // following its ports': at creation, or when we add its address. Re-pinning on every
  // ADD, as the reference does, flushes the bridge's ARP entries each time.
  const pinNow = changes.add.length > 0;
  const hostPlan = (): HostPlan => ({
    ...hostBase(add),
    createBridge: !bridge,
    pinBridgeMac: vlanGw || !pinNow ? undefined : (bridge?.mac ?? randomMac()),
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
  for (let attempt = 0; ; attempt++) {
    try {
      const shown = await add.node.finish(portCommands(hostPlan()));
      for (const l of [conf.bridge, ...(vlanGw?.port ? [vlanGw.name, vlanGw.port] : [])]) trySysctl(`net/ipv6/conf/${l}/accept_ra`, '0');
      // The last line shows the bridge: an unpinned one has taken its ports' lowest MAC.
      return shown.at(-1)?.[0]?.address;
    } catch (err) {
      if (err instanceof IpBatchError && (err.command?.what ?? '').startsWith('create bridge') && /not supported/.test(err.stderr) && conf.vlanFiltering) {
        throw noVlanFiltering();
      }
      if (!existsAlready(err, 'create bridge') || attempt >= 3) throw err;
      // A concurrent ADD made the bridge meanwhile, or the name is some other link's.
      bridge = await readLink(conf.bridge);
      if (!bridge) throw err;
      if (!bridge.isBridge) throw notABridge(conf.bridge);
      newNodeSession(add);
    }
  }
}

/**
 * The pod's sysctls that IPAM's answer does not decide, written as soon as its interface
 * exists (while IPAM may still work), before it gets addresses or goes up.
 */
function earlyPodSysctls(add: Add): void {
  const { pod, conf } = add;
  const ifname = add.inv.ifname;
  if (!conf.ipamType) return; // layer 2: the reference sets none
  if (conf.enabledad) pod.sysctl(`net/ipv6/conf/${ifname}/enhanced_dad`, '1').sysctl(`net/ipv6/conf/${ifname}/accept_dad`, '1');
  else pod.sysctl(`net/ipv6/conf/${ifname}/accept_dad`, '0');
  pod.sysctl(`net/ipv4/conf/${ifname}/arp_notify`, '1');
  void pod.prepare().catch(() => {}); // its failure shows again in finish
}

/** The pod's side: addresses, up, routes; resolves to its link as ip shows it. */
async function setUpPod(add: Add, p: Plan | undefined): Promise<{ address: string; flags?: string[] }> {
  const { pod, conf } = add;
  const ifname = add.inv.ifname;
  if (p?.addrs.some((a) => a.ip.family === 6)) {
    pod.sysctl('net/ipv6/conf/lo/disable_ipv6', '0').sysctl(`net/ipv6/conf/${ifname}/disable_ipv6`, '0');
  }
  const podPlan: PodPlan = { ifname, addrs: p?.addrs ?? [], up: !conf.disableContainerInterface, routes: p?.podRoutes ?? [] };
  let commands = [...podAddrCommands(podPlan), ...podRouteCommands(podPlan)];
  if (conf.enabledad && p?.ips.some((ip) => ip.gateway?.includes(':'))) {
    // With DAD on, routes wait until the addresses are no longer tentative (as the reference).
    for (const c of podAddrCommands(podPlan)) pod.ip(c);
    pod.settle(ifname);
    commands = podRouteCommands(podPlan);
  }
  const outputs = await pod.finish(commands);
  const link = outputs.at(-1)?.[0];
  if (typeof link?.address !== 'string') throw new CniError(ErrCode.Internal, `could not read the MAC of "${ifname}"`);
  return link;
}

/** A gateway bridge routes: forwarding on for each family it is the gateway of. */
function enableForwarding(add: Add, p: Plan | undefined): void {
  if (!p || !add.conf.isGateway) return;
  if (p.gwFamilies.has(4)) ensureSysctl('net/ipv4/ip_forward', '1');
  if (p.gwFamilies.has(6)) ensureSysctl('net/ipv6/conf/all/forwarding', '1');
}

async function setUpVlans(add: Add): Promise<void> {
  const { conf } = add;
  if (!conf.vlanFiltering) return;
  const dropDefault = conf.preserveDefaultVlan ? undefined : defaultPvid(conf.bridge) || undefined;
  const ports: PortVlans[] = [{ port: add.veth.name, access: conf.vlan || undefined, trunk: conf.vlanTrunk, dropDefault }];
  if (add.vlanGw?.port) ports.push({ port: add.vlanGw.port, access: conf.vlan, dropDefault });
  await applyVlans(ports).catch((err: Error) => {
    throw /not supported/.test(err.message) ? noVlanFiltering() : err;
  });
}

/** The reference waits for the host end to be up (0, 50, 500, 1000, 1000 ms); finer steps here. */
async function waitPortUp(name: string): Promise<void> {
  const delays = [0, 1, 2, 5, 10, 20, 50, 100, 300, 500, 1000, 1000];
  let state = 'unknown';
  for (const ms of delays) {
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    state = (await readLink(name))?.operstate ?? 'missing';
    if (state === 'up') return;
  }
  throw new CniError(ErrCode.Internal, `bridge port in error state: ${state}`);
}

/** The reference's result: bridge, host end, pod end (its sandbox), IPAM's IPs and routes. */
function result(add: Add, bridgeMac: string | undefined, podMac: string, p: Plan | undefined, lease: Result | undefined): Result {
  const interfaces: Interface[] = [
    { name: add.conf.bridge, mac: bridgeMac },
    { name: add.veth.name, mac: add.veth.mac },
    { name: add.inv.ifname, mac: podMac, sandbox: add.inv.netns },
  ];
  if (add.vlanGw) interfaces.push({ name: add.vlanGw.name, mac: add.vlanGw.link?.mac ?? add.vlanGw.mac });
  const out: Result = { cniVersion: add.conf.cniVersion, interfaces };
  if (p) {
    out.ips = p.ips;
    out.routes = p.routes;
  }
  const dns = add.conf.dns ?? lease?.dns;
  if (dns) out.dns = dns;
  return out;
}
