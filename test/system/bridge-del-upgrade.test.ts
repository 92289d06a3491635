// The upgrade in place: pods and leases made by the reference bridge and host-local, then
// our DEL, with configs our ADD would refuse (values the reference took, no cniVersion, a
// value edited since the ADD). DEL never strands a lease: it releases it, removes what it
// can and reports success, as the reference does for the configs it took.
import { execa } from 'execa';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createNs } from '../helpers/netns.ts';
import { useNode } from '../helpers/node-fixture.ts';
import { leases, leasesOf, podInterfaces, veths } from '../helpers/node-state.ts';
import { callPlugin, errorOf, expectOk, ourBinDir, REFERENCE_DIR } from '../helpers/plugin.ts';

const f = useNode({ suite: 'del-upgrade', tag: 'du' }, {});
const dataDir = () => path.join(f.tmp, 'networks');

/** A bridge network of its own (name, bridge, /24) per case, so cases cannot meet. */
function netConf(n: number, extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: `up${n}`,
    type: 'bridge',
    bridge: `br${n}`,
    isGateway: true,
    ipam: { type: 'host-local', dataDir: dataDir(), subnet: `10.98.${n}.0/24`, ...ipam },
    ...extra,
  };
}

async function natChains(): Promise<string[]> {
  const r = await execa('ip', ['netns', 'exec', f.node.name, 'iptables', '-t', 'nat', '-S']);
  return r.stdout.split('\n').filter((l) => /^-N CNI-/.test(l));
}

/** Reference ADD of container `id` with `add`, then our DEL with `del`; asserts nothing is left. */
async function referenceAddOurDel(n: number, id: string, add: Record<string, unknown>, del: Record<string, unknown>, args?: string) {
  const pod = await createNs(`du${n}`);
  const call = { containerId: id, netns: pod.path, ifname: 'eth0', node: f.node };
  expectOk(await callPlugin('bridge', { command: 'ADD', ...call, conf: add }, REFERENCE_DIR));
  const net = String(add.name);
  expect(leasesOf(dataDir(), net, id)).toHaveLength(1);
  expect(await podInterfaces(pod.path)).toEqual(['eth0']);

  const r = await callPlugin('bridge', { command: 'DEL', ...call, conf: del, args, cniPath: ourBinDir() });
  expect(r.code, `${r.stdout} ${r.stderr}`).toBe(0);
  expect(r.stdout).toBe('');
  expect(leasesOf(dataDir(), net, id)).toEqual([]);
  expect(await podInterfaces(pod.path)).toEqual([]);
  expect(await veths(f.node)).toEqual([]);
  return { pod, call };
}

describe('our DEL after the reference ADD (the upgrade in place)', () => {
  it('releases a lease whose range has a gateway outside its subnet (the reference took it, our ADD refuses it)', async () => {
    const conf = netConf(1, {}, { subnet: undefined, ranges: [[{ subnet: '10.98.1.0/24', gateway: '10.98.2.1' }]] });
    const ours = await callPlugin('host-local', { command: 'ADD', containerId: 'probe', netns: '/proc/self/ns/net', ifname: 'eth0', conf });
    expect(errorOf(ours).code).toBe(7); // refused by our ADD
    await referenceAddOurDel(1, 'gw-outside', conf, conf);
  });

  it('releases the lease of a config without cniVersion, and of one at 0.2.0', async () => {
    const { cniVersion: _, ...noVersion } = netConf(2);
    await referenceAddOurDel(2, 'no-version', noVersion, noVersion);
    const old = { ...netConf(3), cniVersion: '0.2.0' };
    await referenceAddOurDel(3, 'v020', old, old);
  });

  it('releases the lease and removes the masquerade rules of a config edited since the ADD, which the reference strands', async () => {
    const add = netConf(4, { mtu: 1400, ipMasq: true });
    // Since the ADD: values ADD now refuses or cannot read, and CNI_ARGS it would refuse.
    const edited = netConf(
      4,
      { mtu: 10, vlan: 5000, ipMasq: 'true', ipMasqBackend: 'bogus', hairpinMode: true, promiscMode: true },
      { subnet: '10.98.4.0/33' },
    );
    const args = 'MAC=not-a-mac;K8S_POD_NAME=x';
    const pod = await createNs('du4');
    // The reference finds iptables through PATH.
    const call = { containerId: 'edited', netns: pod.path, ifname: 'eth0', node: f.node, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } };
    expectOk(await callPlugin('bridge', { command: 'ADD', ...call, conf: add }, REFERENCE_DIR));
    expect(await natChains()).toHaveLength(1);
    // The reference's own DEL refuses this config: the lease would stay forever.
    const refDel = await callPlugin('bridge', { command: 'DEL', ...call, conf: edited, args }, REFERENCE_DIR);
    expect(refDel.code).not.toBe(0);
    expect(leasesOf(dataDir(), 'up4', 'edited')).toHaveLength(1);

    const r = await callPlugin('bridge', { command: 'DEL', ...call, conf: edited, args, cniPath: ourBinDir() });
    expect(r.code, `${r.stdout} ${r.stderr}`).toBe(0);
    expect(leasesOf(dataDir(), 'up4', 'edited')).toEqual([]);
    expect(await podInterfaces(pod.path)).toEqual([]);
    expect(await natChains()).toEqual([]);
    // A second DEL (the runtime's retry, or RemovePodSandbox) still succeeds.
    expect((await callPlugin('bridge', { command: 'DEL', ...call, netns: '', conf: edited, args, cniPath: ourBinDir() })).code).toBe(0);
  });

  it('refuses only what hides the lease: a config with no network name, or an unreadable ipam', async () => {
    const pod = await createNs('du5');
    const call = { containerId: 'hidden', netns: pod.path, ifname: 'eth0', node: f.node, cniPath: ourBinDir() };
    const { name: _, ...noName } = netConf(5);
    expect(errorOf(await callPlugin('bridge', { command: 'DEL', ...call, conf: noName })).code).toBe(7);
    expect(errorOf(await callPlugin('bridge', { command: 'DEL', ...call, conf: netConf(5, { ipam: 'host-local' }) })).code).toBe(7);
    expect(errorOf(await callPlugin('bridge', { command: 'DEL', ...call, conf: { ...netConf(5), cniVersion: '9.9.9' } })).code).toBe(1);
    expect(leases(dataDir(), 'up5').size).toBe(0);
  });
});
