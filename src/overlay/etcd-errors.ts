// etcd's failures as errors that say what to fix: a certificate the CA file does not vouch
// for, a client certificate etcd refused or wants, a wrong password, a user without rights;
// and which of them another endpoint may answer differently (tried there) and which it
// cannot (fatal at start).
import { StoreError } from './subnet-store.ts';

/**
 * What went wrong: `unreachable` (no answer, or an answer that another member may not give:
 * no leader, timeout) and `tls` are tried on the next endpoint; `auth` (credentials,
 * permissions) is the same everywhere; `server` is any other refusal.
 */
export type EtcdErrorKind = 'unreachable' | 'tls' | 'auth' | 'server';

export class EtcdError extends StoreError {
  override name = 'EtcdError';
  constructor(
    msg: string,
    readonly kind: EtcdErrorKind = 'server',
  ) {
    super(msg, kind === 'tls' || kind === 'auth');
  }
}

/** The gateway's error body. */
export interface ErrorBody {
  error?: string;
  message?: string;
}

/** Node's codes for a server certificate it could not verify. */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** A transport error as an EtcdError that says what to check; `withCert`: whether we offered a client certificate. */
export function transportError(ep: URL, err: Error & { code?: string }, withCert: boolean): EtcdError {
  const code = err.code ?? '';
  const at = `etcd ${ep.origin}`;
  if (UNTRUSTED.has(code)) return new EtcdError(`${at}: its certificate is not trusted (${code}: ${err.message}): check --etcd-cafile`, 'tls');
  if (/wrong version number|packet length too long/i.test(err.message)) {
    return new EtcdError(`${at}: TLS handshake failed (${err.message}): does the endpoint speak https? (http:// vs https://)`, 'tls');
  }
  if (code.startsWith('ERR_SSL_') || /alert|handshake/i.test(err.message)) {
    return new EtcdError(
      `${at}: etcd refused the TLS connection (${code || err.message}): ` +
        (withCert
          ? 'it did not accept our client certificate: check --etcd-certfile/--etcd-keyfile (signed by a CA etcd trusts?)'
          : 'it wants a client certificate: pass --etcd-certfile and --etcd-keyfile'),
      'tls',
    );
  }
  // A TLS server hangs up on plain http without a word (etcd's listener does).
  const hint = ep.protocol === 'http:' && err.message === 'socket hang up' ? ' (if etcd serves https there, use https://)' : '';
  return new EtcdError(`${at}: ${err.message}${hint}`, 'unreachable');
}

/** An error body from the gateway as an EtcdError of the right kind. */
export function serverError(origin: string, path: string, status: number, body: ErrorBody): EtcdError {
  const msg = body.message ?? body.error ?? `HTTP ${status}`;
  const at = `etcd ${origin} ${path}: ${msg}`;
  if (/authentication failed|invalid user ID or password/.test(msg)) return new EtcdError(`${at} (check --etcd-username and --etcd-password)`, 'auth');
  if (/user name is empty|authentication is not enabled|user name not found/.test(msg)) return new EtcdError(`${at} (check --etcd-username)`, 'auth');
  if (/permission denied/.test(msg)) return new EtcdError(`${at} (the user's roles must grant readwrite on the prefix)`, 'auth');
  // What another member may answer differently: fail over.
  if (/no leader|timed out|leader changed|too many requests|not capable|unhealthy|stopped/.test(msg)) return new EtcdError(at, 'unreachable');
  return new EtcdError(at, 'server');
}

/** A refusal the gateway wrote as plain text, not JSON. */
export function plainTextError(origin: string, path: string, status: number, raw: string): EtcdError {
  const at = `etcd ${origin} ${path}: HTTP ${status}: ${raw.slice(0, 160)}`;
  if (/HTTPS server/i.test(raw)) return new EtcdError(`${at}: the endpoint speaks https, use https://`, 'tls');
  // etcd 3.4+ with auth and --client-cert-auth: the gateway cannot pass a certificate's CN on as the user.
  if (/CommonName of client/i.test(raw)) {
    return new EtcdError(
      `${at}: with auth on, etcd's JSON gateway takes only client certificates without a CommonName: use one, with --etcd-username/--etcd-password`,
      'auth',
    );
  }
  return new EtcdError(at, 'server');
}

export const INVALID_TOKEN = /invalid auth token|auth token is expired/;
