// The validation table of docs/planner.md, computed from the data of published-runs.ts: every run's
// predicted MFU with the default efficiencies, and its leave-one-source-out prediction (the
// efficiencies refitted without any run of that source). The docs test regenerates it and compares.
import { checkRun, errorStats, fitEfficiency, type RunCheck } from './calibrate.js';
import { DEFAULT_EFFICIENCY, type Efficiency, NEUTRAL_EFFICIENCY } from './efficiency.js';
import { describeLayout } from './layout.js';
import { PUBLISHED_RUNS, type PublishedRun, SOURCES } from './published-runs.js';

export interface ValidationRow {
  check: RunCheck;
  loso: RunCheck;
}

export interface Validation {
  rows: ValidationRow[];
  all: { median: number; worst: number };
  loso: { median: number; worst: number };
  sources: number;
}

/** Fits without each source in turn and predicts it (rounds: the coordinate-search budget of each fit). */
export function validate(runs: readonly PublishedRun[] = PUBLISHED_RUNS, e: Efficiency = DEFAULT_EFFICIENCY, rounds = 25): Validation {
  const fits = new Map<string, Efficiency>();
  for (const s of new Set(runs.map((r) => r.source))) fits.set(s, fitEfficiency(runs.filter((r) => r.source !== s), NEUTRAL_EFFICIENCY, rounds));
  const rows = runs.map((r) => ({ check: checkRun(r, e), loso: checkRun(r, fits.get(r.source)!) }));
  const all = errorStats(rows.map((x) => x.check));
  const loso = errorStats(rows.map((x) => x.loso));
  return { rows, all: { median: all.median, worst: all.worst }, loso: { median: loso.median, worst: loso.worst }, sources: fits.size };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** The markdown table (and summary lines) docs/planner.md carries between its validation markers. */
export function validationMarkdown(v: Validation): string {
  const lines = [
    '| run | source | chips | chip | stack | layout | published MFU | predicted MFU | error | leave-one-source-out |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { check: c, loso } of v.rows) {
    const r = c.run;
    const l = r.layout;
    const layout = `${describeLayout(l)}, mb ${l.microBatch}, ${l.recompute}${l.sequenceParallel ? ' + SP' : ''}, ${l.attention}`;
    lines.push(`| ${r.id} | ${r.source} | ${r.gpus} | ${r.chip} | ${r.stack} | ${layout} | ${pct(r.mfu)} | ${pct(c.predictedMfu)} | ${pct(c.relError)} | ${pct(loso.relError)} |`);
  }
  lines.push('', `${v.rows.length} runs from ${v.sources} sources (${SOURCES.length} cited). With the default efficiencies: median |error| ${pct(v.all.median)}, worst ${pct(v.all.worst)}. ` +
    `Leave-one-source-out: median ${pct(v.loso.median)}, worst ${pct(v.loso.worst)}.`);
  return lines.join('\n');
}

/** The sources and what each run's source reports (docs/published-runs.md carries it between markers). */
export function sourcesMarkdown(runs: readonly PublishedRun[] = PUBLISHED_RUNS): string {
  const out: string[] = [];
  for (const s of SOURCES) {
    const mine = runs.filter((r) => r.source === s.id);
    if (!mine.length) continue;
    out.push(`### ${s.id}`, '', s.cite, '');
    for (const r of mine) out.push(`- \`${r.id}\` (${r.gpus} x ${r.chip}, ${r.stack}, ${describeLayout(r.layout)}, global batch ${r.layout.globalBatch}): ${r.reports}; compared MFU ${pct(r.mfu)}.`);
    out.push('');
  }
  return out.join('\n').trim();
}
