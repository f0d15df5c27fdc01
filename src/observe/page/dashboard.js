// zili dashboard, in the browser: one server-sent-events stream from `zili dashboard` carries a
// snapshot of each run, then its appended rows; uPlot draws the curves (runs side by side in each
// chart), checkpoints (dashed) and restarts (red) as markers, and a card per run sets its
// configuration and measured figures beside the planner's estimate; other events (skipped steps:
// orange) are dotted markers. No build step.
/* global uPlot */
'use strict';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const GiB = 2 ** 30;
const MAX_POINTS = 20000; // past this a run is downsampled again by the server (reconnect)

/** The overlay charts: the fields each run draws (the second one dashed, with points) and a scale to the unit shown. */
const CHARTS = [
  { title: 'loss (solid: train, dashed: validation)', fields: ['loss', 'valLoss'] },
  { title: 'learning rate', fields: ['lr'] },
  { title: 'tokens / s', fields: ['tokensPerSec'] },
  { title: 'MFU (%)', fields: ['mfu'], scale: 100 },
  { title: 'memory (GiB, resident)', fields: ['rssBytes'], scale: 1 / GiB },
  { title: 'gradient norm', fields: ['gradNorm'] },
];

const runs = []; // per run: snapshot fields, growing x/series
const charts = []; // { def, plot, runKey }
const rankCharts = new Map(); // run index -> { plot, ranks }
let dirty = false;
const status = document.getElementById('status');

function fmt(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (typeof v !== 'number') return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(+v.toPrecision(digits));
}

/** Checkpoints (dashed, the run's colour) and restarts (red) of every run, or of one run (`only`). */
function markersPlugin(only) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx, bbox } = u;
        ctx.save();
        runs.forEach((r, i) => {
          if (!r || (only !== undefined && only !== i)) return;
          const line = (step, color, dash) => {
            const x = u.valToPos(step, 'x', true);
            if (!(x >= bbox.left && x <= bbox.left + bbox.width)) return;
            ctx.strokeStyle = color;
            ctx.setLineDash(dash);
            ctx.lineWidth = 1;
            ctx.beginPath();
            ctx.moveTo(x, bbox.top);
            ctx.lineTo(x, bbox.top + bbox.height);
            ctx.stroke();
          };
          for (const s of r.checkpoints) line(s, COLORS[i % COLORS.length] + '88', [4, 4]);
          for (const e of r.events || []) if (e.event !== 'restart' && e.event !== 'checkpoint') line(e.step, e.event === 'skip' ? '#f80' : '#888', [2, 2]);
          for (const s of r.restarts) line(s, '#e00', []);
        });
        ctx.restore();
      }],
    },
  };
}

function chartWidth() {
  return Math.max(360, Math.min(640, Math.floor((window.innerWidth - 100) / 2)));
}

function makePlot(parent, title, series, data, only) {
  const box = document.createElement('div');
  box.className = 'chart';
  parent.appendChild(box);
  return new uPlot({
    title, width: chartWidth(), height: 240,
    scales: { x: { time: false } },
    axes: [{ label: 'step' }, { size: 60, values: (u, splits) => splits.map((v) => (v === null ? '' : +v.toPrecision(3) === 0 ? '0' : Math.abs(v) < 1e-2 || Math.abs(v) >= 1e5 ? v.toExponential(1) : String(+v.toPrecision(3)))) }],
    series: [{ label: 'step' }, ...series],
    plugins: [markersPlugin(only)],
    legend: { live: true },
  }, data, box);
}

/** One run's [x, ...values] table for a chart (values scaled), for uPlot.join. */
function tableOf(r, def) {
  return [r.x, ...def.fields.map((f) => (r.series[f] || r.x.map(() => null)).map((v) => (v === null ? null : v * (def.scale || 1))))];
}

function rebuildCharts() {
  const el = document.getElementById('charts');
  el.textContent = '';
  charts.length = 0;
  for (const def of CHARTS) {
    const series = [];
    runs.forEach((r, i) => def.fields.forEach((f, k) => series.push({
      label: `${r.name} ${f}`, stroke: COLORS[i % COLORS.length], width: k ? 1.5 : 1, dash: k ? [6, 4] : undefined,
      spanGaps: true, points: { show: k > 0 },
    })));
    charts.push({ def, plot: makePlot(el, def.title, series, joined(def)) });
  }
  rankCharts.clear();
  document.getElementById('rank-charts').textContent = '';
  runs.forEach((r, i) => updateRankChart(r, i));
  dirty = true;
}

function joined(def) {
  const tables = runs.map((r) => tableOf(r, def));
  return tables.length === 1 ? tables[0] : uPlot.join(tables);
}

/** The per-rank step-time fields of a distributed run; none for one process (no rank to compare). */
function rankFields(r) {
  const fields = Object.keys(r.series).filter((f) => /^rankStepS\.\d+$/.test(f)).sort((a, b) => +a.split('.')[1] - +b.split('.')[1]);
  return fields.length > 1 ? fields : [];
}

const MAX_RANK_LINES = 16;

/**
 * Per-rank step times of one run: one line per rank, so a straggler stands above the rest; past
 * MAX_RANK_LINES ranks, the fastest, median and slowest rank of each step (the slowest's rank in
 * the legend's hover value is not kept; the card names the slowest rank of the last step).
 */
function rankData(r) {
  const fields = rankFields(r);
  if (fields.length <= MAX_RANK_LINES) return [r.x, ...fields.map((f) => r.series[f])];
  const lo = [], mid = [], hi = [];
  for (let k = 0; k < r.x.length; k++) {
    const v = fields.map((f) => r.series[f][k]).filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
    lo.push(v.length ? v[0] : null);
    mid.push(v.length ? v[v.length >> 1] : null);
    hi.push(v.length ? v[v.length - 1] : null);
  }
  return [r.x, lo, mid, hi];
}

function updateRankChart(r, i) {
  const fields = rankFields(r);
  const have = rankCharts.get(i);
  if (!fields.length) return;
  if (!have || have.ranks !== fields.length) {
    if (have) have.plot.root.parentElement.remove();
    const series = fields.length <= MAX_RANK_LINES
      ? fields.map((f, k) => ({ label: `rank ${k}`, stroke: `hsl(${(k * 137) % 360} 60% 45%)`, width: 1, spanGaps: true }))
      : [['fastest rank', '#2ca02c'], ['median rank', '#1f77b4'], ['slowest rank', '#d62728']].map(([label, stroke]) => ({ label, stroke, width: 1, spanGaps: true }));
    const plot = makePlot(document.getElementById('rank-charts'), `${r.name}: step time per rank (s), ${fields.length} ranks`, series, rankData(r), i);
    rankCharts.set(i, { plot, ranks: fields.length });
  }
}

/** The slowest rank of the last step and its time over the median, or null. */
function slowestRank(r) {
  const fields = rankFields(r);
  const k = r.x.length - 1;
  if (!fields.length || k < 0) return null;
  const v = fields.map((f) => r.series[f][k]);
  const ok = v.filter((x) => x !== null);
  if (!ok.length) return null;
  const worst = v.indexOf(Math.max(...ok));
  return `rank ${worst}: ${fmt(v[worst], 3)} s, ${fmt(v[worst] / median(ok), 3)}× the median`;
}

function median(xs) {
  const s = xs.filter((v) => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
}
const recent = (r, f, n = 20) => median((r.series[f] || []).slice(-n));
const last = (r, f) => {
  const s = r.series[f] || [];
  for (let k = s.length - 1; k >= 0; k--) if (s[k] !== null) return s[k];
  return null;
};

function renderCards() {
  const el = document.getElementById('runs');
  el.textContent = '';
  runs.forEach((r, i) => {
    const card = document.createElement('div');
    card.className = 'run';
    card.style.setProperty('--c', COLORS[i % COLORS.length]);
    const tc = (r.config && r.config.trainConfig) || {};
    const mc = (r.config && r.config.modelConfig) || {};
    const est = r.estimate || null;
    const tps = recent(r, 'tokensPerSec');
    const tokensPerStep = tc.globalBatch && tc.seqLen ? tc.globalBatch * tc.seqLen : null;
    const rows = [
      ['step', r.rows === 0 ? 'waiting for metrics.jsonl' : `${fmt(r.x[r.x.length - 1])}${tc.steps ? ` of ${tc.steps}` : ''} (${r.rows} lines${r.partial ? `, loading ${Math.round(r.loaded * 100)}%` : ''})`],
      ['loss', `${fmt(last(r, 'loss'))} · validation ${fmt(last(r, 'valLoss'))}`],
      ['checkpoints', r.checkpoints.length ? r.checkpoints.join(', ') : 'none yet'],
      ['restarts', r.restarts.length ? r.restarts.join(', ') : 'none'],
    ];
    const slow = slowestRank(r);
    if (slow) rows.push(['slowest rank', slow]);
    const other = (r.events || []).filter((e) => e.event !== 'restart' && e.event !== 'checkpoint');
    if (other.length) rows.push(['events', other.slice(-8).map((e) => `${e.event} at ${e.step}${e.count ? ` (${e.count})` : ''}`).join(', ')]);
    const cfg = r.config
      ? `${mc.name || tc.preset} · ${tc.globalBatch}×${tc.seqLen} tokens/step · lr ${fmt(tc.lr)} · ${tc.dtype} · ${tc.backend}${tc.dp ? ` · dp ${tc.dp}` : ''}`
      : 'appears with the first checkpoint';
    const measured = [
      ['step time (s)', tps && tokensPerStep ? tokensPerStep / tps : recent(r, 'rankStepS.0'), est && est.stepTimeS],
      ['tokens/s', tps, est && est.tokensPerS],
      ['MFU (%)', recent(r, 'mfu') === null ? null : recent(r, 'mfu') * 100, est && est.mfu !== undefined ? est.mfu * 100 : null],
      ['memory (GiB)', recent(r, 'rssBytes') === null ? null : recent(r, 'rssBytes') / GiB, est && est.memoryGiB ? est.memoryGiB.total : null],
    ];
    const estHead = est ? (est.error ? `planner (${est.chips} × ${est.chip}): ${est.error}` : `planner: ${est.chips} × ${est.chip}`) : 'planner: pass --chip ID to compare';
    card.innerHTML = `<h2></h2><div class="note dir"></div><table class="facts"></table><div class="note cfg"></div>
      <table class="cmp"><tr><th></th><th>measured (median of last 20)</th><th class="est"></th></tr></table>`;
    card.querySelector('h2').textContent = r.name;
    card.querySelector('.dir').textContent = r.dir;
    card.querySelector('.cfg').textContent = cfg;
    card.querySelector('.est').textContent = estHead;
    const addRow = (table, cells) => {
      const tr = table.insertRow();
      cells.forEach((v, k) => (tr.appendChild(document.createElement(k ? 'td' : 'th')).textContent = v));
    };
    for (const [k, v] of rows) addRow(card.querySelector('.facts'), [k, v]);
    for (const [k, m, p] of measured) addRow(card.querySelector('.cmp'), [k, fmt(m), est && !est.error ? fmt(p) : '']);
    el.appendChild(card);
  });
}

function countPoints() {
  let n = 0;
  const add = (data) => data.slice(1).forEach((s) => s.forEach((v) => (n += v === null || v === undefined ? 0 : 1)));
  for (const c of charts) add(c.plot.data);
  for (const { plot } of rankCharts.values()) add(plot.data);
  return n;
}

function redraw() {
  if (dirty) {
    dirty = false;
    for (const c of charts) c.plot.setData(joined(c.def));
    runs.forEach((r, i) => {
      updateRankChart(r, i);
      const rc = rankCharts.get(i);
      if (rc) rc.plot.setData(rankData(r));
    });
    renderCards();
    document.body.dataset.points = String(countPoints());
  }
  requestAnimationFrame(redraw);
}

function connect() {
  const es = new EventSource('/events');
  es.addEventListener('runs', (e) => {
    const m = JSON.parse(e.data);
    runs.length = m.count;
    status.textContent = `${m.count} run(s), live`;
    status.className = '';
  });
  es.addEventListener('snapshot', (e) => {
    const s = JSON.parse(e.data);
    const fresh = !runs[s.run];
    runs[s.run] = s;
    if (runs.filter(Boolean).length === runs.length && (fresh || charts.length === 0 || charts[0].plot.series.length !== 1 + runs.length * CHARTS[0].fields.length)) rebuildCharts();
    dirty = true;
  });
  es.addEventListener('append', (e) => {
    const a = JSON.parse(e.data);
    const r = runs[a.run];
    if (!r) return;
    const n = r.x.length;
    r.x.push(...a.x);
    for (const [f, vs] of Object.entries(a.series)) {
      if (!r.series[f]) r.series[f] = new Array(n).fill(null);
      r.series[f].push(...vs);
    }
    for (const f of Object.keys(r.series)) if (!a.series[f]) r.series[f].push(...a.x.map(() => null));
    r.rows = a.rows;
    r.checkpoints = a.checkpoints;
    r.restarts = a.restarts;
    r.events = a.events;
    dirty = true;
    if (r.x.length > MAX_POINTS) {
      es.close();
      connect();
    }
  });
  es.addEventListener('loading', (e) => {
    const m = JSON.parse(e.data);
    if (runs[m.run]) (runs[m.run].loaded = m.loaded), (dirty = true);
  });
  es.addEventListener('info', (e) => {
    const m = JSON.parse(e.data);
    if (runs[m.run]) Object.assign(runs[m.run], m), (dirty = true);
  });
  es.onerror = () => {
    status.textContent = 'disconnected (is zili dashboard still running?) — retrying';
    status.className = 'error';
  };
}

connect();
requestAnimationFrame(redraw);
