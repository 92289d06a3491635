// The bridge plugin's configuration: the keys of the reference (v1.1.1) and those later
// versions added, checked up front so that bad input is refused before anything is made.
import { CniError, ErrCode } from '../../cni/errors.ts';
import { checkKnownArgs } from '../../cni/args.ts';
import { ipamType } from '../../cni/ipam.ts';
import type { DNS } from '../../cni/result.ts';
import type { Invocation } from '../../cni/skel.ts';
import { isKernelLinkName, MAX_IFNAME } from '../../cni/validate.ts';

export interface BridgeConf {
  name: string;
  cniVersion: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  /** Unset: iptables when present, else nftables (as upstream decides). */
  ipMasqBackend?: 'iptables' | 'nftables';
  /** 0: the kernel's default. */
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  /** Access VLAN of the pod's port; 0 for none. */
  vlan: number;
  /** Trunk VLANs of the pod's port, sorted, unique. */
  vlanTrunk: number[];
  /** The bridge filters VLANs (vlan or vlanTrunk set). */
  vlanFiltering: boolean;
  preserveDefaultVlan: boolean;
  macspoofchk: boolean;
  enabledad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** The pod interface's requested MAC, normalized (lower case, colons). */
  mac?: string;
  ipamType: string;
  /** The config's own DNS, when it sets any (it then replaces IPAM's). */
  dns?: DNS;
  prevResult?: unknown;
}

const invalid = (msg: string, details = '') => new CniError(ErrCode.InvalidNetworkConfig, msg, details);

function bool(raw: Record<string, unknown>, key: string, dflt = false): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw invalid(`"${key}" must be true or false`, `got ${JSON.stringify(v)}`);
  return v;
}

function int(raw: Record<string, unknown>, key: string): number {
  const v = raw[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw invalid(`"${key}" must be an integer`, `got ${JSON.stringify(v)}`);
  return v;
}

/** A MAC in any of Go's 6-byte spellings, as lower-case colon text; unicast only. */
export function parseMac(text: string): string | undefined {
  const hex = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i.exec(text);
  const dotted = /^([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})$/i.exec(text);
  let bytes: string[];
  if (hex) bytes = [hex[1]!, hex[3]!, hex[4]!, hex[5]!, hex[6]!, hex[7]!];
  else if (dotted) bytes = dotted.slice(1).flatMap((w) => [w.slice(0, 2), w.slice(2)]);
  else return undefined;
  const mac = bytes.join(':').toLowerCase();
  if ((parseInt(bytes[0]!, 16) & 1) !== 0 || mac === '00:00:00:00:00:00') return undefined;
  return mac;
}

function trunk(raw: unknown): number[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('"vlanTrunk" must be a list');
  const ids = new Set<number>();
  const vid = (v: unknown, what: string) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > 4094) throw invalid(`incorrect trunk ${what} parameter`, `got ${JSON.stringify(v)}`);
    return v;
  };
  for (const item of raw as Array<Record<string, unknown>>) {
    if (!item || typeof item !== 'object') throw invalid('"vlanTrunk" entries must be objects');
    const hasMin = item.minID !== undefined && item.minID !== null;
    const hasMax = item.maxID !== undefined && item.maxID !== null;
    if (hasMin !== hasMax) throw invalid(`minID and maxID should be configured simultaneously, ${hasMin ? 'maxID' : 'minID'} is missing`);
    if (hasMin) {
      const lo = vid(item.minID, 'minID');
      const hi = vid(item.maxID, 'maxID');
      if (hi < lo) throw invalid('minID is greater than maxID in trunk parameter');
      for (let v = lo; v <= hi; v++) ids.add(v);
    }
    if (item.id !== undefined && item.id !== null) ids.add(vid(item.id, 'id'));
  }
  return [...ids].sort((a, b) => a - b);
}

function dnsOf(raw: unknown): DNS | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const d = raw as DNS;
  const set = d.nameservers != null || d.search != null || d.options != null || (typeof d.domain === 'string' && d.domain !== '');
  return set ? { ...d } : undefined;
}

/** Reads and checks the config and CNI_ARGS of an invocation. */
export function loadConf(inv: Invocation): BridgeConf {
  const raw = inv.conf as Record<string, unknown>;
  const bridge = raw.bridge === undefined || raw.bridge === null || raw.bridge === '' ? 'cni0' : raw.bridge;
  if (typeof bridge !== 'string') throw invalid('"bridge" must be a string');
  if (!isKernelLinkName(bridge)) {
    throw invalid(`invalid bridge name "${bridge}"`, 'a link name has 1 to 15 bytes, without "/", ":" or whitespace, and is not "." or ".."');
  }

  const mtu = int(raw, 'mtu');
  if (mtu !== 0 && (mtu < 68 || mtu > 65535)) throw invalid(`invalid MTU ${mtu}`, 'an MTU is between 68 and 65535');
  const vlan = int(raw, 'vlan');
  if (vlan < 0 || vlan > 4094) throw invalid(`invalid VLAN ID ${vlan} (must be between 0 and 4094)`);
  const vlanTrunk = trunk(raw.vlanTrunk);
  if (vlan > 0 && vlanTrunk.length > 0) throw invalid('cannot set vlan and vlanTrunk at the same time');

  const backend = raw.ipMasqBackend;
  if (backend !== undefined && backend !== null && backend !== 'iptables' && backend !== 'nftables') {
    throw invalid(`unknown ipMasqBackend ${JSON.stringify(backend)}`, 'use "iptables" or "nftables"');
  }

  checkKnownArgs(inv.args, ['MAC']);
  // Later sources win, as in the reference: CNI_ARGS, then args.cni, then runtimeConfig.
  let mac: string | undefined;
  let macFrom = '';
  const envMac = inv.args.get('MAC');
  if (envMac) [mac, macFrom] = [envMac, 'CNI_ARGS MAC'];
  const argsMac = (raw.args as { cni?: { mac?: unknown } } | null | undefined)?.cni?.mac;
  if (typeof argsMac === 'string' && argsMac !== '') [mac, macFrom] = [argsMac, 'args.cni.mac'];
  const rtMac = (raw.runtimeConfig as { mac?: unknown } | null | undefined)?.mac;
  if (typeof rtMac === 'string' && rtMac !== '') [mac, macFrom] = [rtMac, 'runtimeConfig.mac'];
  let macNorm: string | undefined;
  if (mac !== undefined) {
    macNorm = parseMac(mac);
    if (!macNorm) {
      const code = macFrom === 'CNI_ARGS MAC' ? ErrCode.InvalidEnvironment : ErrCode.InvalidNetworkConfig;
      throw new CniError(code, `invalid MAC address "${mac}" in ${macFrom}`, 'a unicast Ethernet address such as 0a:58:0a:f4:01:02');
    }
  }

  const conf: BridgeConf = {
    name: inv.conf.name,
    cniVersion: inv.conf.cniVersion,
    bridge,
    isGateway: bool(raw, 'isGateway'),
    isDefaultGateway: bool(raw, 'isDefaultGateway'),
    forceAddress: bool(raw, 'forceAddress'),
    ipMasq: bool(raw, 'ipMasq'),
    ipMasqBackend: (backend ?? undefined) as BridgeConf['ipMasqBackend'],
    mtu,
    hairpinMode: bool(raw, 'hairpinMode'),
    promiscMode: bool(raw, 'promiscMode'),
    vlan,
    vlanTrunk,
    vlanFiltering: vlan > 0 || vlanTrunk.length > 0,
    preserveDefaultVlan: bool(raw, 'preserveDefaultVlan', true),
    macspoofchk: bool(raw, 'macspoofchk'),
    enabledad: bool(raw, 'enabledad'),
    disableContainerInterface: bool(raw, 'disableContainerInterface'),
    portIsolation: bool(raw, 'portIsolation'),
    mac: macNorm,
    ipamType: ipamType(raw),
    dns: dnsOf(raw.dns),
    prevResult: raw.prevResult,
  };
  if (conf.isDefaultGateway) conf.isGateway = true;
  if (conf.vlan > 0 && conf.isGateway && Buffer.byteLength(`${bridge}.${vlan}`) > MAX_IFNAME) {
    throw invalid(`the VLAN gateway interface "${bridge}.${vlan}" would be longer than 15 bytes`, 'use a shorter bridge name');
  }
  return conf;
}

/**
 * DEL's reading of the config: nothing it does not need is judged (an mtu, a VLAN, a MAC, a
 * bridge name ADD would refuse now, a value edited since the ADD), so DEL still releases
 * the lease and removes what it can. A flag it cannot read counts as set where that means
 * removing more (masquerade rules, the spoof-check chain, found by name). Only an `ipam`
 * that cannot be read is an error: the lease could not be found.
 */
export function loadDelConf(inv: Invocation): BridgeConf {
  const raw = inv.conf as Record<string, unknown>;
  const maybe = (key: string) => raw[key] !== undefined && raw[key] !== null && raw[key] !== false;
  const backend = raw.ipMasqBackend === 'iptables' || raw.ipMasqBackend === 'nftables' ? raw.ipMasqBackend : undefined;
  return {
    name: inv.conf.name,
    cniVersion: typeof inv.conf.cniVersion === 'string' ? inv.conf.cniVersion : '',
    bridge: typeof raw.bridge === 'string' && raw.bridge !== '' ? raw.bridge : 'cni0',
    isGateway: false,
    isDefaultGateway: false,
    forceAddress: false,
    ipMasq: maybe('ipMasq'),
    ipMasqBackend: backend,
    mtu: 0,
    hairpinMode: false,
    promiscMode: false,
    vlan: 0,
    vlanTrunk: [],
    vlanFiltering: false,
    preserveDefaultVlan: true,
    macspoofchk: maybe('macspoofchk'),
    enabledad: false,
    disableContainerInterface: false,
    portIsolation: false,
    ipamType: ipamType(raw),
    prevResult: raw.prevResult,
  };
}

/** Checks that only ADD needs (the reference's rules for combinations). */
export function checkAddConf(conf: BridgeConf): void {
  // CNI_IFNAME passed libcni's rules already (src/cni/env.ts readCallEnv).
  if (conf.hairpinMode && conf.promiscMode) throw invalid('cannot set hairpin mode and promiscuous mode at the same time');
  if (conf.disableContainerInterface && conf.ipamType) throw invalid('cannot use IPAM when disableContainerInterface is set');
}
