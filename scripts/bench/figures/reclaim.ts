// host-local ADD when the range is full of dead leases (issue 14): the ADD has to prove the
// leases dead and reclaim them before it can allocate. Timed beside a normal ADD (free
// addresses, same range, same node) in the same rounds. A dead lease here is what a pod
// that vanished without DEL leaves: a file whose address no namespace attached to the node
// holds, written minutes ago (its mtime set back past the in-flight grace period).
// The reference v1.1.1 cannot reclaim: its ADD on the same store fails, which is recorded.
import { mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { callPlugin, inOrder, type Ctx } from '../context.ts';
import { nsPath } from '../netns.ts';
import { fail, newSeries, usable, type Series } from '../series.ts';
import { failure } from '../spawn.ts';

const NET = 'benchreclaim';
/** 250 addresses: 10.251.0.2 to 10.251.0.251. */
const SIZE = 250;
const addr = (i: number) => `10.251.0.${i + 2}`;
/** How far back the dead leases are dated: well past any in-flight grace period. */
const AGE_S = 3600;

export interface ReclaimResult {
  normal: Series;
  reclaiming: Series;
  reference: Series;
}

function conf(dataDir: string): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: NET,
    type: 'bridge',
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.251.0.0/24', rangeStart: addr(0), rangeEnd: addr(SIZE - 1) }]], dataDir },
  };
}

/** The store holding every address of the range, each leased to a container long gone. */
function fillWithDead(dataDir: string): void {
  const dir = path.join(dataDir, NET);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const then = Date.now() / 1000 - AGE_S;
  for (let i = 0; i < SIZE; i++) {
    const file = path.join(dir, addr(i));
    writeFileSync(file, `gone${i.toString(16).padStart(8, '0')}\r\neth0`, { mode: 0o644 });
    utimesSync(file, then, then);
  }
  writeFileSync(path.join(dir, 'last_reserved_ip.0'), addr(SIZE - 1), { mode: 0o644 });
  writeFileSync(path.join(dir, 'lock'), '', { mode: 0o644 });
}

function empty(dataDir: string): void {
  rmSync(path.join(dataDir, NET), { recursive: true, force: true });
}

const leases = (dataDir: string) => readdirSync(path.join(dataDir, NET)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));

export async function benchReclaim(ctx: Ctx, rounds: number, log: (s: string) => void): Promise<ReclaimResult> {
  const normal = newSeries();
  const reclaiming = newSeries();
  const reference = newSeries();
  const dataDir = path.join(ctx.tmp, 'reclaim');
  // host-local only needs CNI_NETNS to be set: any namespace path will do.
  const add = (id: string) => ({ command: 'ADD', containerId: id, netns: nsPath(ctx.ours.node), ifname: 'eth0', conf: conf(dataDir) });
  for (let r = 0; r < rounds; r++) {
    for (const kind of inOrder(r, ['normal', 'reclaiming'] as const)) {
      const s = kind === 'normal' ? normal : reclaiming;
      if (!usable(s)) continue;
      if (kind === 'normal') empty(dataDir);
      else fillWithDead(dataDir);
      const run = await callPlugin(ctx.ours, 'host-local', add('bench-new'));
      if (run.code !== 0) {
        fail(s, failure(run));
        continue;
      }
      // A reclaiming ADD releases every dead lease and takes one address: anything else is
      // not the work this figure times.
      const held = leases(dataDir).length;
      if (kind === 'reclaiming' && held !== 1) {
        fail(s, `${held} leases after a reclaiming ADD on ${SIZE} dead ones (1 expected)`);
        continue;
      }
      s.samples.push(run.ms);
    }
    if ((r + 1) % 10 === 0 || r + 1 === rounds) log(`reclaim: round ${r + 1}/${rounds}`);
  }
  // The reference on the same full store: no reclaiming, so its ADD fails (recorded, not timed).
  fillWithDead(dataDir);
  const ref = await callPlugin(ctx.reference, 'host-local', add('bench-new'));
  reference.skipped = ref.code === 0 ? 'the reference allocated from a full range (unexpected)' : 'no reclaiming in v1.1.1: its ADD fails on the full range';
  empty(dataDir);
  return { normal, reclaiming, reference };
}
