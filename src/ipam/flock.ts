// An exclusive flock(2) on the store's `lock` file, the lock the reference takes, so that
// both plugins exclude each other. The lock belongs to our open file description: it
// stays until we close the file or die (the kernel then drops it, so a killed plugin
// never leaves a stale lock). flock(2) comes from our addon (kernel/native.ts): tried
// without blocking first, and waited for on a worker thread only when someone holds it.
// Without the addon, util-linux's flock(1) locks our description through an inherited fd
// (a process start, 3-4 ms).
import { closeSync, constants, openSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';
import { errnoName, native, type Native } from '../kernel/native.ts';

const FLOCK = '/usr/bin/flock';

export class FileLock {
  readonly path: string;
  private fd: number | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** Waits for the lock as long as another holder keeps it, like the reference. */
  async acquire(): Promise<void> {
    if (this.fd !== undefined) throw new CniError(ErrCode.Internal, `lock ${this.path} is already held`);
    let fd: number;
    try {
      // Created as the reference's go-filemutex creates it.
      fd = openSync(this.path, constants.O_CREAT | constants.O_RDONLY, 0o750);
    } catch (err) {
      throw new CniError(ErrCode.IOFailure, `failed to open lock ${this.path}: ${(err as Error).message}`);
    }
    try {
      const n = native();
      await (n ? this.lockNative(n, fd) : this.lockWithTool(fd));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.fd = fd;
  }

  private async lockNative(n: Native, fd: number): Promise<void> {
    let errno = n.flock(fd, n.LOCK_EX | n.LOCK_NB);
    if (errno === n.EWOULDBLOCK) errno = await n.flockWait(fd, n.LOCK_EX);
    if (errno !== 0) throw new CniError(ErrCode.IOFailure, `failed to lock ${this.path}: ${errnoName(errno)}`);
  }

  private lockWithTool(fd: number): Promise<void> {
    // Loaded here, not at start: child_process costs ~2 ms to load and read-only
    // paths never lock.
    const { spawn } = process.getBuiltinModule('node:child_process');
    return new Promise<void>((resolve, reject) => {
      const child = spawn(FLOCK, ['-x', '3'], { stdio: ['ignore', 'ignore', 'inherit', fd], env: {} });
      child.on('error', (err) => reject(new CniError(ErrCode.IOFailure, `failed to run ${FLOCK}: ${err.message}`)));
      child.on('exit', (code, signal) => {
        if (code === 0) resolve();
        else reject(new CniError(ErrCode.IOFailure, `failed to lock ${this.path}: flock ${signal ?? `exit ${code}`}`));
      });
    });
  }

  release(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd);
  }
}
