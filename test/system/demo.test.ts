// The README's first command: `bash scripts/demo.sh` builds the walk-through's cluster in
// namespaces, pings across nodes, explains, and must leave nothing behind; with --keep it
// leaves the cluster up until `--cleanup PREFIX`.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
/** What scripts/demo.sh makes: fld + 3 random bytes in hex (its --cleanup checks the same). */
const PREFIX = /^fld[0-9a-f]{6}$/;
const made: string[] = [];

const namespaces = async (prefix: string) =>
  (await execa('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`${prefix}-`))
    .sort();
/** The run's state dir. */
const stateDir = (prefix: string) => `/tmp/flannelette-demo-${prefix}`;
/** Processes whose command line names the run's state dir (etcd, the agents). */
const processes = async (prefix: string) => (await execa('pgrep', ['-f', `${stateDir(prefix)}/`], { reject: false })).stdout.split('\n').filter(Boolean);

/** Nothing of the run is left: no namespace, no process, no state dir. */
async function expectRemoved(prefix: string): Promise<void> {
  expect(await namespaces(prefix)).toEqual([]);
  expect(await processes(prefix)).toEqual([]);
  expect(existsSync(stateDir(prefix))).toBe(false);
}

async function demo(...args: string[]): Promise<{ code: number; out: string; prefix: string }> {
  const r = await execa('bash', [path.join(root, 'scripts/demo.sh'), ...args], { reject: false, all: true, timeout: 120_000 });
  const prefix = /\(namespaces (fld[0-9a-f]{6})-\*\)/.exec(r.all ?? '')?.[1] ?? '';
  if (prefix) made.push(prefix);
  return { code: r.exitCode ?? -1, out: r.all ?? '', prefix };
}

// Should a run fail half-way, its own cleanup is what we test; this is the safety net.
afterAll(async () => {
  for (const p of made) {
    const left = (await namespaces(p)).length > 0 || (await processes(p)).length > 0 || existsSync(stateDir(p));
    if (left) await execa('bash', [path.join(root, 'scripts/demo.sh'), '--cleanup', p], { reject: false });
  }
});

describe('the three-node demo', () => {
  it('runs the walk-through: pods table, ping with ttl=62, VXLAN on the wire, the explainer; then removes everything', async () => {
    const { code, out, prefix } = await demo();
    expect(prefix, out).toMatch(PREFIX); // else every "removed" check below would pass vacuously
    expect(code, out).toBe(0);
    expect(out).toMatch(/^ubuntu\s+10\.244\.1\.2\s+worker01$/m);
    expect(out).toMatch(/^ubuntu2\s+10\.244\.2\.2\s+worker02$/m);
    expect(out).toMatch(/64 bytes from 10\.244\.2\.2: icmp_seq=1 ttl=62/);
    expect(out).toMatch(/^10\.244\.2\.0\/24 via 10\.244\.2\.0 dev flannel\.1 onlink/m);
    const mac = /^10\.244\.2\.0 dev flannel\.1 lladdr ([0-9a-f:]{17}) PERMANENT/m.exec(out)?.[1];
    expect(mac).toBeDefined();
    expect(out).toContain(`${mac} dst 172.16.1.102 self permanent`);
    expect(out).toContain(`{"PublicIP":"172.16.1.102","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`);
    expect(out).toMatch(/172\.16\.1\.101\.\d+ > 172\.16\.1\.102\.8472: \[no cksum\] OTV, flags \[I\] \(0x08\), overlay 0, instance 1/);
    expect(out).toMatch(/10\.244\.1\.2 > 10\.244\.2\.2: ICMP echo request/);
    const explained = out.slice(out.indexOf('flannelette explain 10.244.1.2 --to 10.244.2.2'));
    expect(explained).not.toContain('the explainer failed');
    expect(explained).toContain('172.16.1.102');

    await expectRemoved(prefix);
  });

  it("--backend host-gw: a route via worker02 on enp0s8, no overlay device, the pod's own packet on the wire", async () => {
    const { code, out, prefix } = await demo('--backend', 'host-gw');
    expect(prefix, out).toMatch(PREFIX);
    expect(code, out).toBe(0);
    expect(out).toContain('{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"host-gw"}}');
    expect(out).toContain('{"PublicIP":"172.16.1.102","PublicIPv6":null,"BackendType":"host-gw"}');
    expect(out).toMatch(/64 bytes from 10\.244\.2\.2: icmp_seq=1 ttl=62/);
    expect(out).toMatch(/^10\.244\.2\.0\/24 via 172\.16\.1\.102 dev enp0s8 $/m);
    expect(out).not.toContain('flannel.1');
    expect(out).toContain("4. A route via another node: 172.16.1.102 is on enp0s8's network, and 10.244.2.0/24 is a pod subnet of 10.244.0.0/16");
    expect(out).toMatch(/ethertype IPv4 \(0x0800\).*\n\s+10\.244\.1\.2 > 10\.244\.2\.2: ICMP echo request/);
    await expectRemoved(prefix);
  });

  it('--dual-stack: both families in the lease, the subnet file and the pods; IPv6 pods ping (hop limit 62) through flannel-v6.1, VXLAN over IPv6', async () => {
    const { code, out, prefix } = await demo('--dual-stack');
    expect(prefix, out).toMatch(PREFIX);
    expect(code, out).toBe(0);
    expect(out).toContain('FLANNEL_IPV6_NETWORK=fd00:10:244::/56 FLANNEL_IPV6_SUBNET=fd00:10:244:2::1/64');
    expect(out).toMatch(/^\/coreos\.com\/network\/subnets\/10\.244\.2\.0-24&fd00:10:244:2::-64$/m);
    expect(out).toMatch(
      /"PublicIPv6":"fd00:172:16:1::102","BackendType":"vxlan","BackendData":\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\},"BackendV6Data":\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\}/,
    );
    expect(out).toMatch(/^ubuntu2\s+10\.244\.2\.2\s+fd00:10:244:2::2\s+worker02$/m);
    expect(out).toMatch(/64 bytes from fd00:10:244:2::2: icmp_seq=\d ttl=62/);
    expect(out).toMatch(/^fd00:10:244:2::\/64 via fd00:10:244:2:: dev flannel-v6\.1 metric 1024 onlink/m);
    expect(out).toMatch(/fd00:172:16:1::101\.\d+ > fd00:172:16:1::102\.8472: .*OTV, flags \[I\] \(0x08\), overlay 0, instance 1/);
    const explained = out.slice(out.indexOf('flannelette explain fd00:10:244:1::2 --to fd00:10:244:2::2'));
    expect(explained).toContain('so the remote VTEP for fd00:10:244:2::2 is fd00:172:16:1::102.');
    await expectRemoved(prefix);
  });

  it('--keep leaves the cluster running; --cleanup PREFIX stops and removes all of it', async () => {
    const { code, out, prefix } = await demo('--keep');
    expect(prefix, out).toMatch(PREFIX);
    expect(code, out).toBe(0);
    expect(out).toContain(`clean up: bash scripts/demo.sh --cleanup ${prefix}`);
    expect(await namespaces(prefix)).toEqual(['master', 'ubuntu', 'ubuntu2', 'wire', 'worker01', 'worker02'].map((n) => `${prefix}-${n}`));
    expect((await processes(prefix)).length).toBe(3); // etcd and two agents
    const ping = await execa('ip', ['netns', 'exec', `${prefix}-ubuntu`, 'ping', '-c', '1', '-W', '2', '10.244.2.2'], { reject: false });
    expect(ping.stdout).toMatch(/ttl=62/);

    const cleanup = await execa('bash', [path.join(root, 'scripts/demo.sh'), '--cleanup', prefix], { reject: false, all: true });
    expect(cleanup.exitCode, cleanup.all).toBe(0);
    await expectRemoved(prefix);
  });
});
