// An exclusive flock(2) on a store's `lock` file, the lock the reference takes, so that
// both plugins exclude each other. The lock belongs to our open file description: it
// stays until we close the file or die (the kernel then drops it, so a killed plugin
// never leaves a stale lock). flock(2) comes from our addon: tried without blocking first,
// and waited for on a thread of the addon's own only when someone holds it.
import { closeSync, constants, openSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';
import { addon, errnoName } from './addon.ts';

export class FileLock {
  readonly path: string;
  private fd: number | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** Waits for the lock as long as another holder keeps it, like the reference. */
  async acquire(): Promise<void> {
    if (this.fd !== undefined) throw new CniError(ErrCode.Internal, `lock ${this.path} is already held`);
    const n = addon();
    let fd: number;
    try {
      // Created as the reference's go-filemutex creates it.
      fd = openSync(this.path, constants.O_CREAT | constants.O_RDONLY, 0o750);
    } catch (err) {
      throw new CniError(ErrCode.IOFailure, `failed to open lock ${this.path}: ${(err as Error).message}`);
    }
    try {
      let errno = n.flock(fd, n.LOCK_EX | n.LOCK_NB);
      if (errno === n.EWOULDBLOCK) errno = await n.flockWait(fd, n.LOCK_EX);
      if (errno !== 0) throw new CniError(ErrCode.IOFailure, `failed to lock ${this.path}: ${errnoName(errno)}`);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.fd = fd;
  }

  release(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd);
  }
}
