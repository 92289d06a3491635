// One error type for the whole project: it carries its CNI code from where it is
// raised to the one place (skel) that prints it, so no code is lost on the way.

/** The spec's well-known error codes (CNI 1.1.0, "Error" section). */
export const ErrCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;

export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, msg: string, details = '', options?: { cause?: unknown }) {
    super(msg, options);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }

  /** The error JSON of the spec; `details` is omitted when empty, as libcni does. */
  toJSON(cniVersion: string): Record<string, unknown> {
    const out: Record<string, unknown> = { cniVersion, code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Any thrown value as a CniError; unknown failures keep their message under code 999. */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e === 'object' && typeof e.code === 'string' && typeof e.syscall === 'string') {
    return new CniError(ErrCode.IOFailure, e.message, '', { cause: err });
  }
  return new CniError(ErrCode.Internal, err instanceof Error ? err.message : String(err), '', { cause: err });
}
