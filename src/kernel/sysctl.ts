// Sysctls of the namespace this process runs in (the node's): plain reads and writes of
// /proc/sys, no process spawned. A pod's sysctls are written from inside its namespace
// (NetnsHandle.run), because /proc/sys/net follows the namespace of whoever opens it.
import { readFileSync, writeFileSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';

const path = (key: string) => `/proc/sys/${key}`;

export function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(path(key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Writes `value` unless it is already there; throws code 5 when the write fails. */
export function ensureSysctl(key: string, value: string): void {
  if (readSysctl(key) === value) return;
  try {
    writeFileSync(path(key), value);
  } catch (err) {
    throw new CniError(ErrCode.IOFailure, `failed to set ${key.replaceAll('/', '.')}=${value}: ${(err as Error).message}`);
  }
}

/** Best effort, as the reference does for per-interface knobs such as accept_ra. */
export function trySysctl(key: string, value: string): boolean {
  try {
    writeFileSync(path(key), value);
    return true;
  } catch {
    return false;
  }
}
