// The agent's health endpoint, as flanneld's --healthz-ip/--healthz-port: GET /healthz
// answers 200 while the agent holds its lease and its peers follow a live watch of the store,
// 503 (with the reason) when not, so that a DaemonSet's liveness probe can use it. GET /readyz
// answers 200 once the subnet file is written, as flanneld's does.
import http from 'node:http';
import type { AgentStatus } from './agent.ts';

/** Listens on `ip`:`port`; resolves once listening (rejects if the address is taken). */
export function serveHealthz(ip: string, port: number, status: () => AgentStatus): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const s = status();
    const answer = (code: number, body: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`${body}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') answer(405, 'GET only');
    else if (path === '/healthz') answer(s.healthy ? 200 : 503, `${s.healthy ? 'ok' : 'unhealthy'}: ${s.detail}`);
    else if (path === '/readyz') answer(s.ready ? 200 : 503, s.ready ? `ready: subnet ${s.subnet}` : 'not ready: no subnet file yet');
    else answer(404, 'not found: /healthz or /readyz');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
