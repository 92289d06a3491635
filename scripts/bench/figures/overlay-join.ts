// 30 overlay agents joining one etcd at once (issue 15's figure): the workload is
// test/system/overlay-join.test.ts (etcd, 30 node namespaces on one underlay, an agent
// each), which asserts that none exits, every subnet is distinct and every node ends up
// with every peer; it reports how long that took and each agent's memory, read here.
// There is no flanneld on these machines to run beside it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Ctx } from '../context.ts';
import { newSeries, type Series } from '../series.ts';
import { summarize } from '../stats.ts';

export interface JoinResult {
  converged: Series;
  rss: Series;
}

interface Report {
  nodes: number;
  exits: number;
  leasedMs: number;
  convergedMs: number;
  lostRaces: number;
  rssMiB: number[];
  anonMiB: number[];
}

export function benchOverlayJoin(ctx: Ctx, log: (s: string) => void): JoinResult {
  const converged = newSeries();
  const rss = newSeries();
  const out = path.join(ctx.tmp, 'join.json');
  log('overlay: 30 agents joining at once (test/system/overlay-join.test.ts)');
  try {
    execFileSync(path.join(ctx.root, 'node_modules/.bin/vitest'), ['run', '--project', 'system', 'test/system/overlay-join.test.ts'], {
      cwd: ctx.root,
      env: { ...process.env, FLANNELETTE_JOIN_REPORT: out },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (err) {
    const why = `the join failed: ${(err as { stderr?: Buffer }).stderr?.toString().slice(-400) ?? String(err)}`;
    converged.error = why;
    rss.error = why;
    return { converged, rss };
  }
  const r = JSON.parse(readFileSync(out, 'utf8')) as Report;
  converged.samples.push(r.convergedMs);
  converged.facts = { nodes: r.nodes, exits: r.exits, everyLeaseAfterMs: r.leasedMs, lostRaces: r.lostRaces };
  rss.samples.push(...r.rssMiB);
  rss.facts = { anonymousMedianMiB: Math.round(summarize(r.anonMiB).median * 10) / 10 };
  return { converged, rss };
}
