// Network namespaces by path: checking that CNI_NETNS is one, and the command prefix that
// runs a program inside it through nsenter, for when our addon (which lets Node enter the
// namespace itself: enter-netns.ts) is missing.
import { statfsSync } from 'node:fs';
import { CniError, ErrCode } from '../cni/errors.ts';

const NSFS_MAGIC = 0x6e736673;
/** Older kernels report /proc/<pid>/ns/* as procfs. */
const PROC_SUPER_MAGIC = 0x9fa0;

export const NSENTER = '/usr/bin/nsenter';

export type NetnsState = 'netns' | 'missing' | 'other';

/** What `path` is: a namespace file, nothing, or something else (a plain file, a directory). */
export function netnsState(path: string): NetnsState {
  try {
    const t = Number(statfsSync(path).type);
    return t === NSFS_MAGIC || t === PROC_SUPER_MAGIC ? 'netns' : 'other';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
    throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${path}": ${(err as Error).message}`);
  }
}

/** Throws code 4 unless `path` is a namespace file (ADD and CHECK need one). */
export function requireNetns(path: string): void {
  if (!path.startsWith('/')) {
    throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${path}": not an absolute path`);
  }
  const state = netnsState(path);
  if (state === 'missing') throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${path}": it does not exist`);
  if (state === 'other') throw new CniError(ErrCode.InvalidEnvironment, `failed to open netns "${path}": not a network namespace`);
}

/** argv prefix running a command inside the namespace at `path`. */
export function inNetns(path: string): string[] {
  return [NSENTER, `--net=${path}`];
}

/** nsenter's complaint when the path is a namespace of another kind (mnt, pid...). */
export function isWrongNsType(stderr: string): boolean {
  return /reassociate to namespace .* failed|setns.*Invalid argument/.test(stderr);
}
