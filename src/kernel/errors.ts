// A request the kernel refused: its errno (callers compare it, as the reference's Go code
// compares syscall.Errno), what the request was for, and the kernel's own explanation when
// it gave one (netlink's extended ack). A CniError (code 999) so that, uncaught, it reaches
// the runtime with its words.
import { CniError, ErrCode } from '../cni/errors.ts';
import { errnoName, strerror } from '../sys/addon.ts';
import type { Op } from './ops.ts';

/** The errnos callers tell apart (Linux's numbers, the same on every architecture we run on). */
export const Errno = {
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ERANGE: 34,
  EOPNOTSUPP: 95,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  EHOSTUNREACH: 113,
} as const;

export class KernelError extends CniError {
  // Plain fields, no parameter properties: src/cli runs under Node's type stripping.
  readonly errno: number;
  /** "EEXIST", "ENODEV"... */
  readonly errnoName: string;
  /** What was asked, in words ("create veth pair veth1234/eth0", "list links"). */
  readonly what: string;
  /** The change asked for, when it was one. */
  readonly op: Op | undefined;
  /** The kernel's explanation (extended ack), when it gave one. */
  readonly kernelMessage: string | undefined;

  constructor(errno: number, what: string, op?: Op, kernelMessage?: string) {
    super(ErrCode.Internal, `failed to ${what}: ${strerror(errno)}${kernelMessage ? ` (${kernelMessage})` : ''}`);
    this.name = 'KernelError';
    this.errno = errno;
    this.errnoName = errnoName(errno);
    this.what = what;
    this.op = op;
    this.kernelMessage = kernelMessage;
  }
}

/** Whether `err` is the kernel's refusal with `errno`. */
export function isErrno(err: unknown, errno: number): err is KernelError {
  return err instanceof KernelError && err.errno === errno;
}
