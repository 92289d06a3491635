// An exclusive flock(2) on the store's `lock` file, the lock the reference takes, so that
// both plugins exclude each other. Node has no flock: we open the file, and util-linux's
// flock(1) locks our open file description through an inherited fd and exits; the lock
// stays with our descriptor until we close it or die (the kernel then drops it, so a
// killed plugin never leaves a stale lock).
import { closeSync, constants, openSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';

const FLOCK = '/usr/bin/flock';

export class FileLock {
  readonly path: string;
  private fd: number | undefined;

  constructor(path: string) {
    this.path = path;
  }

  get held(): boolean {
    return this.fd !== undefined;
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
    // Loaded here, not at start: child_process costs ~2 ms to load and read-only
    // paths never lock.
    const { spawn } = process.getBuiltinModule('node:child_process');
    try {
      await new Promise<void>((resolve, reject) => {
        const child = spawn(FLOCK, ['-x', '3'], { stdio: ['ignore', 'ignore', 'inherit', fd], env: {} });
        child.on('error', (err) => reject(new CniError(ErrCode.IOFailure, `failed to run ${FLOCK}: ${err.message}`)));
        child.on('exit', (code, signal) => {
          if (code === 0) resolve();
          else reject(new CniError(ErrCode.IOFailure, `failed to lock ${this.path}: flock ${signal ?? `exit ${code}`}`));
        });
      });
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
