// A store held in memory, as one endless operation: the allocator's behaviour without a
// disk (unit tests).
import { formatIP, parseIP, type IP } from '../net/ip.ts';
import { formatLease, ownership, parseLease } from './lease-file.ts';
import type { LeaseTxn } from './lease-store.ts';

export class MemoryStore implements LeaseTxn {
  /** Address text → lease content, as a disk store would hold it. */
  readonly leases = new Map<string, string>();
  readonly lastReserved = new Map<string, string>();

  reserve(id: string, ifname: string, ip: IP, rangeId: string): boolean {
    const key = formatIP(ip);
    if (this.leases.has(key)) return false;
    this.leases.set(key, formatLease(id, ifname));
    this.lastReserved.set(rangeId, key);
    return true;
  }

  lastReservedIP(rangeId: string): IP | undefined {
    const text = this.lastReserved.get(rangeId);
    return text === undefined ? undefined : parseIP(text);
  }

  releaseByID(id: string, ifname: string): IP[] {
    const held = this.matching(id, ifname);
    const chosen = held.exact.length > 0 ? held.exact : held.legacy;
    for (const key of chosen) this.leases.delete(key);
    return chosen.map((k) => parseIP(k)!);
  }

  getByID(id: string, ifname: string): IP[] {
    const held = this.matching(id, ifname);
    return [...held.exact, ...held.legacy].map((k) => parseIP(k)!);
  }

  private matching(id: string, ifname: string): { exact: string[]; legacy: string[] } {
    const out = { exact: [] as string[], legacy: [] as string[] };
    for (const [key, content] of this.leases) {
      const how = ownership(parseLease(content), id, ifname);
      if (how) out[how].push(key);
    }
    return out;
  }
}
