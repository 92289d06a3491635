// host-local's lease files, where the blog found which container holds an address:
// <dataDir>/<network>/<ip> containing "<containerID>\r\n<ifname>" (older: the ID alone).
import { parseLease } from '../ipam/lease-file.ts';
import { parseIP } from '../net/ip.ts';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface Lease {
  network: string;
  ip: string;
  file: string;
  containerId: string;
  /** Absent in leases written by host-local before it recorded the interface. */
  ifname?: string;
}

/** The names in `dir`, sorted; none when it cannot be read (the explainer looks, it does not insist). */
export function sortedNames(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Every lease under `dataDir`, all networks. */
export function readLeases(dataDir: string): Lease[] {
  const out: Lease[] = [];
  for (const network of sortedNames(dataDir)) {
    for (const name of sortedNames(path.join(dataDir, network))) {
      if (parseIP(name) === undefined) continue; // lock, last_reserved_ip.N
      const file = path.join(dataDir, network, name);
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      // host-local's own reading: an empty or garbled file (a crash can leave one) is no lease.
      const owner = parseLease(text);
      if (!owner) continue;
      const lease: Lease = { network, ip: name, file, containerId: owner.id };
      if (owner.ifname !== undefined) lease.ifname = owner.ifname;
      out.push(lease);
    }
  }
  return out;
}

/** Leases of an address (one per network holding it). */
export function leasesOfIp(leases: Lease[], ip: string): Lease[] {
  return leases.filter((l) => l.ip === ip);
}

/** Leases of a container, by full ID or by a prefix shared by one container only (as docker accepts). */
export function leasesOfContainer(leases: Lease[], id: string): Lease[] {
  const exact = leases.filter((l) => l.containerId === id);
  if (exact.length > 0) return exact;
  const byPrefix = leases.filter((l) => l.containerId.startsWith(id));
  const ids = new Set(byPrefix.map((l) => l.containerId));
  return ids.size === 1 ? byPrefix : [];
}
