// The plugin sets a runtime test runs against: the reference Go plugins first, then ours
// (installed by scripts/install.sh into inject('binDir')). FLANNELETTE_PLUGINS=reference or
// =ours narrows the run to one set; an absolute path runs a set from that directory.
import { inject } from 'vitest';
import { REFERENCE_DIR } from './plugin.ts';

export interface PluginSet {
  label: string;
  /** The directory a runtime finds bridge and host-local in. */
  dir: string;
}

export function pluginSets(): PluginSet[] {
  const all: PluginSet[] = [
    { label: 'reference', dir: REFERENCE_DIR },
    { label: 'ours', dir: inject('binDir') },
  ];
  const only = process.env.FLANNELETTE_PLUGINS;
  if (only?.startsWith('/')) return [{ label: `dir ${only}`, dir: only }];
  return only && only !== 'both' ? all.filter((s) => s.label === only) : all;
}

/** A set's label as a name part (containerd namespaces, cgroups): letters, digits, '-'. */
export function slug(set: PluginSet): string {
  return set.label.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

export const POD_SUBNET = '10.244.1.0/24';
export const GATEWAY = '10.244.1.1';
export const CLUSTER_CIDR = '10.244.0.0/16';

/**
 * The bridge config flannel hands its delegate on a node whose subnet is 10.244.1.0/24
 * (flannel's defaults: hairpin, default gateway, VXLAN mtu), with the lease store in
 * `dataDir` instead of /var/lib/cni/networks.
 */
export function flannelBridge(dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    isDefaultGateway: true,
    ipMasq: false,
    hairpinMode: true,
    mtu: 1450,
    ipam: {
      type: 'host-local',
      dataDir,
      ranges: [[{ subnet: POD_SUBNET }]],
      routes: [{ dst: CLUSTER_CIDR }],
    },
    ...extra,
  };
}

/** A conflist as a runtime reads it from its config directory. */
export function flannelConflist(name: string, cniVersion: string, dataDir: string): Record<string, unknown> {
  return { cniVersion, name, plugins: [flannelBridge(dataDir)] };
}

/** A single network config as a runtime passes it to the plugin (name, version injected). */
export function flannelConf(name: string, cniVersion: string, dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion, name, ...flannelBridge(dataDir, extra) };
}
