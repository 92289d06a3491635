// The overlay agent (`flannelette agent`): holds this node's subnet lease in the store,
// sets up flannel.<VNI> and the subnet file, and keeps every other node's route,
// neighbour and fdb entry in step with the store, as flanneld's vxlan backend does.
//
// Two loops run until stop(): one renews the lease (and claims it back if it vanished);
// the other lists all leases, makes the kernel match them, then follows the store's
// changes. When the store goes away the programmed entries stay (pods keep talking), and
// on reconnection the full listing is applied again, so nothing missed is left behind.
import { acquireLease, type Identity } from './acquire.ts';
import { parseNetworkConfig, type NetworkConfig } from './config.ts';
import { EtcdError, WatchCompacted } from './etcd.ts';
import { enableForwarding, ensureForwardAccept, ensureMasquerade } from './host.ts';
import { formatCidr } from './ipv4.ts';
import type { Logger } from './log.ts';
import { applyPeers, peerOf, reconcilePeers, samePeer, type Peer } from './peers.ts';
import type { LeaseChange, StoredLease, SubnetStore } from './store.ts';
import { readPreviousSubnet, writeSubnetFile } from './subnet-file.ts';
import { resolveUnderlay } from './underlay.ts';
import { applyVtep, planVtep, vtepName } from './vtep.ts';

export interface AgentOptions {
  /** Underlay interface name or address; default: the default route's. */
  iface?: string;
  /** The address other nodes reach this one at; default: the interface's first IPv4. */
  publicIp?: string;
  subnetFile: string;
  /** Masquerade traffic leaving the overlay (and say so in the subnet file). */
  ipMasq: boolean;
  /** Lease TTL, seconds; renewed every third of it. */
  leaseTtl: number;
  /** Revoke the lease on stop (default: keep it, so a restart keeps the subnet). */
  releaseOnExit: boolean;
}

/** VXLAN's own headers: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
const VXLAN_OVERHEAD = 50;
/** Retries against an unreachable store back off from 250 ms to this. */
const MAX_BACKOFF_MS = 2000;
const describe = (p: Peer) => `${formatCidr(p.subnet)} at ${p.publicIP} (${p.vtepMAC})`;
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export class Agent {
  private readonly stopCtl = new AbortController();
  private watchCtl = new AbortController();
  private queue: Promise<unknown> = Promise.resolve();
  private peers = new Map<number, Peer>();
  private wakeRenewal?: () => void;
  /** Our key vanished from the store: its TTL lease may live on, but the key must be rewritten. */
  private ownKeyGone = false;
  private fatal?: Error;
  // Set once run() holds a lease.
  private config!: NetworkConfig;
  private me!: Identity;
  private own!: StoredLease;
  private dev = '';

  constructor(
    private readonly opts: AgentOptions,
    private readonly store: SubnetStore,
    private readonly log: Logger,
  ) {}

  private get stopped(): boolean {
    return this.stopCtl.signal.aborted;
  }

  /** Stops renewing and watching; run() then resolves. The lease and the kernel state stay. */
  stop(): void {
    this.stopCtl.abort();
    this.watchCtl.abort();
  }

  /** Runs until stop(); rejects on what retrying cannot mend (bad config, subnet lost). */
  async run(): Promise<void> {
    const { log, opts } = this;
    const underlay = await resolveUnderlay(opts.iface, opts.publicIp);
    log.info(`underlay ${underlay.name} (mtu ${underlay.mtu}), public address ${underlay.publicIP}`);
    if (enableForwarding()) log.info('set net.ipv4.ip_forward=1');

    const config = await this.retrying('the network config', async () => {
      const text = await this.store.getConfig();
      return text === undefined ? undefined : parseNetworkConfig(text);
    });
    if (!config) return;
    this.config = config;
    if (await ensureForwardAccept(config.network)) log.info(`FORWARD policy is not ACCEPT: accepting ${formatCidr(config.network)} (chain FLANNEL-FWD)`);

    const plan = await planVtep({
      name: vtepName(config.vni),
      vni: config.vni,
      port: config.port,
      local: underlay.publicIP,
      dev: underlay.name,
      mtu: underlay.mtu - VXLAN_OVERHEAD,
    });
    this.dev = plan.spec.name;
    this.me = { publicIP: underlay.publicIP, vtepMAC: plan.spec.mac };
    const previous = await readPreviousSubnet(opts.subnetFile);
    const got = await this.retrying('a subnet lease', () => acquireLease(this.store, config, this.me, opts.leaseTtl, previous));
    if (!got) return;
    this.own = got.lease;
    await applyVtep(plan, this.own.subnet);
    await writeSubnetFile(opts.subnetFile, { network: config.network, subnet: this.own.subnet, mtu: plan.spec.mtu, ipMasq: opts.ipMasq });
    if (opts.ipMasq) await ensureMasquerade(config.network, this.own.subnet);
    log.info(
      `${got.how} lease ${formatCidr(this.own.subnet)} (ttl ${opts.leaseTtl}s); ${this.dev} ${plan.existing ? 'kept' : 'created'}` +
        ` with MAC ${plan.spec.mac}, mtu ${plan.spec.mtu}; wrote ${opts.subnetFile}`,
    );

    await Promise.all([this.renewLoop(), this.syncLoop()]);
    await this.queue;
    if (this.fatal) throw this.fatal;
    if (opts.releaseOnExit) {
      await this.store.release(this.own).then(
        () => log.info(`released lease ${formatCidr(this.own.subnet)}`),
        (err) => log.warn(`could not release the lease: ${message(err)}`),
      );
    }
  }

  /** Calls `fn` until it yields a value, waiting out an unreachable store or a missing key. */
  private async retrying<T>(what: string, fn: () => Promise<T | undefined>): Promise<T | undefined> {
    let said = '';
    for (let delay = 250; !this.stopped; delay = Math.min(delay * 2, MAX_BACKOFF_MS)) {
      let why: string;
      try {
        const v = await fn();
        if (v !== undefined) return v;
        why = `waiting for ${what}`;
      } catch (err) {
        if (!(err instanceof EtcdError)) throw err; // e.g. a bad config: retrying will not mend it
        why = `waiting for ${what}: ${err.message}`;
      }
      if (why !== said) this.log.info((said = why));
      await this.sleep(delay);
    }
    return undefined;
  }

  private async renewLoop(): Promise<void> {
    const every = Math.max(1000, (this.opts.leaseTtl * 1000) / 3);
    let failing = false;
    while (!this.stopped) {
      await this.sleep(failing ? Math.min(1000, every) : every, true);
      if (this.stopped) break;
      try {
        if (!this.ownKeyGone && (await this.store.renew(this.own))) {
          if (failing) this.log.info(`lease ${formatCidr(this.own.subnet)} renewed again`);
          failing = false;
          continue;
        }
        this.log.warn(`lease ${formatCidr(this.own.subnet)} is gone (expired or deleted): claiming it again`);
        const got = await acquireLease(this.store, this.config, this.me, this.opts.leaseTtl, this.own.subnet);
        if (got.lease.subnet.ip !== this.own.subnet.ip) {
          await this.store.release(got.lease).catch(() => {});
          this.fail(new Error(`subnet ${formatCidr(this.own.subnet)} was taken by another node while our lease was gone; its pods must move`));
          return;
        }
        this.own = got.lease;
        this.ownKeyGone = false;
        this.log.info(`lease ${formatCidr(this.own.subnet)} claimed again`);
        failing = false;
      } catch (err) {
        if (!failing) this.log.warn(`lease renewal failed: ${message(err)}; retrying every second`);
        failing = true;
        // A watch on a dead connection may not notice for a long time: make it start over.
        this.watchCtl.abort();
      }
    }
  }

  private async syncLoop(): Promise<void> {
    let failing = false;
    for (let delay = 250; !this.stopped; ) {
      try {
        const { leases, revision } = await this.store.listLeases();
        if (!leases.some((l) => l.subnet.ip === this.own.subnet.ip && l.publicIP === this.me.publicIP)) this.ownGone();
        const n = await this.serial(() => this.reconcile(leases));
        if (failing) this.log.info(`store reachable again: re-programmed ${n} peer(s) from a full listing`);
        failing = false;
        delay = 250;
        this.watchCtl = new AbortController();
        if (this.stopped) break;
        await this.store.watchLeases(revision, this.watchCtl.signal, (changes) => this.serial(() => this.apply(changes)));
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof WatchCompacted) continue;
        if (!failing) this.log.warn(`lost the store (${message(err)}): programmed peers stay; retrying`);
        failing = true;
        await this.sleep(delay);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
    }
  }

  /** Makes the kernel carry exactly the peers of `leases`; returns how many. */
  private async reconcile(leases: readonly StoredLease[]): Promise<number> {
    const wanted = new Map<number, Peer>();
    for (const l of leases) {
      if (l.subnet.ip === this.own.subnet.ip) continue;
      const p = peerOf(l);
      if (p) wanted.set(p.subnet.ip, p);
    }
    await reconcilePeers(this.dev, this.config.network, [...wanted.values()]);
    for (const [ip, p] of wanted) if (!this.peers.has(ip) || !samePeer(this.peers.get(ip)!, p)) this.log.info(`peer ${describe(p)} programmed`);
    for (const [ip, p] of this.peers) if (!wanted.has(ip)) this.log.info(`peer ${describe(p)} removed`);
    this.peers = wanted;
    return wanted.size;
  }

  /** Applies one batch of changes: per subnet, from the state before the batch to the state after. */
  private async apply(changes: readonly LeaseChange[]): Promise<void> {
    const before = new Map<number, Peer | undefined>();
    for (const c of changes) {
      const ip = c.kind === 'set' ? c.lease.subnet.ip : c.subnet.ip;
      if (ip === this.own.subnet.ip) {
        if (c.kind === 'gone') this.ownGone();
        else if (c.lease.publicIP !== this.me.publicIP) this.log.warn(`${c.lease.publicIP} wrote a lease on our subnet ${formatCidr(c.lease.subnet)}`);
        continue;
      }
      if (!before.has(ip)) before.set(ip, this.peers.get(ip));
      const p = c.kind === 'set' ? peerOf(c.lease) : undefined;
      if (p) this.peers.set(ip, p);
      else this.peers.delete(ip);
    }
    const set: Peer[] = [];
    const drop: Peer[] = [];
    for (const [ip, old] of before) {
      const now = this.peers.get(ip);
      if (old && now && samePeer(old, now)) continue;
      if (old) drop.push(old);
      if (now) set.push(now);
    }
    await applyPeers(this.dev, set, drop);
    for (const p of drop) if (!set.some((s) => s.subnet.ip === p.subnet.ip)) this.log.info(`peer ${describe(p)} removed`);
    for (const p of set) this.log.info(`peer ${describe(p)} programmed`);
  }

  private ownGone(): void {
    this.ownKeyGone = true;
    this.wakeRenewal?.();
  }

  private fail(err: Error): void {
    this.fatal = err;
    this.stop();
  }

  /** Kernel changes one at a time, in the order the store reported them. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => {});
    return p;
  }

  /** Waits `ms`, less if stopped (or, for the renewal loop, if woken early). */
  private sleep(ms: number, wakeable = false): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.stopCtl.signal;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (wakeable) this.wakeRenewal = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      if (wakeable) this.wakeRenewal = done;
    });
  }
}
