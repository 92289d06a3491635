// Name rules shared with libcni (pkg/utils): container IDs, network names, interface names.
import { CniError, ErrCode } from './errors.ts';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const MAX_IFNAME = 15; // IFNAMSIZ - 1

/** The kernel's rules for a link name, as libcni states them: IFNAMSIZ, no '/', ':' or
 *  whitespace, not '.' or '..'. */
export function isKernelLinkName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && Buffer.byteLength(name) <= MAX_IFNAME && !/[/:\s]/u.test(name);
}

export function validateContainerId(id: string): void {
  if (id === '') throw new CniError(ErrCode.UnknownContainer, 'missing containerID');
  if (!NAME.test(id)) throw new CniError(ErrCode.InvalidEnvironment, 'invalid characters in containerID', id);
}

export function validateNetworkName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new CniError(ErrCode.InvalidNetworkConfig, 'missing network name');
  if (!NAME.test(name)) throw new CniError(ErrCode.InvalidNetworkConfig, 'invalid characters found in network name', name);
  return name;
}

export function validateIfName(name: string): void {
  if (name.length === 0) throw new CniError(ErrCode.InvalidEnvironment, 'interface name is empty');
  if (Buffer.byteLength(name) > MAX_IFNAME) {
    throw new CniError(ErrCode.InvalidEnvironment, 'interface name is too long', `interface name should be less than ${MAX_IFNAME + 1} characters`);
  }
  if (name === '.' || name === '..') throw new CniError(ErrCode.InvalidEnvironment, 'interface name is . or ..');
  if (/[/:\s]/u.test(name)) throw new CniError(ErrCode.InvalidEnvironment, 'interface name contains / or : or whitespace characters');
}
