// Benchmark of the planner: layout-search time for dense-1t and moe-1t on Ascend 910B (4,096 to
// 16,384 chips), and the validation table of docs/planner.md (published runs, predicted vs published
// MFU, plus out-of-sample checks). Run: npx tsc -p . && node dist/bench/plan-search.js [--json]
import { cpus } from 'node:os';
import { fitEfficiency } from '../src/plan/calibrate.js';
import { DEFAULT_EFFICIENCY, NEUTRAL_EFFICIENCY } from '../src/plan/efficiency.js';
import { sourcesMarkdown, validate, validationMarkdown } from '../src/plan/validation.js';
import { catalogChip, resolveChip } from '../src/plan/hardware.js';
import { describeLayout } from '../src/plan/layout.js';
import { loadModel } from '../src/plan/model.js';
import { PUBLISHED_RUNS } from '../src/plan/published-runs.js';
import { searchLayouts } from '../src/plan/search.js';

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

function validation(): string[] {
  const fitted = fitEfficiency(PUBLISHED_RUNS, NEUTRAL_EFFICIENCY);
  if (process.argv.includes('--sources')) return [sourcesMarkdown()];
  return [validationMarkdown(validate()), '', `efficiencies fitted on all runs: ${JSON.stringify(fitted)}`, `defaults in efficiency.ts: ${JSON.stringify(DEFAULT_EFFICIENCY)}`];
}

const times = process.argv.includes('--validation-only') || process.argv.includes('--sources') ? [] : searchTimes();
console.log(`machine: ${cpus()[0]?.model} x ${cpus().length}, node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
console.log('| model | chips | layouts considered | best layout | search ms (best of 3) |\n|---|---|---|---|---|');
for (const t of times) console.log(`| ${t.model} | ${t.chips} | ${t.considered} | ${t.best} | ${t.ms.toFixed(0)} |`);
console.log('');
for (const l of validation()) console.log(l);
if (process.argv.includes('--json')) console.log(JSON.stringify({ searchMs: Object.fromEntries(times.map((t) => [`${t.model}@${t.chips}`, Math.round(t.ms)])) }));
