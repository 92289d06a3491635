// The delegate config of each container, kept from ADD for DEL and CHECK: by then the
// subnet file may be gone or changed, and the delegate must undo exactly what it did.
// Same layout as flannel's plugin, so either can clean up after the other:
// <dataDir>/<containerID>, mode 0600, in a directory of mode 0700.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrCode } from '../../cni/errors.ts';

function storedPath(dataDir: string, containerId: string): string {
  return join(dataDir, containerId);
}

/** Writes the file whole or not at all (a crash mid-write must not leave half a config). */
export function saveDelegateConf(dataDir: string, containerId: string, bytes: string): void {
  const file = storedPath(dataDir, containerId);
  // A leading dot: no container ID can start with one, so no temp name is ever an ID.
  const tmp = join(dataDir, `.${containerId}.tmp-${process.pid}`);
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, bytes, { mode: 0o600, flush: true });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new CniError(ErrCode.IOFailure, `failed to save the delegate config in ${dataDir}: ${(err as Error).message}`);
  }
}

/** The stored bytes, or undefined when this container has none. */
export function loadDelegateConf(dataDir: string, containerId: string): Buffer | undefined {
  try {
    return readFileSync(storedPath(dataDir, containerId));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CniError(ErrCode.IOFailure, `failed to read the delegate config of ${containerId}: ${(err as Error).message}`);
  }
}

export function removeDelegateConf(dataDir: string, containerId: string): void {
  rmSync(storedPath(dataDir, containerId), { force: true });
}
