// util-linux flock(1) holding a lock file until the test lets go: resolves only once the
// lock is really held (flock -n fails), so no test guesses how long flock(1) takes to start.
import { execa } from 'execa';

export interface HeldLock {
  /** Lets go of the lock and waits for flock(1) to exit. */
  release(): Promise<void>;
}

export async function holdLock(file: string, timeoutMs = 5000): Promise<HeldLock> {
  // `cat` waits on its stdin: the lock is held until we close it.
  const holder = execa('flock', [file, 'cat'], { stdin: 'pipe', stdout: 'ignore', reject: false });
  const release = async () => {
    holder.stdin?.end();
    await holder;
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const probe = await execa('flock', ['-n', file, 'true'], { reject: false });
    if (probe.exitCode === 1) return { release };
    if (probe.exitCode !== 0 || holder.exitCode !== null || Date.now() > deadline) {
      await release();
      throw new Error(`flock(1) did not come to hold ${file} (probe exit ${probe.exitCode}, holder ${holder.exitCode})`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
