// The overlay's pure pieces: config defaults as flannel's, subnet choice, lease and key
// formats, the subnet file, etcd's prefix range. No namespace needed: no kernel involved.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pickSubnet } from '../../src/overlay/allocate.ts';
import { parseNetworkConfig } from '../../src/overlay/config.ts';
import { prefixEnd } from '../../src/overlay/etcd.ts';
import { formatCidr, formatIp, parseCidr, parseIp } from '../../src/overlay/ipv4.ts';
import { leaseValue, parseLease, subnetKeyName } from '../../src/overlay/lease.ts';
import { formatSubnetFile, readPreviousSubnet, writeSubnetFile } from '../../src/overlay/subnet-file.ts';

const cidr = (s: string) => parseCidr(s)!;

describe('network config', () => {
  it("fills in flannel's defaults: /24 subnets, the first and last subnet, vxlan VNI 1 on 8472", () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    expect(c.subnetLen).toBe(24);
    expect([formatIp(c.subnetMin), formatIp(c.subnetMax)]).toEqual(['10.244.1.0', '10.244.255.0']);
    expect([c.vni, c.port]).toEqual([1, 8472]);
    expect(parseNetworkConfig('{"Network":"10.9.0.0/26"}').subnetLen).toBe(27);
  });

  it('takes SubnetLen, SubnetMin, SubnetMax, VNI and Port as given', () => {
    const c = parseNetworkConfig(
      '{"Network":"10.0.0.0/8","SubnetLen":20,"SubnetMin":"10.10.0.0","SubnetMax":"10.10.240.0","Backend":{"Type":"vxlan","VNI":42,"Port":4789}}',
    );
    expect([c.subnetLen, formatIp(c.subnetMin), formatIp(c.subnetMax), c.vni, c.port]).toEqual([20, '10.10.0.0', '10.10.240.0', 42, 4789]);
  });

  it('rejects what flannel rejects, saying which key is wrong', () => {
    expect(() => parseNetworkConfig('{"Network":"10.244.1.0/16"}')).toThrow(/"Network"/);
    expect(() => parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetLen":16}')).toThrow(/"SubnetLen"/);
    expect(() => parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetMin":"10.9.0.0"}')).toThrow(/"SubnetMin"/);
    expect(() => parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}')).toThrow(/only "vxlan"/);
    expect(() => parseNetworkConfig('{"SubnetLen":24}')).toThrow(/no "Network"/);
    expect(() => parseNetworkConfig('nope')).toThrow(/not JSON/);
  });
});

describe('subnet choice', () => {
  const config = parseNetworkConfig('{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMax":"10.244.3.0"}');
  const taken = (...s: string[]) => new Set(s.map((x) => cidr(x).ip));

  it("takes the lowest free subnet, skipping the network's first", () => {
    expect(formatCidr(pickSubnet(config, taken())!)).toBe('10.244.1.0/24');
    expect(formatCidr(pickSubnet(config, taken('10.244.1.0/24', '10.244.2.0/24'))!)).toBe('10.244.3.0/24');
  });

  it('prefers the previous subnet when it is free and leasable', () => {
    expect(formatCidr(pickSubnet(config, taken(), cidr('10.244.2.0/24'))!)).toBe('10.244.2.0/24');
    expect(formatCidr(pickSubnet(config, taken('10.244.2.0/24'), cidr('10.244.2.0/24'))!)).toBe('10.244.1.0/24');
    expect(formatCidr(pickSubnet(config, taken(), cidr('10.244.9.0/24'))!)).toBe('10.244.1.0/24'); // above SubnetMax
    expect(formatCidr(pickSubnet(config, taken(), cidr('10.244.2.0/25'))!)).toBe('10.244.1.0/24'); // wrong size
  });

  it('answers undefined when the range is full', () => {
    expect(pickSubnet(config, taken('10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24'))).toBeUndefined();
  });
});

describe('leases', () => {
  it("are keyed and written as flannel's", () => {
    expect(subnetKeyName(cidr('10.244.1.0/24'))).toBe('10.244.1.0-24');
    expect(leaseValue('172.16.1.101', 'da:10:15:d7:71:fb')).toBe(
      '{"PublicIP":"172.16.1.101","BackendType":"vxlan","BackendData":{"VtepMAC":"da:10:15:d7:71:fb"}}',
    );
  });

  it("read flannel's own values, extra fields and all; refuse what is not a lease", () => {
    const l = parseLease('10.244.2.0-24', '{"PublicIP":"172.16.1.102","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VtepMAC":"06:F5:5B:C5:A4:C9"}}');
    expect(l).toEqual({ subnet: cidr('10.244.2.0/24'), publicIP: '172.16.1.102', backendType: 'vxlan', vtepMAC: '06:f5:5b:c5:a4:c9' });
    expect(parseLease('10.244.2.0-24', '{"PublicIP":"172.16.1.102","BackendType":"udp","BackendData":null}')?.vtepMAC).toBeUndefined();
    expect(parseLease('10.244.2.1-24', '{"PublicIP":"172.16.1.102"}')).toBeUndefined();
    expect(parseLease('junk', '{"PublicIP":"172.16.1.102"}')).toBeUndefined();
    expect(parseLease('10.244.2.0-24', 'not json')).toBeUndefined();
  });
});

describe('subnet file', () => {
  it('is written whole, with the gateway address as FLANNEL_SUBNET, and read back', async () => {
    const text = formatSubnetFile({ network: cidr('10.244.0.0/16'), subnet: cidr('10.244.1.0/24'), mtu: 1450, ipMasq: true });
    expect(text).toBe('FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'flannelette-subnet-'));
    try {
      const file = path.join(dir, 'run/flannel/subnet.env');
      expect(await readPreviousSubnet(file)).toBeUndefined();
      await writeSubnetFile(file, { network: cidr('10.244.0.0/16'), subnet: cidr('10.244.7.0/24'), mtu: 1450, ipMasq: false });
      expect(formatCidr((await readPreviousSubnet(file))!)).toBe('10.244.7.0/24');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('address math and etcd ranges', () => {
  it('parses only dotted quads and network addresses', () => {
    expect(parseIp('10.244.1.256')).toBeUndefined();
    expect(parseIp('10.244.1')).toBeUndefined();
    expect(parseCidr('10.244.1.0/33')).toBeUndefined();
    expect(parseCidr('10.244.1.1/24')).toBeUndefined();
    expect(formatIp(parseIp('255.255.255.255')!)).toBe('255.255.255.255');
  });

  it('ends a prefix range just past the prefix', () => {
    expect(prefixEnd('/coreos.com/network/subnets/').toString()).toBe('/coreos.com/network/subnets0');
    expect([...prefixEnd('')]).toEqual([0]);
  });
});
