// The bridge plugin's pure parts: the rollback mechanism, the config checks, the gateway
// plan, the bridge address decisions and the batch lines, without any namespace.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../src/cni/args.ts';
import { validateIfName } from '../../src/cni/validate.ts';
import { Rollback, withRollback } from '../../src/cni/rollback.ts';
import type { Invocation } from '../../src/cni/skel.ts';
import { formatCidr, formatIP, parseCidr, parseIP } from '../../src/net/ip.ts';
import { commandLine, commandOf, type Op } from '../../src/kernel/ops.ts';
import { planAddresses } from '../../src/plugins/bridge/address-plan.ts';
import { bridgeAddrChanges } from '../../src/plugins/bridge/bridge-addrs.ts';
import { pairOp, podAddrOps, podRouteOps, portOps, type HostPlan } from '../../src/plugins/bridge/changes.ts';
import { loadConf, parseMac } from '../../src/plugins/bridge/conf.ts';
import { chainName, ruleComment } from '../../src/plugins/bridge/masq-iptables.ts';
import { instanceComment, instanceHash } from '../../src/plugins/bridge/masq-nftables.ts';

function inv(conf: Record<string, unknown>, args = ''): Invocation {
  const full = { cniVersion: '1.0.0', name: 'n', type: 'bridge', ...conf };
  return {
    command: 'ADD',
    containerId: 'c',
    netns: '/var/run/netns/x',
    ifname: 'eth0',
    args: parseCniArgs(args),
    rawArgs: args,
    path: [],
    conf: full as Invocation['conf'],
    stdin: Buffer.from(JSON.stringify(full)),
  };
}

describe('rollback', () => {
  it('undoes completed steps newest first and rethrows the failure', async () => {
    const log: string[] = [];
    const failure = new Error('step 3 broke');
    await expect(
      withRollback(async (rb) => {
        await rb.step(
          'one',
          () => log.push('do 1'),
          () => log.push('undo 1'),
        );
        rb.onUndo('two', () => log.push('undo 2'));
        await rb.step(
          'three',
          () => {
            throw failure;
          },
          () => log.push('undo 3'),
        );
      }),
    ).rejects.toBe(failure);
    expect(log).toEqual(['do 1', 'undo 2', 'undo 1']);
  });

  it('keeps undoing when an undo fails, and reports it', async () => {
    const rb = new Rollback();
    const log: string[] = [];
    rb.onUndo('a', () => log.push('a'));
    rb.onUndo('b', () => {
      throw new Error('b is stuck');
    });
    expect(await rb.unwind()).toEqual(['undo b: b is stuck']);
    expect(log).toEqual(['a']);
    expect(await rb.unwind()).toEqual([]); // once only
  });

  it('does nothing to undo on success', async () => {
    const log: string[] = [];
    expect(
      await withRollback(async (rb) =>
        rb.step(
          'x',
          () => 7,
          () => log.push('undo'),
        ),
      ),
    ).toBe(7);
    expect(log).toEqual([]);
  });
});

describe('config', () => {
  it('applies the reference defaults', () => {
    const c = loadConf(inv({}));
    expect(c).toMatchObject({ bridge: 'cni0', isGateway: false, mtu: 0, preserveDefaultVlan: true, ipamType: '' });
    expect(loadConf(inv({ isDefaultGateway: true })).isGateway).toBe(true);
  });

  it('takes the MAC from CNI_ARGS, args.cni and runtimeConfig, the last winning', () => {
    expect(loadConf(inv({}, 'MAC=02:00:00:00:00:01')).mac).toBe('02:00:00:00:00:01');
    expect(loadConf(inv({ args: { cni: { mac: '02:00:00:00:00:02' } } }, 'MAC=02:00:00:00:00:01')).mac).toBe('02:00:00:00:00:02');
    expect(loadConf(inv({ args: { cni: { mac: '02:00:00:00:00:02' } }, runtimeConfig: { mac: '02-00-00-00-00-03' } })).mac).toBe('02:00:00:00:00:03');
    expect(parseMac('0200.0000.0004')).toBe('02:00:00:00:00:04');
    expect(parseMac('01:00:5e:00:00:01')).toBeUndefined(); // multicast
    expect(parseMac('00:00:00:00:00:00')).toBeUndefined();
    expect(parseMac('02:00:00:00:00')).toBeUndefined();
  });

  it('collects trunk VLANs as the reference does', () => {
    expect(loadConf(inv({ vlanTrunk: [{ minID: 10, maxID: 12 }, { id: 11 }, { id: 30 }] })).vlanTrunk).toEqual([10, 11, 12, 30]);
    expect(() => loadConf(inv({ vlanTrunk: [{ minID: 10 }] }))).toThrow(/maxID is missing/);
    expect(() => loadConf(inv({ vlanTrunk: [{ id: 0 }] }))).toThrow(/incorrect trunk id/);
  });

  it('refuses a VLAN gateway name longer than a link name can be', () => {
    expect(() => loadConf(inv({ bridge: 'bridge-name-15', vlan: 100, isGateway: true, ipam: { type: 'host-local' } }))).toThrow(/longer than 15/);
  });
});

describe('gateway plan', () => {
  const conf = (over: Record<string, unknown>) => loadConf(inv(over));

  it('fills the gateway, adds default routes and routes gateway-less routes via it', () => {
    const p = planAddresses(
      [{ address: '10.1.0.5/24' }, { address: 'fd00::5/64', gateway: 'fd00::fe' }],
      [{ dst: '10.0.0.0/8' }, { dst: 'fd10::/16' }],
      conf({ isDefaultGateway: true }),
    );
    expect(p.ips).toEqual([
      { interface: 2, address: '10.1.0.5/24', gateway: '10.1.0.1' },
      { interface: 2, address: 'fd00::5/64', gateway: 'fd00::fe' },
    ]);
    expect(p.routes).toEqual([{ dst: '10.0.0.0/8' }, { dst: 'fd10::/16' }, { dst: '0.0.0.0/0', gw: '10.1.0.1' }, { dst: '::/0', gw: 'fd00::fe' }]);
    expect(p.podRoutes.map((r) => [formatCidr(r.dst), r.gw && formatIP(r.gw)])).toEqual([
      ['10.0.0.0/8', '10.1.0.1'],
      ['fd10::/16', 'fd00::fe'],
      ['0.0.0.0/0', '10.1.0.1'],
      ['::/0', 'fd00::fe'],
    ]);
    expect(p.bridgeAddrs.map((a) => formatCidr(a))[0]).toBe('10.1.0.1/24');
    expect([...p.gwFamilies]).toEqual([4, 6]);
  });

  it('keeps a default route of IPAM that has a gateway, and drops exact duplicates for the pod', () => {
    const p = planAddresses(
      [{ address: '10.1.0.5/24' }],
      [
        { dst: '0.0.0.0/0', gw: '10.1.0.9' },
        { dst: '0.0.0.0/0', gw: '10.1.0.9' },
      ],
      conf({ isDefaultGateway: true }),
    );
    expect(p.routes).toHaveLength(2);
    expect(p.podRoutes).toHaveLength(1);
  });

  it('leaves the gateway out when the bridge is not one and IPAM gave none', () => {
    const p = planAddresses([{ address: '10.1.0.5/24' }], [{ dst: '10.9.0.0/16' }], conf({}));
    expect(p.ips).toEqual([{ interface: 2, address: '10.1.0.5/24' }]);
    expect(p.podRoutes).toEqual([{ dst: { ip: parseIP('10.9.0.0'), prefix: 16 }, gw: undefined, route: { dst: '10.9.0.0/16' } }]);
    expect(p.bridgeAddrs).toEqual([]);
  });

  it('refuses an IPAM answer without addresses', () => {
    expect(() => planAddresses([], [], conf({}))).toThrow(/IPAM plugin returned missing IP config/);
  });
});

describe('bridge addresses', () => {
  const c = (s: string) => parseCidr(s)!;

  it('adds the gateway when missing, leaves it when there, refuses or replaces a different IPv4 one', () => {
    expect(bridgeAddrChanges('cni0', [], [c('10.1.0.1/24')], false)).toEqual({ remove: [], add: [c('10.1.0.1/24')] });
    expect(bridgeAddrChanges('cni0', [c('10.1.0.1/24'), c('10.7.0.1/24')], [c('10.1.0.1/24')], false)).toEqual({ remove: [], add: [] });
    expect(() => bridgeAddrChanges('cni0', [c('10.7.0.1/24')], [c('10.1.0.1/24')], false)).toThrow(
      /"cni0" already has an IP address different from 10.1.0.1\/24/,
    );
    expect(bridgeAddrChanges('cni0', [c('10.7.0.1/24')], [c('10.1.0.1/24')], true)).toEqual({ remove: [c('10.7.0.1/24')], add: [c('10.1.0.1/24')] });
  });

  it('lets IPv6 addresses of other subnets be', () => {
    const existing = [c('fe80::1/64'), c('fd00:9::1/64')];
    expect(bridgeAddrChanges('cni0', existing, [c('fd00:1::1/64')], false)).toEqual({ remove: [], add: [c('fd00:1::1/64')] });
    expect(() => bridgeAddrChanges('cni0', [c('fd00:1::9/64')], [c('fd00:1::1/64')], false)).toThrow(/different/);
  });
});

/** The ops as the iproute2 commands that make the same changes. */
const lines = (ops: Op[]) => ops.map((op) => commandLine(commandOf(op)));

describe('kernel changes', () => {
  it('makes the veth pair into the pod, then the bridge with its MTU at creation, the port and the address', () => {
    const hostPlan: HostPlan = {
      bridge: 'cni0',
      createBridge: true,
      mtu: 1450,
      vlanFiltering: false,
      promisc: false,
      pinBridgeMac: '02:00:00:00:00:aa',
      veth: 'veth01234567',
      hairpin: true,
      isolated: false,
      addrDevice: 'cni0',
      removeAddrs: [],
      addAddrs: [parseCidr('10.1.0.1/24')!],
    };
    const pair = pairOp({ veth: 'veth01234567', vethMac: '02:00:00:00:00:bb', mtu: 1450, ifname: 'eth0', netns: '/var/run/netns/p' });
    expect(lines([pair])).toEqual([
      'ip link add name veth01234567 mtu 1450 address 02:00:00:00:00:bb up type veth peer name eth0 mtu 1450 netns /var/run/netns/p',
    ]);
    expect(lines(portOps(hostPlan))).toEqual([
      'ip link add name cni0 mtu 1450 address 02:00:00:00:00:aa type bridge',
      'ip link set dev cni0 up',
      'ip link set dev veth01234567 master cni0',
      'ip link set dev veth01234567 type bridge_slave hairpin on',
      'ip addr replace 10.1.0.1/24 brd + dev cni0',
    ]);
    expect(lines(portOps({ ...hostPlan, createBridge: false, pinBridgeMac: '02:00:00:00:00:cc', addAddrs: [], promisc: true }))).toEqual([
      'ip link set dev cni0 address 02:00:00:00:00:cc',
      'ip link set dev cni0 promisc on',
      'ip link set dev cni0 up',
      'ip link set dev veth01234567 master cni0',
      'ip link set dev veth01234567 type bridge_slave hairpin on',
    ]);
  });

  it('gives the pod its addresses, then up, then routes', () => {
    const p = planAddresses([{ address: '10.1.0.5/24' }, { address: 'fd00::5/64' }], [{ dst: '10.0.0.0/8', mtu: 1400 }], loadConf(inv({ isGateway: true })));
    const podPlan = { ifname: 'eth0', addrs: p.addrs, up: true, routes: p.podRoutes };
    expect(lines([...podAddrOps(podPlan), ...podRouteOps(podPlan)])).toEqual([
      'ip addr add 10.1.0.5/24 brd + dev eth0',
      'ip addr add fd00::5/64 dev eth0',
      'ip link set dev eth0 up',
      'ip route append 10.0.0.0/8 via 10.1.0.1 dev eth0 mtu 1400',
    ]);
  });

  it('shows any name the kernel takes as a shell would need it', () => {
    const pair = pairOp({ veth: 'veth01234567', vethMac: '02:00:00:00:00:bb', mtu: 0, ifname: `a"b#c'd`, netns: '/var/run/netns/p' });
    expect(lines([pair])).toEqual([`ip link add name veth01234567 address 02:00:00:00:00:bb up type veth peer name 'a"b#c'\\''d' netns /var/run/netns/p`]);
  });
});

describe('interface names', () => {
  it('takes what the kernel takes (libcni rules), quotes, "#" and "\\" included', () => {
    for (const name of ['eth0', 'a"b#c', 'x\\y', "it's", 'é1', 'a'.repeat(15)]) expect(() => validateIfName(name), name).not.toThrow();
    for (const name of ['', '.', '..', 'a/b', 'a:b', 'a b', 'a\tb', 'a'.repeat(16), 'éééééééé']) {
      expect(() => validateIfName(name), name).toThrow(expect.objectContaining({ code: 4 }));
    }
  });
});

describe('masquerade names', () => {
  it('names the iptables chain and comment as the reference v1.1.1', () => {
    // The reference's utils.FormatChainName("net1", "c1"): CNI- and 24 hex of sha512("net1c1").
    const expected = (input: string) => `CNI-${createHash('sha512').update(input).digest('hex').slice(0, 24)}`;
    expect(chainName('net1', 'c1')).toBe(expected('net1c1'));
    expect(chainName('net1', 'c1')).toBe('CNI-c2d892b58e87e28a12fe6479');
    expect(chainName('net1', 'c2')).toBe(expected('net1c2'));
    expect(ruleComment('net1', 'c1')).toBe('name: "net1" id: "c1"');
  });

  it('scopes nftables comments by network, then by interface and container', () => {
    expect(instanceHash('net1', 'eth0', 'c1')).toMatch(/^[0-9a-f]{16}-[0-9a-f]{16}$/);
    expect(instanceHash('net1', 'eth0', 'c1').slice(0, 16)).toBe(instanceHash('net1', 'eth1', 'c2').slice(0, 16));
    expect(instanceComment('net"1', 'eth0', 'c1')).toMatch(/, net: net1, if: eth0, id: c1$/);
    expect(instanceComment('n', 'e', 'x'.repeat(300))).toHaveLength(128);
  });
});
