// CNI_ARGS: "K1=V1;K2=V2". Unknown keys are an error unless IgnoreUnknown is set, as in libcni.
import { CniError, ErrCode } from './errors.ts';

export type CniArgs = Map<string, string>;

export function parseCniArgs(raw: string): CniArgs {
  const out: CniArgs = new Map();
  if (!raw) return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CniError(ErrCode.InvalidEnvironment, `ARGS: invalid pair "${pair}"`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}

/** Rejects keys outside `known` unless the runtime said IgnoreUnknown=1/true. */
export function checkKnownArgs(args: CniArgs, known: readonly string[]): void {
  const ignore = (args.get('IgnoreUnknown') ?? '').toLowerCase();
  if (ignore === '1' || ignore === 'true') return;
  for (const key of args.keys()) {
    if (key !== 'IgnoreUnknown' && !known.includes(key)) {
      throw new CniError(ErrCode.InvalidEnvironment, `ARGS: unknown args ["${key}"]`);
    }
  }
}
