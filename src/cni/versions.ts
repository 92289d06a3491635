// Which CNI spec versions we speak, and how to compare them.
import { CniError, ErrCode } from './errors.ts';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export const CURRENT_VERSION = '1.1.0';

/** -1, 0 or 1 as semver-ish `a` is older, equal or newer than `b`. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

export function isSupported(version: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/** Throws code 1 unless `version` is one we speak. */
export function requireSupported(version: unknown): string {
  if (typeof version !== 'string' || version === '') {
    throw new CniError(ErrCode.IncompatibleVersion, 'incompatible CNI versions: the config has no cniVersion', `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (!isSupported(version)) {
    throw new CniError(ErrCode.IncompatibleVersion, `incompatible CNI versions: config is "${version}"`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return version;
}

/** The versions the reference plugins also take, and DEL from us: no cniVersion at all
 *  reads as 0.1.0 there (libcni's decoder). DEL has no result to shape, so an older config,
 *  or one whose version was dropped, still releases what its ADD made. */
const DEL_ALSO = ['', '0.1.0', '0.2.0'];

/** Throws code 1 unless a DEL may run on a config of `version`. */
export function requireDelVersion(version: unknown): void {
  if (version === undefined || version === null || (typeof version === 'string' && DEL_ALSO.includes(version))) return;
  requireSupported(version);
}

/** The VERSION verb's answer. */
export function versionInfo(): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}
