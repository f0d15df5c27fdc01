// Benchmark of the planner: layout-search time for dense-1t and moe-1t on Ascend 910B (4,096 to
// 16,384 chips), and the validation table of docs/planner.md (published runs, predicted vs published
// MFU, plus out-of-sample checks). Run: npx tsc -p . && node dist/bench/plan-search.js [--json]
import { cpus } from 'node:os';
import { checkRun, checkRuns, errorStats, fitEfficiency, type RunCheck } from '../src/plan/calibrate.js';
import { DEFAULT_EFFICIENCY } from '../src/plan/efficiency.js';
import { catalogChip, resolveChip } from '../src/plan/hardware.js';
import { describeLayout } from '../src/plan/layout.js';
import { loadModel } from '../src/plan/model.js';
import { PUBLISHED_RUNS } from '../src/plan/published-runs.js';
import { searchLayouts } from '../src/plan/search.js';

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function searchTimes(): { model: string; chips: number; ms: number; considered: number; best: string }[] {
  const chip = resolveChip(catalogChip('ascend-910b'));
  const out = [];
  for (const name of ['dense-1t', 'moe-1t']) {
    const model = loadModel(name);
    searchLayouts({ model, chip, chips: 1024, globalBatch: 4096 }); // warm up the JIT
    for (const chips of [4096, 8192, 16384]) {
      const runs = [0, 1, 2].map(() => {
        const t0 = performance.now();
        const r = searchLayouts({ model, chip, chips, globalBatch: 4096 });
        return { ms: performance.now() - t0, r };
      });
      const ms = Math.min(...runs.map((x) => x.ms));
      const r = runs[0]!.r;
      out.push({ model: name, chips, ms, considered: r.considered, best: describeLayout(r.ranked[0]!.layout) });
    }
  }
  return out;
}

function row(c: RunCheck, loo: RunCheck): string {
  const r = c.run;
  const layout = `tp${r.tp} pp${r.pp} dp${r.dp}, mb ${r.microBatch}, ${r.recompute}${r.sequenceParallel ? ' + SP' : ''}`;
  return `| ${r.paper === 'narayanan2021' ? 'Narayanan 2021' : 'Korthikanti 2022'} | ${r.params} | ${r.gpus} | ${layout} | ${r.stepTimeS} | ${c.predictedStepS.toFixed(2)} | ${pct(r.mfu)} | ${pct(c.predictedMfu)} | ${(c.relError * 100).toFixed(1)}% | ${(loo.relError * 100).toFixed(1)}% |`;
}

function validation(): string[] {
  const checks = checkRuns();
  const loo = PUBLISHED_RUNS.map((r) => checkRun(r, fitEfficiency(PUBLISHED_RUNS.filter((x) => x !== r))));
  const lines = [
    '| paper | model | GPUs | published layout | published s/iter | predicted s/iter | published MFU | predicted MFU | rel. error | leave-one-out error |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...checks.map((c, i) => row(c, loo[i]!)),
  ];
  const st = errorStats(checks);
  const sl = errorStats(loo);
  const nar = PUBLISHED_RUNS.filter((r) => r.paper === 'narayanan2021');
  const kor = PUBLISHED_RUNS.filter((r) => r.paper === 'korthikanti2022');
  const kFromN = errorStats(checkRuns(kor, fitEfficiency(nar)));
  const nFromK = errorStats(checkRuns(nar, fitEfficiency(kor)));
  lines.push('', `defaults ${JSON.stringify(DEFAULT_EFFICIENCY)}`,
    `all 14 with the defaults: median ${pct(st.median)}, worst ${pct(st.worst)}`,
    `leave-one-out: median ${pct(sl.median)}, worst ${pct(sl.worst)}`,
    `fit on Narayanan, predict Korthikanti: median ${pct(kFromN.median)}, worst ${pct(kFromN.worst)}`,
    `fit on Korthikanti, predict Narayanan: median ${pct(nFromK.median)}, worst ${pct(nFromK.worst)}`);
  return lines;
}

const times = searchTimes();
console.log(`machine: ${cpus()[0]?.model} x ${cpus().length}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
console.log('| model | chips | layouts considered | best layout | search ms (best of 3) |\n|---|---|---|---|---|');
for (const t of times) console.log(`| ${t.model} | ${t.chips} | ${t.considered} | ${t.best} | ${t.ms.toFixed(0)} |`);
console.log('');
for (const l of validation()) console.log(l);
if (process.argv.includes('--json')) console.log(JSON.stringify({ searchMs: Object.fromEntries(times.map((t) => [`${t.model}@${t.chips}`, Math.round(t.ms)])) }));
