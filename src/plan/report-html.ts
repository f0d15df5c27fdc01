// Self-contained HTML report of a plan with inline SVG charts: memory stack per chip, step-time
// breakdown, and a comparison of the ranked layouts. No scripts, no external resources.
import type { Estimate } from './estimate.js';
import { ASCEND_PEAK_CAVEAT, isAscend } from './hardware.js';
import { describeLayout } from './layout.js';
import { GiB } from './memory.js';
import { chipLine, memoryLine, rankedTable, runLines, type TextReportInput, timeLine } from './report-text.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac', '#86bcb6'];

interface Series {
  name: string;
  values: number[];
}

/** Horizontal stacked bars, one per row label, with a legend and an optional limit line. */
export function stackedBars(title: string, rows: string[], series: Series[], unit: string, limit?: number): string {
  const W = 920, left = 250, right = 90, barH = 22, gap = 10, top = 40;
  const legendH = 24 * Math.ceil(series.length / 5);
  const H = top + rows.length * (barH + gap) + 30 + legendH;
  const totals = rows.map((_, i) => series.reduce((s, x) => s + x.values[i]!, 0));
  const max = Math.max(...totals, limit ?? 0) * 1.05 || 1;
  const sx = (v: number) => (v / max) * (W - left - right);
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">`];
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  rows.forEach((label, i) => {
    const y = top + i * (barH + gap);
    out.push(`<text x="${left - 8}" y="${y + barH * 0.7}" font-size="12" text-anchor="end">${esc(label)}</text>`);
    let x = left;
    series.forEach((s, k) => {
      const w = sx(s.values[i]!);
      if (w > 0) out.push(`<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${COLORS[k % COLORS.length]}"><title>${esc(`${s.name}: ${s.values[i]!.toFixed(2)} ${unit}`)}</title></rect>`);
      x += w;
    });
    out.push(`<text x="${(x + 4).toFixed(1)}" y="${y + barH * 0.7}" font-size="11">${totals[i]!.toFixed(2)} ${unit}</text>`);
  });
  const axisY = top + rows.length * (barH + gap);
  out.push(`<line x1="${left}" y1="${axisY}" x2="${W - right}" y2="${axisY}" stroke="#888"/>`);
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    out.push(`<text x="${(left + sx(v)).toFixed(1)}" y="${axisY + 14}" font-size="10" text-anchor="middle">${v.toFixed(v >= 10 ? 0 : 1)}</text>`);
  }
  if (limit !== undefined) {
    const lx = left + sx(limit);
    out.push(`<line x1="${lx.toFixed(1)}" y1="${top - 6}" x2="${lx.toFixed(1)}" y2="${axisY}" stroke="#c00" stroke-dasharray="5,3"/>`);
    out.push(`<text x="${lx.toFixed(1)}" y="${top - 9}" font-size="11" fill="#c00" text-anchor="middle">limit ${limit.toFixed(0)} ${unit}</text>`);
  }
  series.forEach((s, k) => {
    const lx = left + (k % 5) * 140, ly = axisY + 30 + Math.floor(k / 5) * 24;
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLORS[k % COLORS.length]}"/><text x="${lx + 16}" y="${ly}" font-size="11">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

export function memoryChart(list: Estimate[]): string {
  const rows = list.map((e, i) => `#${i + 1} ${describeLayout(e.layout)}`);
  const g = (f: (e: Estimate) => number) => list.map((e) => f(e) / GiB);
  return stackedBars('Memory per chip (GiB)', rows, [
    { name: 'weights', values: g((e) => e.memory.weights) },
    { name: 'gradients', values: g((e) => e.memory.grads) },
    { name: 'optimizer', values: g((e) => e.memory.optimizer) },
    { name: 'activations', values: g((e) => e.memory.activations) },
    { name: 'other', values: g((e) => e.memory.other) },
  ], 'GiB', list[0] ? list[0].memoryLimit / GiB : undefined);
}

export function timeChart(list: Estimate[]): string {
  const rows = list.map((e, i) => `#${i + 1} ${describeLayout(e.layout)}`);
  const keys: [keyof Estimate['time']['parts'], string][] = [['compute', 'GEMM'], ['attention', 'attention'], ['elementwise', 'elementwise'],
    ['tp', 'TP/SP comm'], ['cp', 'CP comm'], ['ep', 'EP all-to-all'], ['p2p', 'pipeline p2p'], ['bubble', 'bubble'], ['dp', 'DP reduce'], ['zero', 'ZeRO'], ['optimizer', 'optimizer']];
  const series = keys.map(([k, name]) => ({ name, values: list.map((e) => e.time.parts[k]) })).filter((s) => s.values.some((v) => v > 0));
  return stackedBars('Step time breakdown (s)', rows, series, 's');
}

export function comparisonChart(list: Estimate[]): string {
  const rows = list.map((e, i) => `#${i + 1} ${describeLayout(e.layout)} mb${e.layout.microBatch}`);
  return stackedBars('Days to train (no interruptions), by layout', rows, [{ name: 'days', values: list.map((e) => e.days) }], 'days');
}

export function htmlReport(r: TextReportInput): string {
  const c = r.model.config;
  const best = r.ranked[0]!;
  const details = r.ranked.slice(0, r.details ?? 3).map((e, i) =>
    `<h3>#${i + 1} ${esc(describeLayout(e.layout))}</h3><p>${esc(memoryLine(e))}<br>${esc(timeLine(e))}</p>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zili plan: ${esc(c.name)} on ${r.chips} x ${esc(r.chip.id)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}
.note{background:#fff6d6;padding:.6em 1em;border-left:4px solid #e0b000}svg{display:block;margin:1em 0}</style></head>
<body>
<h1>${esc(c.name)} on ${r.chips} x ${esc(r.chip.name)}</h1>
<p>${esc(chipLine(r.chip))}</p>
<p>Global batch ${r.globalBatch} sequences of ${c.seqLen} tokens. ${r.considered} valid layouts, ${r.fitting} fit in memory.</p>
${isAscend(r.chip) ? `<p class="note">MFU divides by ${r.chip.peakTflops} TFLOP/s per chip. ${esc(ASCEND_PEAK_CAVEAT)}</p>` : ''}
<h2>Best layout</h2>
<p><b>${esc(r.reason)}</b></p>
<ul>${runLines(best, r.chip).map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<h2>Layout comparison</h2>
${comparisonChart(r.ranked)}
<pre>${esc(rankedTable(r.ranked))}</pre>
<h2>Memory per chip</h2>
${memoryChart(r.ranked)}
<h2>Step time</h2>
${timeChart(r.ranked)}
<h2>Details</h2>
${details}
</body></html>
`;
}
