// The overlay's pure pieces: config defaults as flannel's, subnet choice, lease and key
// formats, the subnet file, backoff, etcd's prefix range, the kernel dataplane's answers to a
// stand-in netlink connection. No namespace needed: no kernel involved.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatCidr, formatIP, parseCidr, parseIP, type Cidr } from '../../src/net/ip.ts';
import { RouteType } from '../../src/kernel/records.ts';
import { freeSubnets, pickSubnet } from '../../src/overlay/allocate.ts';
import { backoffDelay } from '../../src/overlay/backoff.ts';
import { parseNetworkConfig } from '../../src/overlay/config.ts';
import { prefixEnd } from '../../src/overlay/etcd.ts';
import { KernelDataplane } from '../../src/overlay/kernel-dataplane.ts';
import { plainTextError, serverError, transportError } from '../../src/overlay/etcd-errors.ts';
import { leaseValue, parseLease, parseSubnetKeyName, parseUnicastMac, subnetKeyName } from '../../src/overlay/lease.ts';
import { formatSubnetFile, readPreviousSubnets, writeSubnetFile } from '../../src/overlay/subnet-file.ts';

const cidr = (s: string): Cidr => {
  const c = parseCidr(s)!;
  return { ip: c.ip, prefix: c.prefix };
};
const ip = (s: string) => parseIP(s)!;

describe('network config', () => {
  it("fills in flannel's defaults: /24 subnets (two bits more for a small network), the first and last subnet, vxlan VNI 1 on 8472", () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    expect(c.v4.subnetLen).toBe(24);
    expect([formatIP(c.v4.min), formatIP(c.v4.max)]).toEqual(['10.244.1.0', '10.244.255.0']);
    expect(c.backend).toEqual({ type: 'vxlan', vni: 1, port: 8472, directRouting: false, learning: false });
    expect(c.v6).toBeUndefined();
    expect(c.warnings).toEqual([]);
    expect(parseNetworkConfig('{"Network":"10.9.0.0/22"}').v4.subnetLen).toBe(24);
    expect(parseNetworkConfig('{"Network":"10.9.0.0/23"}').v4.subnetLen).toBe(25);
    expect(parseNetworkConfig('{"Network":"10.9.0.0/26"}').v4.subnetLen).toBe(28);
  });

  it('takes SubnetLen, SubnetMin, SubnetMax and the vxlan keys as given', () => {
    const c = parseNetworkConfig(
      '{"Network":"10.0.0.0/8","SubnetLen":20,"SubnetMin":"10.10.0.0","SubnetMax":"10.10.240.0","Backend":{"Type":"vxlan","VNI":42,"Port":4789,"MTU":9000,"DirectRouting":true,"Learning":true}}',
    );
    expect([c.v4.subnetLen, formatIP(c.v4.min), formatIP(c.v4.max)]).toEqual([20, '10.10.0.0', '10.10.240.0']);
    expect(c.backend).toEqual({ type: 'vxlan', vni: 42, port: 4789, mtu: 9000, directRouting: true, learning: true });
  });

  it("matches key names as Go's encoding/json does: exact first, else in any case", () => {
    const c = parseNetworkConfig('{"network":"10.244.0.0/16","subnetlen":25,"backend":{"type":"vxlan","vni":7,"directRouting":true,"port":0}}');
    expect([formatCidr(c.v4.network), c.v4.subnetLen]).toEqual(['10.244.0.0/16', 25]);
    expect(c.backend).toEqual({ type: 'vxlan', vni: 7, port: 8472, directRouting: true, learning: false });
  });

  it('reads host-gw: Type only; other keys are warned about, not silently ignored', () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw","VNI":4}}');
    expect(c.backend).toEqual({ type: 'host-gw' });
    expect(c.warnings).toEqual(['Backend key "VNI" is not one the host-gw backend reads (Type): ignored']);
    const v = parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetLenght":26,"Backend":{"Type":"vxlan","DirectRouteing":true,"MacPrefix":"0E-2A"}}');
    expect(v.warnings).toEqual([
      'network config key "SubnetLenght" is not one flannel reads: ignored',
      'Backend key "DirectRouteing" is not one the vxlan backend reads (Type, VNI, Port, MTU, GBP, Learning, DirectRouting): ignored',
      'Backend key "MacPrefix" is read by flannel on Windows only: ignored',
    ]);
  });

  it("reads dual-stack with flannel's IPv6 keys and defaults: /64 subnets, the first left out", () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:244::/56"}');
    expect(c.v6 && [formatCidr(c.v6.network), c.v6.subnetLen, formatIP(c.v6.min), formatIP(c.v6.max)]).toEqual([
      'fd00:10:244::/56',
      64,
      'fd00:10:244:1::',
      'fd00:10:244:ff::',
    ]);
    const d = parseNetworkConfig(
      '{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetLen":80,"IPv6SubnetMin":"fd00:0:0:5::","IPv6SubnetMax":"fd00:0:0:9::"}',
    ).v6!;
    expect([d.subnetLen, formatIP(d.min), formatIP(d.max)]).toEqual([80, 'fd00:0:0:5::', 'fd00:0:0:9::']);
    expect(parseNetworkConfig('{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/120"}').v6!.subnetLen).toBe(122);
  });

  it('rejects what flannel rejects (and what flannelette cannot do), saying which key is wrong', () => {
    const bad: Array<[string, RegExp]> = [
      ['{"Network":"10.244.1.0/16"}', /"Network"/],
      ['{"Network":"fd00::/48"}', /"Network" fd00::\/48 is not an IPv4 network/],
      ['{"Network":"10.244.0.0/16","SubnetLen":16}', /"SubnetLen" 16 must be longer than the network's \/16 by at least 2/],
      ['{"Network":"10.244.0.0/16","SubnetLen":17}', /"SubnetLen" 17/],
      ['{"Network":"10.244.0.0/16","SubnetLen":31}', /at most 30/],
      ['{"Network":"10.9.0.0/29"}', /too small: the smallest flannel takes is a \/28/],
      ['{"Network":"10.244.0.0/16","SubnetMin":"10.9.0.0"}', /"SubnetMin"/],
      ['{"Network":"10.244.0.0/16","SubnetMax":"10.244.241.7"}', /"SubnetMax" 10\.244\.241\.7 is not on a "SubnetLen" \/24 boundary/],
      ['{"Network":"10.244.0.0/16","SubnetMin":"10.244.9.0","SubnetMax":"10.244.3.0"}', /above "SubnetMax"/],
      ['{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}', /backend type "udp" is not supported \(flannelette runs "vxlan" and "host-gw"\)/],
      ['{"Network":"10.244.0.0/16","Backend":{"VNI":0}}', /"VNI"/],
      ['{"Network":"10.244.0.0/16","Backend":{"MTU":50}}', /"MTU"/],
      ['{"Network":"10.244.0.0/16","Backend":{"GBP":true}}', /"GBP" \(VXLAN Group Based Policy\) is not supported/],
      ['{"Network":"10.244.0.0/16","Backend":{"DirectRouting":"yes"}}', /Backend "DirectRouting" must be true or false/],
      ['{"Network":"10.244.0.0/16","EnableIPv6":true}', /no "IPv6Network"/],
      ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"10.0.0.0/8"}', /"IPv6Network" 10\.0\.0\.0\/8 is not an IPv6 network/],
      ['{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/64","IPv6SubnetLen":65}', /"IPv6SubnetLen" 65/],
      ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48"}', /IPv6-only\) needs flannel's Kubernetes subnet manager/],
      ['{"SubnetLen":24}', /no "Network"/],
      ['nope', /not JSON/],
    ];
    for (const [text, re] of bad) expect(() => parseNetworkConfig(text), text).toThrow(re);
  });
});

describe('subnet choice (as flannel: at random among the first 100 free)', () => {
  const range = parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMax":"10.244.3.0"}').v4;
  const wide = parseNetworkConfig('{"Network":"10.0.0.0/8","SubnetLen":24}').v4;
  const names = (cs: Cidr[]) => cs.map(formatCidr);

  it("lists the free subnets from SubnetMin, skipping the network's first and every taken one", () => {
    expect(names(freeSubnets(range, []))).toEqual(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    expect(names(freeSubnets(range, [cidr('10.244.2.0/24')]))).toEqual(['10.244.1.0/24', '10.244.3.0/24']);
  });

  it('counts a lease of another size as taking every subnet it overlaps', () => {
    expect(names(freeSubnets(range, [cidr('10.244.0.0/23')]))).toEqual(['10.244.2.0/24', '10.244.3.0/24']);
    expect(names(freeSubnets(range, [cidr('10.244.3.128/25')]))).toEqual(['10.244.1.0/24', '10.244.2.0/24']);
  });

  it('stops at 100 candidates, and picks among them with the random number given', () => {
    const free = freeSubnets(wide, []);
    expect(free).toHaveLength(100);
    expect(formatCidr(free[99]!)).toBe('10.0.100.0/24');
    expect(formatCidr(pickSubnet(wide, [], undefined, () => 0)!)).toBe('10.0.1.0/24');
    expect(formatCidr(pickSubnet(wide, [], undefined, () => 0.999999)!)).toBe('10.0.100.0/24');
    expect(formatCidr(pickSubnet(wide, [], undefined, () => 0.5)!)).toBe('10.0.51.0/24');
  });

  it('prefers the previous subnet when it is free and leasable', () => {
    const zero = () => 0;
    expect(formatCidr(pickSubnet(range, [], cidr('10.244.2.0/24'), zero)!)).toBe('10.244.2.0/24');
    expect(formatCidr(pickSubnet(range, [cidr('10.244.2.0/24')], cidr('10.244.2.0/24'), zero)!)).toBe('10.244.1.0/24');
    expect(formatCidr(pickSubnet(range, [], cidr('10.244.9.0/24'), zero)!)).toBe('10.244.1.0/24'); // above SubnetMax
    expect(formatCidr(pickSubnet(range, [], cidr('10.244.2.0/25'), zero)!)).toBe('10.244.1.0/24'); // wrong size
  });

  it('answers undefined when the range is full', () => {
    expect(pickSubnet(range, [cidr('10.244.1.0/24'), cidr('10.244.2.0/24'), cidr('10.244.3.0/24')])).toBeUndefined();
  });
});

describe('leases', () => {
  it("are keyed and written as flannel's", () => {
    expect(subnetKeyName(cidr('10.244.1.0/24'))).toBe('10.244.1.0-24');
    expect(subnetKeyName(cidr('10.244.1.0/24'), cidr('fd00:10:244:1::/64'))).toBe('10.244.1.0-24&fd00:10:244:1::-64');
    // What flanneld's json.Marshal of its LeaseAttrs writes, byte for byte, for each mode.
    expect(leaseValue({ publicIP: ip('172.16.1.101'), backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'da:10:15:d7:71:fb' } })).toBe(
      '{"PublicIP":"172.16.1.101","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"da:10:15:d7:71:fb"}}',
    );
    expect(leaseValue({ publicIP: ip('172.16.1.101'), backendType: 'host-gw' })).toBe('{"PublicIP":"172.16.1.101","PublicIPv6":null,"BackendType":"host-gw"}');
    expect(
      leaseValue({
        publicIP: ip('172.16.1.101'),
        publicIPv6: ip('fd00:172:16:1:0:0:0:101'),
        backendType: 'vxlan',
        backendData: { VNI: 1, VtepMAC: 'da:10:15:d7:71:fb' },
        backendV6Data: { VNI: 1, VtepMAC: '4e:1c:2a:00:00:01' },
      }),
    ).toBe(
      '{"PublicIP":"172.16.1.101","PublicIPv6":"fd00:172:16:1::101","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"da:10:15:d7:71:fb"},"BackendV6Data":{"VNI":1,"VtepMAC":"4e:1c:2a:00:00:01"}}',
    );
  });

  it('read key names of both forms, and refuse what is not a subnet', () => {
    expect(parseSubnetKeyName('10.244.2.0-24')).toEqual({ subnet: cidr('10.244.2.0/24') });
    expect(parseSubnetKeyName('10.244.2.0-24&fd00::-64')).toEqual({ subnet: cidr('10.244.2.0/24'), ipv6Subnet: cidr('fd00::/64') });
    for (const bad of ['junk', '10.244.2.1-24', '10.244.2.0-33', '10.244.2.0', 'fd00::-64', '10.244.2.0-24&10.1.0.0-16', '10.244.2.0-24&fd00::-64&x']) {
      expect(parseSubnetKeyName(bad), bad).toBeUndefined();
    }
  });

  it("read flannel's own values, extra fields and all", () => {
    const l = parseLease('10.244.2.0-24', '{"PublicIP":"172.16.1.102","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VtepMAC":"06:F5:5B:C5:A4:C9"}}');
    expect(l).toEqual({
      ok: true,
      value: {
        key: '10.244.2.0-24',
        subnet: cidr('10.244.2.0/24'),
        publicIP: ip('172.16.1.102'),
        backendType: 'vxlan',
        backendData: { VtepMAC: '06:F5:5B:C5:A4:C9' },
      },
    });
  });

  it('say why a key or value is not a lease', () => {
    const why = (k: string, v: string) => {
      const p = parseLease(k, v);
      return p.ok ? 'ok' : p.reason;
    };
    expect(why('junk', '{"PublicIP":"172.16.1.102"}')).toMatch(/key is not a subnet/);
    expect(why('10.244.2.0-24', 'not json')).toMatch(/value is not JSON: "not json"/);
    expect(why('10.244.2.0-24', '[1]')).toMatch(/not a JSON object/);
    expect(why('10.244.2.0-24', '{"PublicIP":"nope"}')).toMatch(/PublicIP "nope" is not an IPv4 address/);
    expect(why('10.244.2.0-24', '{"PublicIP":"224.0.0.5"}')).toMatch(/not a unicast address/);
    expect(why('10.244.2.0-24', '{"PublicIP":"0.0.0.0"}')).toMatch(/not a unicast address/);
    expect(why('10.244.2.0-24', '{"PublicIP":"172.16.1.102","PublicIPv6":"x"}')).toMatch(/PublicIPv6 "x"/);
    expect(why('10.244.2.0-24', '{"PublicIP":"172.16.1.102","PublicIPv6":"ff02::1"}')).toMatch(/PublicIPv6 ff02::1 is not a unicast address/);
  });

  it('take only unicast MACs as a VTEP', () => {
    expect(parseUnicastMac('06:F5:5B:C5:A4:C9')).toEqual({ ok: true, value: '06:f5:5b:c5:a4:c9' });
    expect(parseUnicastMac('01:00:5e:00:00:05')).toEqual({ ok: false, reason: '01:00:5e:00:00:05 is a multicast MAC address, not a unicast one' });
    expect(parseUnicastMac('00:00:00:00:00:00').ok).toBe(false);
    expect(parseUnicastMac('06:f5:5b:c5:a4').ok).toBe(false);
    expect(parseUnicastMac(undefined).ok).toBe(false);
  });
});

describe('subnet file', () => {
  it('is written whole, with the gateway address as FLANNEL_SUBNET (and FLANNEL_IPV6_SUBNET), and read back', async () => {
    const text = formatSubnetFile({ network: cidr('10.244.0.0/16'), subnet: cidr('10.244.1.0/24'), mtu: 1450, ipMasq: true });
    expect(text).toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    // flanneld's order: the IPv6 pair after the IPv4 one.
    const dual = {
      network: cidr('10.244.0.0/16'),
      subnet: cidr('10.244.7.0/24'),
      ipv6Network: cidr('fd00:10:244::/56'),
      ipv6Subnet: cidr('fd00:10:244:7::/64'),
    };
    expect(formatSubnetFile({ ...dual, mtu: 1450, ipMasq: false })).toBe(
      'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:7::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n',
    );
    const dir = mkdtempSync(path.join(os.tmpdir(), 'flannelette-subnet-'));
    try {
      const file = path.join(dir, 'run/flannel/subnet.env');
      expect(await readPreviousSubnets(file)).toEqual({});
      await writeSubnetFile(file, { network: cidr('10.244.0.0/16'), subnet: cidr('10.244.7.0/24'), mtu: 1450, ipMasq: false });
      expect(await readPreviousSubnets(file)).toEqual({ subnet: cidr('10.244.7.0/24') });
      await writeSubnetFile(file, { ...dual, mtu: 1450, ipMasq: false });
      expect(await readPreviousSubnets(file)).toEqual({ subnet: cidr('10.244.7.0/24'), ipv6Subnet: cidr('fd00:10:244:7::/64') });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('backoff', () => {
  it('doubles from the base to the cap, and jitters between half and all of it', () => {
    const b = { baseMs: 1000, maxMs: 30_000 };
    const top = [1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, b, () => 1));
    expect(top).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(backoffDelay(3, b, () => 0)).toBe(2000);
    for (let i = 0; i < 50; i++) expect(backoffDelay(2, b)).toBeGreaterThanOrEqual(1000);
  });
});

describe('the kernel dataplane over a stand-in netlink connection', () => {
  it("DirectRouting's lookup: a route's device that cannot be read is not known to be direct (undefined), never a throw", async () => {
    const dp = new KernelDataplane();
    let link = async (): Promise<{ name: string } | undefined> => ({ name: 'eth0' });
    Object.assign(dp, { nlConn: { routeGet: async () => ({ type: RouteType.unicast, oif: 7 }), link: () => link() } });
    await expect(dp.directDevice(ip('172.16.1.2'))).resolves.toBe('eth0');
    link = async () => {
      throw new Error('netlink: No buffer space available');
    };
    await expect(dp.directDevice(ip('172.16.1.2'))).resolves.toBeUndefined();
  });
});

describe('etcd ranges', () => {
  it('ends a prefix range just past the prefix', () => {
    expect(prefixEnd('/coreos.com/network/subnets/').toString()).toBe('/coreos.com/network/subnets0');
    expect([...prefixEnd('')]).toEqual([0]);
  });
});

describe("etcd's failures", () => {
  const ep = new URL('https://10.0.0.1:2379');
  const err = (message: string, code?: string) => Object.assign(new Error(message), code ? { code } : {});

  it('name the flag to fix, and are fatal (tls, auth) or tried elsewhere (unreachable)', () => {
    const untrusted = transportError(ep, err('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'), true);
    expect([untrusted.kind, untrusted.fatal, untrusted.message]).toEqual([
      'tls',
      true,
      'etcd https://10.0.0.1:2379: its certificate is not trusted (SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain): check --etcd-cafile',
    ]);
    const alert = err('SSL alert number 42', 'ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE');
    expect(transportError(ep, alert, false).message).toMatch(/it wants a client certificate: pass --etcd-certfile and --etcd-keyfile$/);
    expect(transportError(ep, alert, true).message).toMatch(/it did not accept our client certificate/);
    const refused = transportError(ep, err('connect ECONNREFUSED 10.0.0.1:2379', 'ECONNREFUSED'), false);
    expect([refused.kind, refused.fatal]).toEqual(['unreachable', false]);
    expect(transportError(new URL('http://10.0.0.1:2379'), err('socket hang up', 'ECONNRESET'), false).message).toMatch(
      /if etcd serves https there, use https:\/\//,
    );
  });

  it("read the gateway's answers: credentials and rights are fatal, a missing leader is tried elsewhere", () => {
    const at = 'https://10.0.0.1:2379';
    expect(serverError(at, 'auth/authenticate', 400, { message: 'etcdserver: authentication failed, invalid user ID or password' }).kind).toBe('auth');
    expect(serverError(at, 'kv/range', 403, { message: 'etcdserver: permission denied' }).message).toMatch(/roles must grant readwrite on the prefix/);
    expect(serverError(at, 'kv/range', 503, { message: 'etcdserver: no leader' }).kind).toBe('unreachable');
    expect(serverError(at, 'kv/txn', 400, { message: 'etcdserver: too many operations in txn request' }).kind).toBe('server');
    expect(plainTextError(at, 'kv/range', 400, 'CommonName of client sending a request against gateway will be ignored and not used as expected').kind).toBe(
      'auth',
    );
    expect(plainTextError(at, 'kv/range', 400, 'Client sent an HTTP request to an HTTPS server.').message).toMatch(/use https:\/\/$/);
  });
});
