// The delegate config, held field by field against what flannel's Go plugin
// (github.com/flannel-io/cni-plugin, flannel.go + flannel_linux.go) builds from the same
// subnet file and config. Pure functions: no namespace needed to check a JSON document.
import { describe, expect, it } from 'vitest';
import { formatCidr, networkOf, parseCidr } from '../../src/net/ip.ts';
import { readFlannelConf } from '../../src/plugins/flannel/config.ts';
import { buildDelegateConf, goJson } from '../../src/plugins/flannel/delegate-conf.ts';
import { parseSubnetEnv } from '../../src/plugins/flannel/subnet-env.ts';
import type { NetConf } from '../../src/cni/skel.ts';

const ENV = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

/** The delegate config as flannel stores it (JSON), open but for the fields these tests read. */
interface Delegate {
  type: string;
  ipMasq?: boolean;
  ipam: { type?: string; ranges?: unknown; routes?: unknown; [key: string]: unknown };
  runtimeConfig?: unknown;
  [key: string]: unknown;
}

function delegateFor(conf: Record<string, unknown>, env = ENV): Delegate {
  const c = readFlannelConf({ cniVersion: '1.0.0', name: 'cbr0', type: 'flannel', ...conf } as NetConf, true);
  return JSON.parse(goJson(buildDelegateConf(c, parseSubnetEnv(env, 'subnet.env')))) as Delegate;
}

describe('the delegate config flannel builds', () => {
  it('defaults: bridge, named after the network, gateway, mtu from the file, ipMasq the inverse of FLANNEL_IPMASQ', () => {
    const d = delegateFor({});
    expect(d).toEqual({
      cniVersion: '1.0.0',
      name: 'cbr0',
      type: 'bridge',
      isGateway: true,
      ipMasq: false,
      mtu: 1450,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '10.244.0.0/16' }] },
    });
    // Go's encoding/json sorts map keys: the bytes match flannel's stored file.
    const c = readFlannelConf({ cniVersion: '1.0.0', name: 'cbr0', type: 'flannel' } as NetConf, true);
    expect(goJson(buildDelegateConf(c, parseSubnetEnv(ENV, 'f')))).toBe(
      '{"cniVersion":"1.0.0","ipMasq":false,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge"}',
    );
    expect(delegateFor({}, ENV.replace('IPMASQ=true', 'IPMASQ=false')).ipMasq).toBe(true);
    // Only the exact text "true" means true, as in flannel.
    expect(delegateFor({}, ENV.replace('IPMASQ=true', 'IPMASQ=TRUE')).ipMasq).toBe(true);
  });

  it('delegate keys win, including false and 0; isGateway is only added for bridge', () => {
    expect(delegateFor({ delegate: { ipMasq: true, mtu: 0, isGateway: false, hairpinMode: true, isDefaultGateway: true } })).toMatchObject({
      ipMasq: true,
      mtu: 0,
      isGateway: false,
      hairpinMode: true,
      isDefaultGateway: true,
    });
    const mac = delegateFor({ delegate: { type: 'macvlan', master: 'eth0' } });
    expect(mac.type).toBe('macvlan');
    expect(mac).not.toHaveProperty('isGateway');
    expect(mac).toMatchObject({ master: 'eth0', mtu: 1450, ipMasq: false });
  });

  it('ipam: the config’s keys kept, type defaulted, ranges always this node’s subnet, its routes first', () => {
    const d = delegateFor({
      ipam: {
        type: 'host-local',
        dataDir: '/x',
        ranges: [[{ subnet: '192.168.0.0/24' }]],
        routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.9.0/24', gw: '10.244.1.254' }],
      },
    });
    expect(d.ipam).toEqual({
      type: 'host-local',
      dataDir: '/x',
      ranges: [[{ subnet: '10.244.1.0/24' }]],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.9.0/24', gw: '10.244.1.254' }, { dst: '10.244.0.0/16' }],
    });
    expect(delegateFor({ ipam: { type: 'static' } }).ipam.type).toBe('static');
  });

  it('dual stack: one range set per family, v4 first; every network routed, duplicates dropped', () => {
    const env =
      'FLANNEL_NETWORK=10.244.0.0/16,10.245.0.0/16,10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\n' +
      'FLANNEL_IPV6_NETWORK=fd00:10:244:0:0::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:1::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n';
    const d = delegateFor({}, env);
    expect(d.ipam.ranges).toEqual([[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:244:1::/64' }]]);
    expect(d.ipam.routes).toEqual([{ dst: '10.244.0.0/16' }, { dst: '10.245.0.0/16' }, { dst: 'fd00:10:244::/56' }]);
    const v6only = delegateFor({}, 'FLANNEL_IPV6_NETWORK=fd00::/48\nFLANNEL_IPV6_SUBNET=fd00:0:0:3::/64\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n');
    expect(v6only.ipam).toMatchObject({ ranges: [[{ subnet: 'fd00:0:0:3::/64' }]], routes: [{ dst: 'fd00::/48' }] });
  });

  it('runtimeConfig from the config goes to the delegate', () => {
    const rc = { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] };
    expect(delegateFor({ runtimeConfig: rc }).runtimeConfig).toEqual(rc);
  });

  it('reads the subnet file as flannel does: last key wins, unknown keys and CRs ignored', () => {
    const env = parseSubnetEnv(
      '# comment\nFLANNEL_MTU=9000\r\nFLANNEL_MTU=1450\nOTHER=1\nFLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.7.1/24\nFLANNEL_IPMASQ=true',
      'f',
    );
    expect(env).toEqual({ networks: ['10.1.0.0/16'], ipv6Networks: [], subnet: '10.1.7.0/24', mtu: 1450, ipMasq: true });
  });

  it('escapes <, > and & as Go does', () => {
    expect(goJson({ b: '<a&b>', a: 1 })).toBe('{"a":1,"b":"\\u003ca\\u0026b\\u003e"}');
  });

  it('prints networks in Go’s canonical form', () => {
    const net = (s: string) => formatCidr(networkOf(parseCidr(s)!));
    expect(net('10.244.1.77/20')).toBe('10.244.0.0/20');
    expect(net('fd00:0:0:0:0:0:0:1/64')).toBe('fd00::/64');
    expect(net('2001:db8:0:1:0:0:1:1/128')).toBe('2001:db8:0:1::1:1/128');
    expect(net('2001:0:0:1:0:0:0:1/128')).toBe('2001:0:0:1::1/128');
    expect(parseCidr('10.0.0.1/33')).toBeUndefined();
    expect(parseCidr('010.0.0.1/8')).toBeUndefined();
    expect(parseCidr('10.0.0.1')).toBeUndefined();
  });
});
