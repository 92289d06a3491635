// A small etcd v3 client over the server's JSON gateway (base64 keys and values, int64 as
// strings) with node:http and node:https only: no gRPC stack and no npm dependency. It
// covers what the agent needs (range, compare-and-put, delete, leases, watch) and what real
// deployments run: https with a CA and client certificates, users (the gateway's
// /v3/auth/authenticate token), and several endpoints with failover.
// Failures are EtcdErrors that say what to fix (etcd-errors.ts).
import http from 'node:http';
import https from 'node:https';
import { EtcdError, INVALID_TOKEN, plainTextError, serverError, transportError, type ErrorBody } from './etcd-errors.ts';
import { ListAgain } from './subnet-store.ts';

export interface KeyValue {
  key: string;
  value: string;
  modRevision: string;
  /** The revision that created the key. */
  createRevision: string;
  /** The lease the key is attached to; absent when none. */
  lease?: string;
}

export interface WatchEvent {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
}

export interface EtcdClientOptions {
  /** Client URLs, http:// or https://. */
  endpoints: readonly string[];
  /** PEM: the CA that signed etcd's certificate (default: Node's bundled roots). */
  ca?: Buffer;
  /** PEM: this client's certificate and key, for etcd's --client-cert-auth. */
  cert?: Buffer;
  key?: Buffer;
  username?: string;
  password?: string;
  /** Per-request timeout; a watch has none (it is cancelled through its signal). */
  timeoutMs?: number;
  /**
   * How often a watch asks its endpoint for a linearizable read (answered only with a leader),
   * so that a member that stopped answering or lost its cluster does not hold a silent watch;
   * 0: never.
   */
  watchCheckMs?: number;
  /** Told when requests move to another endpoint, and why (for the log). */
  onMove?: (from: string, to: string, why: string) => void;
}

/** How long a watch's check may take before the endpoint counts as gone. */
const WATCH_CHECK_TIMEOUT_MS = 3000;

// The gateway's JSON, as far as we read it.
interface RawKv {
  key?: string;
  value?: string;
  mod_revision?: string;
  create_revision?: string;
  lease?: string;
}
interface Header {
  revision?: string;
}
interface RangeResponse {
  header?: Header;
  kvs?: RawKv[];
}
interface TxnResponse {
  header?: Header;
  succeeded?: boolean;
}
interface GrantResponse {
  ID?: string;
  error?: string;
}
interface KeepAliveResponse {
  result?: { TTL?: string };
}
interface AuthResponse {
  token?: string;
}
interface WatchMessage {
  result?: {
    canceled?: boolean;
    compact_revision?: string;
    cancel_reason?: string;
    events?: Array<{ type?: string; kv?: RawKv }>;
  };
  error?: { message?: string };
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const text = (s: unknown) => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');

/**
 * etcd's range_end for "every key starting with prefix": the prefix with its last byte + 1
 * (UTF-8 never has a 0xff byte, so there is no carry); "\0" (all keys) for an empty prefix.
 */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  if (b.length === 0) return Buffer.from([0]);
  b[b.length - 1]! += 1;
  return b;
}

function toKv(raw: RawKv | undefined): KeyValue {
  const kv: KeyValue = {
    key: text(raw?.key),
    value: text(raw?.value),
    modRevision: String(raw?.mod_revision ?? '0'),
    createRevision: String(raw?.create_revision ?? '0'),
  };
  if (raw?.lease && raw.lease !== '0') kv.lease = String(raw.lease);
  return kv;
}

interface Watching {
  endpoint: number;
  end: (err: Error) => void;
}

export class EtcdClient {
  private readonly endpoints: URL[];
  private current = 0;
  private readonly agents = new Map<string, http.Agent>();
  private readonly timeoutMs: number;
  private readonly watchCheckMs: number;
  private token?: Promise<string>;
  private readonly watches = new Set<Watching>();

  constructor(private readonly opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new EtcdError('no etcd endpoints');
    this.endpoints = opts.endpoints.map((e) => {
      let u: URL;
      try {
        u = new URL(e);
      } catch {
        throw new EtcdError(`etcd endpoint ${e} is not a URL`);
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new EtcdError(`etcd endpoint ${e}: only http:// and https:// are supported`);
      return u;
    });
    if ((opts.username === undefined) !== (opts.password === undefined)) throw new EtcdError('etcd: give both a username and a password, or neither');
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.watchCheckMs = opts.watchCheckMs ?? 5000;
  }

  /** The endpoint requests go to now. */
  get endpoint(): string {
    return this.endpoints[this.current]!.origin;
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const r = (await this.call('kv/range', { key: b64(key) })) as RangeResponse;
    return r.kvs?.length ? toKv(r.kvs[0]) : undefined;
  }

  /** Every key under `prefix`, and the store revision the listing is consistent with. */
  async list(prefix: string): Promise<{ kvs: KeyValue[]; revision: string }> {
    const r = (await this.call('kv/range', { key: b64(prefix), range_end: b64(prefixEnd(prefix)) })) as RangeResponse;
    return { kvs: (r.kvs ?? []).map(toKv), revision: String(r.header?.revision ?? '0') };
  }

  /**
   * Puts only if `key` does not exist (`modRevision` undefined) or is still at `modRevision`;
   * the key's new mod revision, or undefined when the comparison failed.
   */
  async putIf(key: string, value: string, lease: string | undefined, modRevision?: string): Promise<string | undefined> {
    const compare =
      modRevision === undefined
        ? { key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }
        : { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: modRevision };
    const put = { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) };
    const r = (await this.call('kv/txn', { compare: [compare], success: [{ request_put: put }] })) as TxnResponse;
    return r.succeeded === true ? String(r.header?.revision) : undefined;
  }

  async delete(key: string): Promise<void> {
    await this.call('kv/deleterange', { key: b64(key) });
  }

  /** A new lease of `ttl` seconds; its ID. */
  async grant(ttl: number): Promise<string> {
    const r = (await this.call('lease/grant', { TTL: ttl })) as GrantResponse;
    if (!r.ID) throw new EtcdError(`lease grant failed: ${r.error ?? 'no ID'}`);
    return String(r.ID);
  }

  /** Renews a lease once; its remaining TTL, 0 when it no longer exists. */
  async keepAlive(id: string): Promise<number> {
    const r = (await this.call('lease/keepalive', { ID: id })) as KeepAliveResponse;
    return Number(r.result?.TTL ?? 0);
  }

  async revoke(id: string): Promise<void> {
    await this.call('lease/revoke', { ID: id });
  }

  /**
   * Watches every key under `prefix` from `fromRevision` on, calling `onEvents` with each
   * batch the server sends, in order (awaited, so batches never overlap). Resolves when
   * `signal` aborts; rejects when the stream fails or ends (etcd went away), or when the
   * client moved to another endpoint (so that the caller lists again there).
   */
  async watch(prefix: string, fromRevision: string, signal: AbortSignal, onEvents: (events: WatchEvent[]) => Promise<void>): Promise<void> {
    const endpoint = this.current;
    const ep = this.endpoints[endpoint]!;
    const token = this.opts.username !== undefined ? await this.authenticate(ep) : undefined;
    const body = JSON.stringify({ create_request: { key: b64(prefix), range_end: b64(prefixEnd(prefix)), start_revision: fromRevision } });
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve();
      let done = false;
      let check: NodeJS.Timeout | undefined;
      const self: Watching = { endpoint, end: (err) => finish(err) };
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(check);
        this.watches.delete(self);
        signal.removeEventListener('abort', onAbort);
        req.destroy();
        if (err && !signal.aborted) reject(err);
        else resolve();
      };
      const onAbort = () => finish();
      signal.addEventListener('abort', onAbort);
      this.watches.add(self);
      let chain = Promise.resolve();
      const req = this.request(ep, '/v3/watch', body, token, undefined, (res) => {
        if (res.statusCode !== 200) {
          finish(new EtcdError(`etcd ${ep.origin} watch: HTTP ${res.statusCode}`, 'unreachable'));
          return;
        }
        // A stopped or cut-off member keeps the stream open and silent: ask it now and then.
        const probe = { key: b64(prefix), count_only: true, limit: 1 };
        const schedule = () => {
          check = setTimeout(() => {
            this.post(ep, 'kv/range', JSON.stringify(probe), token, WATCH_CHECK_TIMEOUT_MS).then(schedule, (err: unknown) => {
              if (err instanceof EtcdError && err.kind === 'unreachable') {
                finish(new EtcdError(`etcd ${ep.origin} stopped answering the watch's check: ${err.message}`, 'unreachable'));
                this.unanswered(endpoint, err.message);
              } else schedule();
            });
          }, this.watchCheckMs);
        };
        if (this.watchCheckMs > 0) schedule();
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line !== '') this.onWatchLine(ep, line, fromRevision, finish, (events) => (chain = chain.then(() => onEvents(events)).catch(finish)));
          }
        });
        res.on('end', () => finish(new EtcdError(`etcd ${ep.origin} watch: stream ended`, 'unreachable')));
        res.on('error', (err) => finish(transportError(ep, err, this.opts.cert !== undefined)));
      });
      req.on('error', (err) => finish(transportError(ep, err, this.opts.cert !== undefined)));
      req.end(body);
    });
  }

  private onWatchLine(ep: URL, line: string, fromRevision: string, finish: (err: Error) => void, deliver: (events: WatchEvent[]) => void): void {
    let msg: WatchMessage;
    try {
      msg = JSON.parse(line) as WatchMessage;
    } catch {
      finish(new EtcdError(`etcd ${ep.origin} watch: bad message: ${line.slice(0, 120)}`, 'unreachable'));
      return;
    }
    const r = msg.result;
    if (msg.error || !r) {
      const e = serverError(ep.origin, 'watch', 200, { message: msg.error?.message ?? 'stream error' });
      finish(e.kind === 'auth' ? e : new EtcdError(e.message, 'unreachable'));
      return;
    }
    if (r.canceled) {
      if (r.compact_revision) finish(new ListAgain(`etcd watch: revision ${fromRevision} compacted`));
      else finish(serverError(ep.origin, 'watch', 200, { message: r.cancel_reason ?? 'canceled' }));
      return;
    }
    if (Array.isArray(r.events) && r.events.length > 0) {
      deliver(r.events.map((e) => ({ type: e.type === 'DELETE' ? 'DELETE' : 'PUT', kv: toKv(e.kv) })));
    }
  }

  /** POSTs to each endpoint in turn, starting with the one that answered last. */
  private async call(path: string, body: unknown): Promise<unknown> {
    const json = JSON.stringify(body);
    let first: EtcdError | undefined;
    const start = this.current;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (start + i) % this.endpoints.length;
      try {
        const r = await this.callOn(this.endpoints[idx]!, path, json);
        if (idx !== this.current) this.moveTo(idx);
        return r;
      } catch (err) {
        if (!(err instanceof EtcdError) || (err.kind !== 'unreachable' && err.kind !== 'tls')) throw err;
        this.unanswered(idx, err.message);
        // Report what says most: a TLS refusal over "connection refused" elsewhere.
        if (!first || (first.kind === 'unreachable' && err.kind === 'tls')) first = err;
      }
    }
    throw first!;
  }

  /** Endpoint `idx` failed (`why`): when it is the one in use, the next calls start at the next one. */
  private unanswered(idx: number, why: string): void {
    if (idx !== this.current || this.endpoints.length < 2) return;
    const next = (idx + 1) % this.endpoints.length;
    this.opts.onMove?.(this.endpoints[idx]!.origin, this.endpoints[next]!.origin, why);
    this.moveTo(next);
  }

  /** Requests now go to endpoint `idx`: watches elsewhere end, so that they start over there. */
  private moveTo(idx: number): void {
    this.current = idx;
    for (const w of [...this.watches]) {
      if (w.endpoint !== idx) w.end(new ListAgain(`etcd: requests moved to ${this.endpoints[idx]!.origin}, the watch follows`));
    }
  }

  private async callOn(ep: URL, path: string, body: string): Promise<unknown> {
    if (this.opts.username === undefined) return this.post(ep, path, body);
    const token = await this.authenticate(ep);
    try {
      return await this.post(ep, path, body, token);
    } catch (err) {
      if (!(err instanceof EtcdError) || !INVALID_TOKEN.test(err.message)) throw err;
      this.token = undefined; // expired (etcd's --auth-token-ttl): once more with a new one
      return this.post(ep, path, body, await this.authenticate(ep));
    }
  }

  /** The auth token, asked for once and shared; a failed attempt is forgotten. */
  private authenticate(ep: URL): Promise<string> {
    if (!this.token) {
      const body = JSON.stringify({ name: this.opts.username, password: this.opts.password });
      this.token = this.post(ep, 'auth/authenticate', body).then((r) => {
        const t = (r as AuthResponse).token;
        if (!t) throw new EtcdError(`etcd ${ep.origin}: authentication gave no token (is auth enabled?)`, 'auth');
        return t;
      });
      this.token.catch(() => (this.token = undefined));
    }
    return this.token;
  }

  private agentFor(ep: URL): http.Agent {
    let a = this.agents.get(ep.protocol);
    if (!a) {
      const { ca, cert, key } = this.opts;
      a =
        ep.protocol === 'https:'
          ? new https.Agent({ keepAlive: true, maxSockets: 4, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) })
          : new http.Agent({ keepAlive: true, maxSockets: 4 });
      this.agents.set(ep.protocol, a);
    }
    return a;
  }

  /** A POST; `timeoutMs` undefined: a watch, on a connection of its own and without timeout. */
  private request(
    ep: URL,
    path: string,
    body: string,
    token: string | undefined,
    timeoutMs: number | undefined,
    onResponse: (res: http.IncomingMessage) => void,
  ) {
    const mod = ep.protocol === 'https:' ? https : http;
    const { ca, cert, key } = this.opts;
    return mod.request(
      {
        host: ep.hostname.replace(/^\[|\]$/g, ''),
        port: ep.port || 2379,
        path,
        method: 'POST',
        // A watch holds its connection for as long as it runs: never a pooled one.
        ...(timeoutMs !== undefined
          ? { agent: this.agentFor(ep), timeout: timeoutMs }
          : { agent: false, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) }),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(token ? { authorization: token } : {}) },
      },
      onResponse,
    );
  }

  private post(ep: URL, path: string, body: string, token?: string, timeoutMs = this.timeoutMs): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = this.request(ep, `/v3/${path}`, body, token, timeoutMs, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(transportError(ep, err, this.opts.cert !== undefined)));
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = raw.trim() === '' ? {} : JSON.parse(raw);
          } catch {
            reject(plainTextError(ep.origin, path, res.statusCode ?? 0, raw.trim()));
            return;
          }
          if (res.statusCode !== 200) reject(serverError(ep.origin, path, res.statusCode ?? 0, json as ErrorBody));
          else resolve(json);
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', (err) => reject(transportError(ep, err, this.opts.cert !== undefined)));
      req.end(body);
    });
  }
}
