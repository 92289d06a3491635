// libcni's result cache: after each ADD a runtime built on libcni (containerd, cri-o,
// podman's CNI backend, cnitool) keeps <cacheDir>/results/<network>-<containerID>-<ifname>,
// a JSON document whose `result` names the pod's namespace as the interface's `sandbox`.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sortedNames } from './leases.ts';

export const DEFAULT_CACHE_DIR = '/var/lib/cni';

export interface CachedAttachment {
  file: string;
  containerId: string;
  ifname: string;
  network: string;
  /** The pod's namespace path, from the result's interface of `ifname`. */
  sandbox?: string;
  /** Addresses of the result (CIDR form). */
  addresses: string[];
  gateways: string[];
}

interface CacheDoc {
  kind?: string;
  containerId?: string;
  ifName?: string;
  networkName?: string;
  result?: {
    interfaces?: Array<{ name?: string; sandbox?: string }>;
    ips?: Array<{ address?: string; gateway?: string; interface?: number }>;
  };
}

function parse(file: string): CachedAttachment | undefined {
  let doc: CacheDoc;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as CacheDoc;
  } catch {
    return undefined;
  }
  if (doc.kind !== 'cniCacheV1' || !doc.containerId || !doc.ifName) return undefined;
  const ifaces = doc.result?.interfaces ?? [];
  const sandbox = ifaces.find((i) => i.name === doc.ifName && i.sandbox)?.sandbox ?? ifaces.find((i) => i.sandbox)?.sandbox;
  const ips = doc.result?.ips ?? [];
  const out: CachedAttachment = {
    file,
    containerId: doc.containerId,
    ifname: doc.ifName,
    network: doc.networkName ?? '',
    addresses: ips.flatMap((i) => (i.address ? [i.address] : [])),
    gateways: ips.flatMap((i) => (i.gateway ? [i.gateway] : [])),
  };
  if (sandbox) out.sandbox = sandbox;
  return out;
}

/** Cached attachments matching a container (and interface, when known), or holding `ip`. */
export function findCached(cacheDir: string, match: { containerId?: string; ifname?: string; ip?: string }): CachedAttachment[] {
  const dir = path.join(cacheDir, 'results');
  const out: CachedAttachment[] = [];
  for (const name of sortedNames(dir)) {
    // The file name alone rules most files out without reading them.
    if (match.containerId && !name.includes(`-${match.containerId}-`)) continue;
    if (match.ifname && !name.endsWith(`-${match.ifname}`)) continue;
    const a = parse(path.join(dir, name));
    if (!a) continue;
    if (match.containerId && a.containerId !== match.containerId) continue;
    if (match.ifname && a.ifname !== match.ifname) continue;
    if (match.ip && !a.addresses.some((c) => c.split('/')[0] === match.ip)) continue;
    out.push(a);
  }
  return out;
}
