// The table: one row per figure, ours beside the reference and the floor of the same run,
// with the target and PASS/MISS. Printed, and written as JSON and as Markdown.
import { summarize, type Stat } from './stats.ts';
import type { Series } from './series.ts';

export type Status = 'ok' | 'failed' | 'skipped' | 'n/a';

export interface Side {
  status: Status;
  stat?: Stat;
  /** A figure computed from other rows' medians (no samples of its own), in the row's unit. */
  value?: number;
  note?: string;
  facts?: Record<string, number | string | boolean>;
}

export interface Row {
  id: string;
  figure: string;
  unit: 'ms' | 'MiB';
  ours: Side;
  reference: Side;
  /** What the floor column holds for this row, and its numbers. */
  floorLabel?: string;
  floor?: Stat;
  oursMinusFloor?: number;
  oursOverReference?: number;
  target: string;
  verdict: 'PASS' | 'MISS' | '—';
}

export function side(s: Series | undefined, na?: string): Side {
  if (!s) return { status: 'n/a', note: na ?? 'n/a' };
  const base = s.facts ? { facts: s.facts } : {};
  if (s.skipped !== undefined) return { status: 'skipped', note: s.skipped, ...base };
  if (s.error !== undefined) return { status: 'failed', note: s.error, ...base };
  if (s.samples.length === 0) return { status: 'skipped', note: 'no samples', ...base };
  return { status: 'ok', stat: summarize(s.samples), ...(s.note ? { note: s.note } : {}), ...base };
}

export const stat = (samples: number[]): Stat | undefined => (samples.length > 0 ? summarize(samples) : undefined);

export const r1 = (x: number) => Math.round(x * 10) / 10;
const r2 = (x: number) => Math.round(x * 100) / 100;

/** Fills the derived columns; `pass` decides the verdict from ours (and the rest of the row). */
export function finish(row: Row, pass?: (o: Stat, row: Row) => boolean | undefined): Row {
  const o = row.ours.stat;
  // Times compare medians; memory compares peaks (the largest run), as the cells show.
  const v = (s: Stat) => (row.unit === 'MiB' ? s.max : s.median);
  const num = (s: Side) => (s.stat ? v(s.stat) : s.value);
  const ours = num(row.ours);
  const ref = num(row.reference);
  if (ours !== undefined && row.floor) row.oursMinusFloor = r2(ours - v(row.floor));
  if (ours !== undefined && ref !== undefined) row.oursOverReference = r2(ours / ref);
  if (o && pass) {
    const ok = pass(o, row);
    row.verdict = ok === undefined ? '—' : ok ? 'PASS' : 'MISS';
  } else {
    row.verdict = '—';
  }
  return row;
}

function cell(s: Side, unit: string): string {
  if (s.stat) {
    const n = s.stat;
    const main = unit === 'MiB' ? `${r1(n.max)} MiB peak` : `${r1(n.median)} ms (p95 ${r1(n.p95)})`;
    return s.note ? `${main}; ${s.note}` : main;
  }
  if (s.value !== undefined) {
    const main = `${r1(s.value)} ${unit}`;
    return s.note ? `${main} (${s.note})` : main;
  }
  return s.note ?? s.status;
}

function floorCell(row: Row): string {
  if (!row.floor) return '';
  const v = row.unit === 'MiB' ? `${r1(row.floor.max)} MiB` : `${r1(row.floor.median)} ms`;
  return row.floorLabel ? `${v} (${row.floorLabel})` : v;
}

export const HEADER = ['figure', 'ours', 'reference v1.1.1', 'floor, same run', 'ours − floor', 'ours ÷ reference', 'target', 'result'];

export function cells(row: Row): string[] {
  const unit = row.unit === 'MiB' ? ' MiB' : ' ms';
  return [
    row.figure,
    cell(row.ours, row.unit),
    cell(row.reference, row.unit),
    floorCell(row),
    row.oursMinusFloor === undefined ? '' : `${row.oursMinusFloor >= 0 ? '+' : ''}${r1(row.oursMinusFloor)}${unit}`,
    row.oursOverReference === undefined ? '' : `${r2(row.oursOverReference)}×`,
    row.target,
    row.verdict,
  ];
}

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function markdown(rows: readonly Row[], preamble: string[], notes: string[]): string {
  const lines = [...preamble, '', `| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${cells(row).map(esc).join(' | ')} |`);
  return [...lines, ...notes.flatMap((n) => ['', n]), ''].join('\n');
}

/** A plain-text table for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const all = [HEADER, ...rows.map(cells)];
  const width = HEADER.map((_, i) => Math.min(i === 0 ? 68 : 48, Math.max(...all.map((r) => r[i]!.length))));
  const clip = (s: string, w: number) => (s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w));
  return all.map((r, j) => r.map((c, i) => clip(c, width[i]!)).join('  ') + (j === 0 ? `\n${width.map((w) => '-'.repeat(w)).join('  ')}` : '')).join('\n');
}
