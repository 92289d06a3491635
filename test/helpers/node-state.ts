// What a plugin left behind on a test node: leases in host-local's store, veths in the
// node namespace, interfaces in a pod. Read straight from the disk and the kernel.
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { expect } from 'vitest';
import { parseIpJson, type IpLink } from './ip-json.ts';
import type { Netns } from './netns.ts';

/** Every lease file of network `net`: address → content. */
export function leases(dataDir: string, net: string): Map<string, string> {
  const dir = path.join(dataDir, net);
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    if (f.isFile() && isIP(f.name)) out.set(f.name, readFileSync(path.join(dir, f.name), 'utf8'));
  }
  return out;
}

/** The names in network `net`'s directory that are addresses (leases, or whatever else a test put there), sorted; none without the directory. */
export function leased(dataDir: string, net: string): string[] {
  const dir = path.join(dataDir, net);
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => isIP(n) !== 0)
        .sort()
    : [];
}

/** The addresses leased to `containerId` (either store form: "id\r\nifname" or "id"). */
export function leasesOf(dataDir: string, net: string, containerId: string): string[] {
  return [...leases(dataDir, net)].filter(([, c]) => c.split('\r\n')[0]?.trim() === containerId).map(([ip]) => ip);
}

/**
 * Problems a reader of the store would meet in its (file name, content) `entries`: an empty or
 * partial lease, a bad last_reserved_ip, or a file host-local never writes (such as a temp
 * file left by a dead writer).
 */
export function checkStore(entries: Iterable<[string, string]>): string[] {
  const problems: string[] = [];
  for (const [f, content] of entries) {
    if (f === 'lock') continue;
    if (isIP(f)) {
      if (!/^[^\r\n]+(\r\n[^\r\n]+)?$/.test(content)) problems.push(`lease ${f} is ${JSON.stringify(content)}`);
    } else if (/^last_reserved_ip\.\d+$/.test(f)) {
      if (!isIP(content)) problems.push(`${f} is ${JSON.stringify(content)}`);
    } else {
      problems.push(`stray file ${f} (${JSON.stringify(content.slice(0, 40))})`);
    }
  }
  return problems;
}

/** checkStore on network `net`'s directory, read without the lock. */
export function storeProblems(dataDir: string, net: string): string[] {
  const dir = path.join(dataDir, net);
  if (!existsSync(dir)) return [];
  // Files only: a plugin may keep its own directory beside the leases (ours keeps an index).
  const files = readdirSync(dir, { withFileTypes: true }).filter((f) => f.isFile());
  return checkStore(files.map((f): [string, string] => [f.name, readFileSync(path.join(dir, f.name), 'utf8')]));
}

/** `ip -d -j link show` in the namespace at `nsPath` (a runtime's may have no name `ip -n` takes). */
async function links(nsPath: string): Promise<IpLink[]> {
  return parseIpJson<IpLink>((await execa('nsenter', [`--net=${nsPath}`, 'ip', '-d', '-j', 'link', 'show'])).stdout);
}

/** Names of the veths in namespace `ns`. */
export async function veths(ns: Netns | string): Promise<string[]> {
  const p = typeof ns === 'string' ? ns : ns.path;
  return (await links(p)).filter((l) => l.linkinfo?.info_kind === 'veth').map((l) => l.ifname);
}

/** Names of the ports of bridge `br` in namespace `ns`. */
export async function bridgePorts(ns: Netns, br = 'cni0'): Promise<string[]> {
  return (await links(ns.path)).filter((l) => l.master === br).map((l) => l.ifname);
}

/** Interfaces other than lo in a pod namespace (a path, possibly gone: then none). */
export async function podInterfaces(nsPath: string): Promise<string[]> {
  if (!existsSync(nsPath)) return [];
  return (await links(nsPath)).map((l) => l.ifname).filter((n) => n !== 'lo');
}

/** Link names in the test process's own namespace (the root one), to prove it untouched. */
export async function rootLinkNames(): Promise<string[]> {
  return parseIpJson<IpLink>((await execa('ip', ['-j', 'link', 'show'])).stdout).map((l) => l.ifname);
}

/** Nothing of ours in the root namespace: no bridge, no veth appeared there since `before`. */
export async function expectRootUntouched(before: string[]): Promise<void> {
  expect((await rootLinkNames()).filter((n) => !before.includes(n) && (n === 'cni0' || n.startsWith('veth')))).toEqual([]);
}
