// The levers' tables: start variants against the floor and their baseline; ADD/DEL
// variants against the plugins as installed.
import { summarize, type Stat } from '../stats.ts';
import type { AddLeverRow } from './add.ts';
import type { Variant } from './start.ts';

const r1 = (x: number) => (Math.round(x * 10) / 10).toFixed(1);
const r2 = (x: number) => Math.round(x * 100) / 100;
const sign = (x: number) => `${x >= 0 ? '+' : ''}${r1(x)}`;
const kb = (n?: number) => (n === undefined ? '' : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.round(n / 1024)} KiB`);

export interface StartRow {
  id: string;
  group: string;
  label: string;
  size?: number;
  status: 'ok' | 'failed' | 'skipped';
  note?: string;
  median?: number;
  p95?: number;
  overFloor?: number;
  baseline?: string;
  vsBaseline?: number;
  rssMiB?: number;
  samples?: number[];
}

export function startRows(variants: readonly Variant[]): StartRow[] {
  const stats = new Map<Variant, Stat>(variants.filter((v) => v.samples.length > 0).map((v) => [v, summarize(v.samples)]));
  const floor = stats.get(variants.find((v) => v.id === 'floor')!);
  const byId = new Map(variants.map((v) => [v.id, v]));
  const groups = [...new Set(variants.map((v) => v.group))];
  return [...variants]
    .sort((a, b) => groups.indexOf(a.group) - groups.indexOf(b.group))
    .map((v) => {
      const st = stats.get(v);
      const base = v.baseline ? stats.get(byId.get(v.baseline)!) : undefined;
      return {
        id: v.id,
        group: v.group,
        label: v.label,
        ...(v.size !== undefined ? { size: v.size } : {}),
        status: v.skipped ? 'skipped' : v.error || !st ? 'failed' : 'ok',
        ...(v.skipped || v.error ? { note: v.skipped ?? v.error } : {}),
        ...(st ? { median: st.median, p95: st.p95, samples: st.samples } : {}),
        ...(st && floor ? { overFloor: r2(st.median - floor.median) } : {}),
        ...(v.baseline ? { baseline: v.baseline } : {}),
        ...(st && base ? { vsBaseline: r2(st.median - base.median) } : {}),
        ...(v.rssMiB !== undefined ? { rssMiB: v.rssMiB } : {}),
      };
    });
}

export function startTable(rows: readonly StartRow[], rounds: number): string[] {
  return [
    '### Start: the VERSION verb (start, load the bundle, answer, exit)',
    '',
    `Median (p95) of ${rounds} rounds, all variants round robin in one run. "vs baseline": against the same code as one \`#!<node>\` + bundle file, or against no flag.`,
    '',
    '| group | variant | loads | median ms (p95) | over floor | vs baseline | peak RSS |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.group} | ${r.label} | ${kb(r.size)} | ${r.median === undefined ? (r.note ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ') : `${r1(r.median)} (${r1(r.p95!)})`} | ${r.overFloor === undefined ? '' : sign(r.overFloor)} | ${r.vsBaseline === undefined ? '' : sign(r.vsBaseline)} | ${r.rssMiB === undefined ? '' : `${r.rssMiB} MiB`} |`,
    ),
  ];
}

export function addTable(floor: Stat, rows: readonly AddLeverRow[], rounds: number): string[] {
  const base = rows[0];
  const vs = (x: Stat | undefined, b: Stat | undefined, r: AddLeverRow) => (x && b && r !== base ? sign(x.median - b.median) : '');
  return [
    '### Work: ADD and DEL of one pod (flannel-style bridge config), in private namespaces',
    '',
    `Median (p95) of ${rounds} rounds, variants round robin; floor \`node -e 0\` in the same run: ${r1(floor.median)} ms (p95 ${r1(floor.p95)}).`,
    '',
    '| variant | ADD ms | ADD vs installed | DEL ms | DEL vs installed |',
    '|---|---|---|---|---|',
    ...rows.map((r) =>
      r.add && r.del
        ? `| ${r.label} | ${r1(r.add.median)} (${r1(r.add.p95)}) | ${vs(r.add, base?.add, r)} | ${r1(r.del.median)} (${r1(r.del.p95)}) | ${vs(r.del, base?.del, r)} |`
        : `| ${r.label} | ${r.error ?? ''} | | | |`,
    ),
  ];
}
