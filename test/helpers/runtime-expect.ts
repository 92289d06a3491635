// The assertions every real-runtime test makes about two containers on one node.
import { expect } from 'vitest';
import { GATEWAY } from './plugin-sets.ts';
import type { TwoContainers } from './runtimes.ts';

const IN_RANGE = /^10\.244\.1\.(\d+)\/24$/;

export function expectTwoContainersWorked(seen: TwoContainers): void {
  const [a, b] = seen.views;
  for (const v of seen.views) {
    const why = `${v.name}: exit ${v.exitCode}\n${v.output}`;
    expect(v.exitCode, why).toBe(0);
    // An address from the range, not the network or the gateway.
    expect(v.addr, why).toMatch(IN_RANGE);
    expect(Number(v.addr.match(IN_RANGE)![1])).toBeGreaterThan(1);
    expect(v.routes, why).toMatch(new RegExp(`^default via ${GATEWAY.replaceAll('.', '\\.')} dev eth0`, 'm'));
    expect(v.routes, why).toMatch(/^10\.244\.0\.0\/16 via 10\.244\.1\.1 dev eth0/m);
    expect(v.link, why).toMatch(/mtu 1450/);
    expect(v.gwPing, why).toMatch(/rc=0/);
    expect(v.peerPing, why).toMatch(/rc=0/);
  }
  expect(a.addr).not.toBe(b.addr);
  // While both ran: two leases, for exactly their addresses, and two veths, both cni0 ports.
  const ips = seen.views.map((v) => v.addr.split('/')[0]).sort();
  expect([...seen.during.leases.keys()].sort()).toEqual(ips);
  expect(seen.during.veths).toHaveLength(2);
  expect([...seen.during.ports].sort()).toEqual([...seen.during.veths].sort());
  // After both exited: no lease and no veth.
  expect([...seen.after.leases.keys()]).toEqual([]);
  expect(seen.after.veths).toEqual([]);
}
