// A small etcd v3 client over the server's JSON gateway (plain HTTP, base64 keys and
// values, int64 as strings), with node:http only: no gRPC stack and no npm dependency.
// Covers what the agent needs: range, compare-and-put, delete, leases, watch.
import http from 'node:http';

export interface KeyValue {
  key: string;
  value: string;
  modRevision: string;
  /** The lease the key is attached to; absent when none. */
  lease?: string;
}

export interface WatchEvent {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
}

/** A failed etcd call; `unreachable` when no endpoint answered at all. */
export class EtcdError extends Error {
  override name = 'EtcdError';
  constructor(
    msg: string,
    readonly unreachable = false,
  ) {
    super(msg);
  }
}

/** The watch's start revision was compacted away: list again, then watch from there. */
export class WatchCompacted extends EtcdError {
  override name = 'WatchCompacted';
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

function toKv(raw: any): KeyValue {
  const kv: KeyValue = {
    key: text(raw?.key),
    value: text(raw?.value),
    modRevision: String(raw?.mod_revision ?? '0'),
  };
  if (raw?.lease && raw.lease !== '0') kv.lease = String(raw.lease);
  return kv;
}

export interface EtcdOptions {
  /** Per-request timeout; a watch has none (it is cancelled through its signal). */
  timeoutMs?: number;
}

export class EtcdClient {
  private readonly endpoints: URL[];
  private current = 0;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private readonly timeoutMs: number;

  constructor(endpoints: readonly string[], opts: EtcdOptions = {}) {
    if (endpoints.length === 0) throw new EtcdError('no etcd endpoints');
    this.endpoints = endpoints.map((e) => {
      const u = new URL(e);
      if (u.protocol !== 'http:') throw new EtcdError(`etcd endpoint ${e}: only http:// is supported`);
      return u;
    });
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  close(): void {
    this.agent.destroy();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const r = await this.call('kv/range', { key: b64(key) });
    return r.kvs?.length ? toKv(r.kvs[0]) : undefined;
  }

  /** Every key under `prefix`, and the store revision the listing is consistent with. */
  async list(prefix: string): Promise<{ kvs: KeyValue[]; revision: string }> {
    const r = await this.call('kv/range', { key: b64(prefix), range_end: b64(prefixEnd(prefix)) });
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
    const r = await this.call('kv/txn', { compare: [compare], success: [{ request_put: put }] });
    return r.succeeded === true ? String(r.header?.revision) : undefined;
  }

  async delete(key: string): Promise<void> {
    await this.call('kv/deleterange', { key: b64(key) });
  }

  /** A new lease of `ttl` seconds; its ID. */
  async grant(ttl: number): Promise<string> {
    const r = await this.call('lease/grant', { TTL: ttl });
    if (!r.ID) throw new EtcdError(`lease grant failed: ${r.error ?? 'no ID'}`);
    return String(r.ID);
  }

  /** Renews a lease once; its remaining TTL, 0 when it no longer exists. */
  async keepAlive(id: string): Promise<number> {
    const r = await this.call('lease/keepalive', { ID: id });
    return Number(r.result?.TTL ?? 0);
  }

  async revoke(id: string): Promise<void> {
    await this.call('lease/revoke', { ID: id });
  }

  /**
   * Watches every key under `prefix` from `fromRevision` on, calling `onEvents` with each
   * batch the server sends, in order (awaited, so batches never overlap). Resolves when
   * `signal` aborts; rejects when the stream fails or ends (e.g. etcd went away).
   */
  watch(prefix: string, fromRevision: string, signal: AbortSignal, onEvents: (events: WatchEvent[]) => Promise<void>): Promise<void> {
    const body = JSON.stringify({
      create_request: { key: b64(prefix), range_end: b64(prefixEnd(prefix)), start_revision: fromRevision },
    });
    const ep = this.endpoints[this.current]!;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve();
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        req.destroy();
        if (err && !signal.aborted) reject(err);
        else resolve();
      };
      const onAbort = () => finish();
      signal.addEventListener('abort', onAbort);
      let chain = Promise.resolve();
      const req = http.request(
        { host: ep.hostname, port: ep.port || 2379, path: '/v3/watch', method: 'POST', agent: false, headers: { 'content-type': 'application/json' } },
        (res) => {
          if (res.statusCode !== 200) {
            finish(new EtcdError(`watch: HTTP ${res.statusCode}`));
            return;
          }
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl).trim();
              buf = buf.slice(nl + 1);
              if (line === '') continue;
              let msg: any;
              try {
                msg = JSON.parse(line);
              } catch {
                finish(new EtcdError(`watch: bad message: ${line.slice(0, 120)}`));
                return;
              }
              const r = msg.result;
              if (msg.error || !r) {
                finish(new EtcdError(`watch: ${msg.error?.message ?? 'stream error'}`, true));
                return;
              }
              if (r.canceled) {
                const why = r.compact_revision ? `revision ${fromRevision} compacted` : (r.cancel_reason ?? 'canceled');
                finish(r.compact_revision ? new WatchCompacted(`watch: ${why}`) : new EtcdError(`watch: ${why}`));
                return;
              }
              if (Array.isArray(r.events) && r.events.length > 0) {
                const events: WatchEvent[] = r.events.map((e: any) => ({
                  type: e.type === 'DELETE' ? 'DELETE' : 'PUT',
                  kv: toKv(e.kv),
                }));
                chain = chain.then(() => onEvents(events)).catch((err: Error) => finish(err));
              }
            }
          });
          res.on('end', () => finish(new EtcdError('watch: stream ended', true)));
          res.on('error', (err) => finish(new EtcdError(`watch: ${err.message}`, true)));
        },
      );
      req.on('error', (err) => finish(new EtcdError(`watch ${ep.origin}: ${err.message}`, true)));
      req.end(body);
    });
  }

  /** POSTs to each endpoint in turn, starting with the last one that answered. */
  private async call(path: string, body: unknown): Promise<any> {
    let last: EtcdError | undefined;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      try {
        const r = await this.post(this.endpoints[idx]!, path, JSON.stringify(body));
        this.current = idx;
        return r;
      } catch (err) {
        if (!(err instanceof EtcdError) || !err.unreachable) throw err;
        last = err;
      }
    }
    throw last!;
  }

  private post(ep: URL, path: string, body: string): Promise<any> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: ep.hostname,
          port: ep.port || 2379,
          path: `/v3/${path}`,
          method: 'POST',
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new EtcdError(`${path}: ${err.message}`, true)));
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            let json: any;
            try {
              json = raw.trim() === '' ? {} : JSON.parse(raw);
            } catch {
              reject(new EtcdError(`${path}: HTTP ${res.statusCode}, not JSON: ${raw.slice(0, 120)}`));
              return;
            }
            if (res.statusCode !== 200) reject(new EtcdError(`${path}: ${json.message ?? json.error ?? `HTTP ${res.statusCode}`}`));
            else resolve(json);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer in ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(new EtcdError(`${ep.origin}: ${err.message}`, true)));
      req.end(body);
    });
  }
}
