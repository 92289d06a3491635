// Name rules shared with libcni (pkg/utils): container IDs, network names, interface names.
// Checked character by character: each runs once or twice per call (a process), where a
// regular expression costs its compilation (and a second one when V8 tiers it up), 15-90 µs each.
import { CniError, ErrCode } from './errors.ts';

export const MAX_IFNAME = 15; // IFNAMSIZ - 1

const isAlnum = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/** libcni's names (container IDs, networks): [a-zA-Z0-9][a-zA-Z0-9_.-]*. */
function isName(s: string): boolean {
  if (s.length === 0 || !isAlnum(s.charCodeAt(0))) return false;
  for (let i = 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isAlnum(c) && c !== 95 && c !== 46 && c !== 45) return false; // _ . -
  }
  return true;
}

/** Go's unicode.IsSpace. */
function isSpace(c: number): boolean {
  if (c <= 0xff) return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0x85 || c === 0xa0;
  return c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

/** A '/', ':' or white space in `name` (libcni refuses them in interface names). */
function hasSlashColonOrSpace(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 47 || c === 58 || isSpace(c)) return true;
  }
  return false;
}

/** What breaks the kernel's rules for a link name, in libcni's words (message, details):
 *  IFNAMSIZ, no '/', ':' or whitespace, not '.' or '..'; undefined when none does. */
function ifNameProblem(name: string): [string, string?] | undefined {
  if (name.length === 0) return ['interface name is empty'];
  if (Buffer.byteLength(name) > MAX_IFNAME) return ['interface name is too long', `interface name should be less than ${MAX_IFNAME + 1} characters`];
  if (name === '.' || name === '..') return ['interface name is . or ..'];
  if (hasSlashColonOrSpace(name)) return ['interface name contains / or : or whitespace characters'];
  return undefined;
}

/** A name the kernel takes for a link (libcni's interface name rules). */
export const isKernelLinkName = (name: string): boolean => ifNameProblem(name) === undefined;

export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(ErrCode.UnknownContainer, 'missing containerID');
  if (!isName(id)) throw new CniError(ErrCode.InvalidEnvironment, 'invalid characters in containerID', id);
}

export function validateNetworkName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new CniError(ErrCode.InvalidNetworkConfig, 'missing network name');
  if (!isName(name)) throw new CniError(ErrCode.InvalidNetworkConfig, 'invalid characters found in network name', name);
  return name;
}

export function validateIfName(name: string): void {
  const problem = ifNameProblem(name);
  if (problem) throw new CniError(ErrCode.InvalidEnvironment, ...problem);
}
