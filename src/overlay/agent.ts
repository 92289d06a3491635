// The overlay agent (`flannelette agent`): holds this node's subnet lease in the store
// (dual-stack: its IPv4 and IPv6 subnets under one key), sets up its backend (vxlan or
// host-gw) and the subnet file, and keeps every other node's entries in step with the
// store, as flanneld does.
//
// Three loops run until stop(): one renews the lease (and claims it back if it vanished or
// someone else rewrote it); one lists all leases, hands them to the peer table (peer-table.ts:
// each peer on its own, refusals retried, bad leases logged once), then follows the store's
// changes; one checks the kernel every --kernel-check-interval (a device set up again, lost
// entries made again).
// When the store goes away the programmed entries stay (pods keep talking), and on
// reconnection the full listing is applied again, so nothing missed is left behind. The
// firewall rules are retried beside them until set.
import { formatCidr, formatIP, type Cidr } from '../net/ip.ts';
import { tryAcquire, type Attempt, type Claim, type Me, type Ranges } from './acquire.ts';
import type { Backend, BackendContext } from './backend.ts';
import { backoffDelay, sleep, type Backoff, type Timer } from './backoff.ts';
import { parseNetworkConfig, type BackendConfig, type NetworkConfig } from './config.ts';
import type { Dataplane } from './dataplane.ts';
import { hostGwBackend } from './hostgw-backend.ts';
import { leaseValue } from './lease.ts';
import { messageOf, type Logger } from './log.ts';
import { PeerTable, type PeerCounts } from './peer-table.ts';
import { ListAgain, StoreError, type LeaseChange, type SubnetStore } from './subnet-store.ts';
import { readPreviousSubnets, writeSubnetFile, type PreviousSubnets } from './subnet-file.ts';
import { vxlanBackend } from './vxlan-backend.ts';

export interface AgentOptions {
  /** Underlay interface name or address; default: the default route's. */
  iface?: string;
  /** The address other nodes reach this one at; default: the interface's first IPv4. */
  publicIp?: string;
  /** Dual-stack: the IPv6 one; default: the interface's first IPv6 (global before link-local). */
  publicIpv6?: string;
  subnetFile: string;
  /** Masquerade traffic leaving the overlay (and say so in the subnet file). */
  ipMasq: boolean;
  /** Lease TTL, seconds; renewed every third of it. */
  leaseTtl: number;
  /** Revoke the lease on stop (default: keep it, so a restart keeps the subnet). */
  releaseOnExit: boolean;
  /**
   * Seconds between comparisons of the kernel with what the agent made (a deleted flannel.1
   * or route made again); 0: never. Default 10, as flanneld's host-gw route check.
   */
  kernelCheckInterval?: number;
}

/** How long to wait before retrying; the unit tests shorten them. */
export interface Timing {
  /** An unreachable store. */
  store: Backoff;
  /** Another node claimed the subnet we chose first. */
  race: Backoff;
  /** No free subnet (leases may expire). */
  full: Backoff;
  /** A peer the kernel refused (or whose entries could not be worked out), and firewall rules not set. */
  peer: Backoff;
}

const DEFAULT_TIMING: Timing = {
  store: { baseMs: 250, maxMs: 5000 },
  race: { baseMs: 50, maxMs: 2000 },
  full: { baseMs: 1000, maxMs: 30_000 },
  peer: { baseMs: 1000, maxMs: 30_000 },
};

export interface AgentDeps {
  store: SubnetStore;
  dataplane: Dataplane;
  log: Logger;
  timing?: Partial<Timing>;
  timer?: Timer;
  random?: () => number;
}

/** What /healthz reports. */
export interface AgentStatus {
  healthy: boolean;
  /** Whether the subnet file is written (flannel's /readyz). */
  ready: boolean;
  subnet?: string;
  ipv6Subnet?: string;
  peers?: PeerCounts;
  /** One line: why not healthy, or what is held. */
  detail: string;
}

/** The backend the config names. */
function createBackend(config: BackendConfig, ctx: BackendContext): Backend {
  return config.type === 'host-gw' ? hostGwBackend(ctx) : vxlanBackend(config, ctx);
}

/** What became of our key: deleted or expired, or written by someone else (`value`). */
type OwnLoss = { how: 'gone' } | { how: 'rewritten'; value: string };

/** "10.244.1.0/24" or, dual-stack, "10.244.1.0/24 + fd00:10:244:1::/64". */
const describeClaim = (c: Claim) => `${formatCidr(c.subnet)}${c.ipv6Subnet ? ` + ${formatCidr(c.ipv6Subnet)}` : ''}`;

export class Agent {
  private readonly stopCtl = new AbortController();
  private watchCtl = new AbortController();
  private readonly timing: Timing;
  private wakeRenewal?: AbortController;
  /**
   * Our key vanished from the store or holds a value we did not write (checkOwn): its TTL
   * lease may live on, but the key must be written again.
   */
  private ownLost?: OwnLoss;
  private fatal?: Error;
  /** When the lease was last known held (claimed or renewed), ms since the epoch. */
  private confirmedAt = 0;
  private synced = false;
  private syncProblem = 'not started';
  private ready = false;
  // Set once run() holds a lease.
  private config?: NetworkConfig;
  private me?: Me;
  private own?: Claim;
  private peers?: PeerTable;

  constructor(
    private readonly opts: AgentOptions,
    private readonly deps: AgentDeps,
  ) {
    this.timing = { ...DEFAULT_TIMING, ...deps.timing };
  }

  private get log(): Logger {
    return this.deps.log;
  }

  private get stopped(): boolean {
    return this.stopCtl.signal.aborted;
  }

  /** Stops renewing and watching; run() then resolves. The lease and the kernel state stay. */
  stop(): void {
    this.stopCtl.abort();
    this.watchCtl.abort();
  }

  /** Healthy while the lease is held and the peers follow a live watch of the store. */
  status(): AgentStatus {
    const own = this.own;
    const base = {
      ready: this.ready,
      ...(own ? { subnet: formatCidr(own.subnet) } : {}),
      ...(own?.ipv6Subnet ? { ipv6Subnet: formatCidr(own.ipv6Subnet) } : {}),
      ...(this.peers ? { peers: this.peers.counts() } : {}),
    };
    if (!own) return { ...base, healthy: false, detail: 'no subnet lease yet' };
    const ttlMs = this.opts.leaseTtl * 1000;
    const lease = describeClaim(own);
    if (this.ownLost) {
      return { ...base, healthy: false, detail: `lease ${lease} ${this.ownLost.how === 'gone' ? 'is gone from the store' : 'was rewritten by someone else'}` };
    }
    if (Date.now() - this.confirmedAt > ttlMs) return { ...base, healthy: false, detail: `lease ${lease} not renewed within its TTL` };
    if (!this.synced) return { ...base, healthy: false, detail: `peers not in sync with the store: ${this.syncProblem}` };
    return { ...base, healthy: true, detail: `lease ${lease}; ${this.describePeers()}` };
  }

  /** Runs until stop(); rejects on what retrying cannot mend (bad config, credentials, subnet lost). */
  async run(): Promise<void> {
    const { log, opts } = this;
    const dp = this.deps.dataplane;
    const where = { ...(opts.iface ? { iface: opts.iface } : {}), ...(opts.publicIp ? { publicIP: opts.publicIp } : {}) };
    // The underlay first, so that a wrong --iface fails at once, before waiting for the store.
    let underlay = await dp.underlay({ ...where, ipv6: false });
    if (dp.enableForwarding()) log.info('set net.ipv4.ip_forward=1');

    const config = await this.retrying('the network config', async () => {
      const text = await this.deps.store.getConfig();
      return text === undefined ? undefined : parseNetworkConfig(text);
    });
    if (!config) return;
    this.config = config;
    for (const w of config.warnings) log.warn(w);
    if (config.v6) underlay = await dp.underlay({ ...where, ...(opts.publicIpv6 ? { publicIPv6: opts.publicIpv6 } : {}), ipv6: true });
    const v6 = underlay.publicIPv6 ? `, public IPv6 address ${formatIP(underlay.publicIPv6)}` : '';
    log.info(`underlay ${underlay.name} (mtu ${underlay.mtu}), public address ${formatIP(underlay.publicIP)}${v6}; backend ${config.backend.type}`);
    const network = config.v4.network;
    const ipv6Network = config.v6?.network;

    const ctx: BackendContext = { dp, underlay, network, ...(ipv6Network ? { ipv6Network } : {}) };
    const backend = createBackend(config.backend, ctx);
    const attrs = await backend.prepare();
    this.me = {
      publicIP: underlay.publicIP,
      value: leaseValue({ publicIP: underlay.publicIP, ...(config.v6 ? { publicIPv6: underlay.publicIPv6! } : {}), backendType: backend.type, ...attrs }),
    };
    const previous = await readPreviousSubnets(opts.subnetFile);
    const own = await this.acquire(previous);
    if (!own) return;
    this.own = own;
    this.confirmedAt = Date.now();
    const { mtu, summary } = await backend.activate(own);
    await writeSubnetFile(opts.subnetFile, {
      network,
      subnet: own.subnet,
      ...(ipv6Network && own.ipv6Subnet ? { ipv6Network, ipv6Subnet: own.ipv6Subnet } : {}),
      mtu,
      ipMasq: opts.ipMasq,
    });
    this.ready = true;
    log.info(`${own.how} lease ${describeClaim(own)} (ttl ${opts.leaseTtl}s); ${summary}; wrote ${opts.subnetFile}`);

    this.peers = new PeerTable({
      dataplane: dp,
      backend,
      log,
      self: {
        key: own.lease.key,
        subnet: own.subnet,
        publicIP: underlay.publicIP,
        network,
        ...(ipv6Network && own.ipv6Subnet ? { ipv6Network, ipv6Subnet: own.ipv6Subnet, publicIPv6: underlay.publicIPv6! } : {}),
      },
      retry: this.timing.peer,
      ...(this.deps.timer ? { timer: this.deps.timer } : {}),
      ...(this.deps.random ? { random: this.deps.random } : {}),
    });
    const firewalls = [this.firewall(network, own.subnet)];
    if (ipv6Network && own.ipv6Subnet) firewalls.push(this.firewall(ipv6Network, own.ipv6Subnet));
    await Promise.all([...firewalls, this.renewLoop(), this.syncLoop(), this.kernelCheckLoop(backend)]);
    await this.peers.close();
    if (this.fatal) throw this.fatal;
    if (opts.releaseOnExit) {
      await this.deps.store.release(this.own.lease).then(
        () => log.info(`released lease ${describeClaim(own)}`),
        (err) => log.warn(`could not release the lease: ${messageOf(err)}`),
      );
    }
  }

  /**
   * FORWARD accepts for the cluster network (when the chain's policy would drop it) and, with
   * --ip-masq, the masquerade rules. A failure (iptables' lock held too long, say) is logged and
   * retried with backoff, beside the peers: it never stops the agent.
   */
  private async firewall(network: Cidr, subnet: Cidr): Promise<void> {
    const dp = this.deps.dataplane;
    const v = network.ip.family === 4 ? '' : ' (IPv6)';
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        if (await dp.forwardAccept(network)) this.log.info(`FORWARD policy${v} is not ACCEPT: accepting ${formatCidr(network)} (chain FLANNEL-FWD)`);
        if (this.opts.ipMasq) await dp.masquerade(network, subnet);
        if (attempt > 1) this.log.info(`firewall rules${v} in place`);
        return;
      } catch (err) {
        const delay = backoffDelay(attempt, this.timing.peer, this.deps.random);
        this.log.warn(`firewall rules${v} not set: ${messageOf(err)}; retrying in ${(delay / 1000).toFixed(1)} s`);
        await sleep(delay, this.stopCtl.signal);
      }
    }
  }

  /** Calls `fn` until it yields a value, waiting out an unreachable store or a missing key. */
  private async retrying<T>(what: string, fn: () => Promise<T | undefined>): Promise<T | undefined> {
    let said = '';
    for (let attempt = 1; !this.stopped; attempt++) {
      let why: string;
      try {
        const v = await fn();
        if (v !== undefined) return v;
        why = `waiting for ${what}`;
      } catch (err) {
        // A bad config or a credential the store refuses: retrying will not mend it.
        if (!(err instanceof StoreError) || err.fatal) throw err;
        why = `waiting for ${what}: ${err.message}`;
      }
      if (why !== said) this.log.info((said = why));
      await sleep(backoffDelay(attempt, this.timing.store, this.deps.random), this.stopCtl.signal);
    }
    return undefined;
  }

  /** Takes a lease: lost races, a full range and an unreachable store are waited out for as long as it takes. */
  private async acquire(previous: PreviousSubnets): Promise<Claim | undefined> {
    const { config, me, log } = this;
    let races = 0;
    let fulls = 0;
    let down = 0;
    let said = '';
    while (!this.stopped) {
      let r: Attempt;
      try {
        r = await tryAcquire(this.deps.store, this.ranges(), me!, this.opts.leaseTtl, log, previous, this.deps.random);
        down = 0;
      } catch (err) {
        if (!(err instanceof StoreError) || err.fatal) throw err;
        const why = `waiting for a subnet lease: ${err.message}`;
        if (why !== said) log.info((said = why));
        await sleep(backoffDelay(++down, this.timing.store, this.deps.random), this.stopCtl.signal);
        continue;
      }
      if ('how' in r) return r;
      let delay: number;
      if ('lost' in r) {
        delay = backoffDelay(++races, this.timing.race, this.deps.random);
        if (races === 1 || races % 10 === 0) log.info(`another node took ${r.lost} first (${races} lost so far): choosing again in ${delay} ms`);
      } else {
        delay = backoffDelay(++fulls, this.timing.full, this.deps.random);
        if (fulls === 1 || fulls % 10 === 0) {
          const v6 = config!.v6 ? ` or ${formatCidr(config!.v6.network)} (IPv6SubnetLen ${config!.v6.subnetLen})` : '';
          log.warn(
            `no free subnet in ${formatCidr(config!.v4.network)} (SubnetLen ${config!.v4.subnetLen})${v6}: trying again in ${(delay / 1000).toFixed(1)} s`,
          );
        }
      }
      await sleep(delay, this.stopCtl.signal);
    }
    return undefined;
  }

  private async renewLoop(): Promise<void> {
    const every = Math.max(1000, (this.opts.leaseTtl * 1000) / 3);
    let failing = false;
    let said = '';
    const own = () => this.own!;
    while (!this.stopped) {
      this.wakeRenewal = new AbortController();
      const wake = AbortSignal.any([this.stopCtl.signal, this.wakeRenewal.signal]);
      // Our key lost while this loop was not asleep (a renewal under way): its wake-up is spent, no wait.
      await sleep(failing ? Math.min(1000, every) : this.ownLost ? 0 : every, wake);
      if (this.stopped) break;
      try {
        if (!this.ownLost && (await this.deps.store.renew(own().lease))) {
          this.confirmedAt = Date.now();
          if (failing) this.log.info(`lease ${formatCidr(own().subnet)} renewed again`);
          failing = false;
          said = '';
          continue;
        }
        const mine = describeClaim(own());
        const lost = this.ownLost;
        const what = lost?.how === 'rewritten' ? `was rewritten by someone else (to ${lost.value})` : 'is gone (expired or deleted)';
        // Once, not at every retry (each second while the subnet cannot be claimed).
        const line = `lease ${mine} ${what}: claiming it again`;
        if (line !== said) this.log.warn((said = line));
        const was: PreviousSubnets = { subnet: own().subnet, ...(own().ipv6Subnet ? { ipv6Subnet: own().ipv6Subnet } : {}) };
        const r = await tryAcquire(this.deps.store, this.ranges(), this.me!, this.opts.leaseTtl, this.log, was, this.deps.random);
        if (!('how' in r)) throw new StoreError(`could not claim ${mine} again (${'lost' in r ? `${r.lost} was taken first` : 'no free subnet'})`);
        if (r.lease.key !== own().lease.key) {
          await this.deps.store.release(r.lease).catch(() => {});
          const when = lost?.how === 'rewritten' ? '(its key rewritten by someone else)' : 'while our lease was gone';
          this.fail(new Error(`subnet ${mine} was taken by another node ${when}; its pods must move`));
          return;
        }
        this.own = r;
        this.ownLost = undefined;
        this.confirmedAt = Date.now();
        this.log.info(`lease ${describeClaim(r)} claimed again`);
        failing = false;
        said = '';
      } catch (err) {
        if (!failing) {
          this.log.warn(`lease renewal failed: ${messageOf(err)}; retrying every second`);
          // A watch on a dead connection may not notice for a long time: make it start over,
          // once (its listing must not wake this loop again and again).
          this.watchCtl.abort();
        }
        failing = true;
      }
    }
  }

  private async syncLoop(): Promise<void> {
    let failing = false;
    const peers = this.peers!;
    for (let attempt = 1; !this.stopped; ) {
      try {
        const { leases, revision } = await this.deps.store.listLeases();
        const ownKey = this.own!.lease.key;
        this.checkOwn(leases.find((l) => l.key === ownKey)?.value);
        await peers.resync(leases);
        if (failing) this.log.info(`store reachable again: re-programmed from a full listing (${this.describePeers()})`);
        failing = false;
        attempt = 1;
        this.watchCtl = new AbortController();
        if (this.stopped) break;
        this.synced = true;
        await this.deps.store.watchLeases(revision, this.watchCtl.signal, (changes) => this.apply(changes));
        if (!this.stopped) this.unsynced('the watch was restarted');
      } catch (err) {
        this.unsynced(messageOf(err));
        if (this.stopped) break;
        if (err instanceof ListAgain) {
          this.log.info(`${err.message}: listing again`);
          continue;
        }
        if (!(err instanceof StoreError)) {
          this.fail(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (!failing) this.log.warn(`lost the store (${err.message}): programmed peers stay; retrying`);
        failing = true;
        await sleep(backoffDelay(attempt++, this.timing.store, this.deps.random), this.stopCtl.signal);
      }
    }
  }

  /**
   * Every kernelCheckInterval: the backend's devices made again if someone deleted or changed
   * them, then every peer's entries the kernel no longer has. Failures are logged (once per
   * reason) and tried again next time; they never stop the agent.
   */
  private async kernelCheckLoop(backend: Backend): Promise<void> {
    const every = (this.opts.kernelCheckInterval ?? 10) * 1000;
    if (every <= 0) return;
    let said = '';
    while (!this.stopped) {
      await sleep(every, this.stopCtl.signal);
      if (this.stopped) break;
      try {
        const repaired = await backend.repair?.();
        if (repaired) this.log.warn(repaired);
        await this.peers!.recheck();
        if (said) this.log.info('kernel check: fine again');
        said = '';
      } catch (err) {
        const why = `kernel check failed: ${messageOf(err)}; trying again in ${every / 1000} s`;
        if (why !== said) this.log.warn((said = why));
      }
    }
  }

  private ranges(): Ranges {
    const c = this.config!;
    return c.v6 ? { v4: c.v4, v6: c.v6 } : { v4: c.v4 };
  }

  private unsynced(why: string): void {
    this.synced = false;
    this.syncProblem = why;
  }

  private describePeers(): string {
    const c = this.peers!.counts();
    return `${c.programmed} peer(s) programmed, ${c.pending} being retried, ${c.refused} lease(s) refused`;
  }

  /** A batch of changes from the watch, in order. */
  private async apply(changes: readonly LeaseChange[]): Promise<void> {
    for (const c of changes) {
      if (c.key === this.own!.lease.key) {
        this.checkOwn(c.value);
        continue;
      }
      await this.peers!.update(c.key, c.value);
    }
  }

  /**
   * Our key's value in the store, from a listing or the watch (undefined: absent). Anything
   * but the value we wrote means the key is no longer ours: the renewal loop is woken to
   * write it again, once per loss (it retries at its own pace).
   */
  private checkOwn(value: string | undefined): void {
    if (value === this.me!.value || this.ownLost) return;
    this.ownLost = value === undefined ? { how: 'gone' } : { how: 'rewritten', value };
    this.wakeRenewal?.abort();
  }

  private fail(err: Error): void {
    this.fatal = err;
    this.stop();
  }
}
