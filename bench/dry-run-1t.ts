// The 1T dry runs of bench/RESULTS.md: for the planner's recommended layouts of dense-1t and moe-1t on
// 8,192 Ascend 910B (`zili plan --model NAME --chip ascend-910b --chips 8192`) and for the parts of them
// zili executes today, one rank per pipeline stage (first, middle, last) is dry-run on the meta
// backend with the shape-only communicator (src/train/dry-run.ts, what `zili train --dry-run-rank`
// runs) and set beside the planner (src/train/dry-run-plan.ts) at zili's training precision (f32
// weights, gradients, AdamW moments and activations): its model of zili's program for that stage
// (src/plan/program-memory.ts: what lives at the same time, phase by phase — the number the dry run
// must be within 10% of), the plain sum of state and activations (src/plan/memory.ts, Megatron's
// program), the rank's FLOPs per step (src/plan/rank-flops.ts) and its bytes per step per dimension
// (src/plan/comm-volume.ts). A layout not executable yet prints the refusal and the planner's numbers
// (also at Megatron's bf16 mixed precision, the plan's own). Markdown on stdout, timings on stderr.
//   npx tsc -p tsconfig.json && node dist/bench/dry-run-1t.js [--quick] [--only dense-1t|moe-1t]
// --quick skips the single-stage data-parallel rows (the slowest); --only keeps one model's rows.
import { ConfigError } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { BYTES, GiB, stageMemory } from '../src/plan/memory.js';
import { planModel } from '../src/plan/model.js';
import { makeTrainConfig } from '../src/train/train-config.js';
import { dryRunLayout, dryRunRank } from '../src/train/dry-run.js';
import { planForRank } from '../src/train/dry-run-plan.js';
import { formatBytes } from '../src/train/format.js';

interface Row {
  model: string;
  what: string;
  tp: number;
  pp: number;
  vpp: number;
  dp: number;
  cp: number;
  ep: number;
  zero: 0 | 1 | 2 | 3;
  sp: boolean;
  globalBatch: number;
}

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const one = { tp: 1, pp: 1, vpp: 1, dp: 1, cp: 1, ep: 1, zero: 0 as const, sp: false };
const ROWS: Row[] = [
  { ...one, model: 'dense-1t', what: 'recommended', tp: 8, pp: 32, vpp: 4, dp: 32, zero: 1, sp: true, globalBatch: 8192 },
  { ...one, model: 'dense-1t', what: 'its pipeline', pp: 32, vpp: 4, globalBatch: 256 },
  { ...one, model: 'dense-1t', what: 'its tp x dp', tp: 8, dp: 32, sp: true, globalBatch: 256 },
  { ...one, model: 'dense-1t', what: 'its dp, ZeRO-1', dp: 32, zero: 1, globalBatch: 32 },
  { ...one, model: 'dense-1t', what: 'context parallel x dp', dp: 32, cp: 8, zero: 1, globalBatch: 128 },
  { ...one, model: 'moe-1t', what: 'recommended', pp: 32, dp: 32, cp: 8, ep: 8, zero: 1, globalBatch: 4096 },
  { ...one, model: 'moe-1t', what: 'its pipeline x ep x dp, cp 1', pp: 32, dp: 32, ep: 8, zero: 1, globalBatch: 4096 },
  { ...one, model: 'moe-1t', what: 'its pipeline x cp x dp, ep 1', pp: 32, dp: 32, cp: 8, zero: 1, globalBatch: 4096 },
  { ...one, model: 'moe-1t', what: 'its pipeline x dp, ep 1', pp: 32, dp: 32, zero: 1, globalBatch: 4096 },
  { ...one, model: 'moe-1t', what: 'its ep x dp', dp: 32, ep: 8, globalBatch: 128 },
  { ...one, model: 'moe-1t', what: 'its dp, ZeRO-1', dp: 32, zero: 1, globalBatch: 32 },
];

const gib = (b: number) => (b / GiB).toFixed(1);
const pct = (a: number, b: number) => `${a >= b ? '+' : ''}${(((a - b) / b) * 100).toFixed(1)}%`;
const pflop = (f: number) => `${(f / 1e15).toFixed(2)}`;

console.log(
  '| model | layout | rank (pp stage) | dry run peak GiB | planner, zili\'s program GiB (phase) | dry run vs program | planner, plain sum GiB | dry run vs plain sum | ' +
    'planner total with reserve (bf16 plan) | PFLOP per step, dry run / planner | bytes sent per step, dry run / planner |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of ROWS) {
  if ((quick && r.pp === 1 && r.tp === 1 && r.cp === 1) || (only && r.model !== only)) continue;
  const config = preset(r.model);
  const c = makeTrainConfig(config, 'unused', {
    backend: 'meta', globalBatch: r.globalBatch, microBatch: 1, dp: r.dp, zero: r.zero,
    ...(r.pp > 1 ? { pipeline: { pp: r.pp, vpp: r.vpp, schedule: r.vpp > 1 ? 'interleaved' : '1f1b' } } : {}),
    ...(r.tp > 1 ? { tensorParallel: { tp: r.tp, sp: r.sp } } : {}),
    ...(r.cp > 1 ? { contextParallel: { cp: r.cp } } : {}),
    ...(r.ep > 1 ? { expertParallel: { ep: r.ep } } : {}),
  });
  const bf16 = planModel(config, false, 2);
  const name = `tp${r.tp} pp${r.pp}${r.vpp > 1 ? `x${r.vpp}` : ''} dp${r.dp}${r.cp > 1 ? ` cp${r.cp}` : ''}${r.ep > 1 ? ` ep${r.ep}` : ''}${r.sp ? ' SP' : ''} ZeRO-${r.zero}, ${r.globalBatch} seq/step (${r.what})`;
  const stages = r.pp > 2 ? [0, r.pp / 2, r.pp - 1] : [0];
  const dims = (['tp', 'dp', 'pp', 'ep', 'cp'] as const).filter((d) => r[d] > 1);
  for (const stage of stages) {
    const rank = stage * r.tp * r.cp * r.dp;
    const plan = planForRank(c, dryRunLayout(c), stage);
    const planBf16 = stageMemory(bf16, plan.layout, stage, BYTES);
    const prog = `${gib(plan.program.peak)} (${plan.program.peakPhase})`;
    let cells: string[];
    try {
      const t0 = performance.now();
      const d = await dryRunRank(c, rank, dryRunLayout(c));
      cells = [
        gib(d.peakBytes), prog, pct(d.peakBytes, plan.program.peak), gib(plan.stateAndActivations), pct(d.peakBytes, plan.stateAndActivations),
        `${gib(plan.memory.total)} (${gib(planBf16.total)})`, `${pflop(d.flops.matmul + d.flops.attention)} / ${pflop(plan.flops)}`,
        dims.map((k) => `${k} ${formatBytes(d.bytesSent[k]!)} / ${formatBytes(plan.volume[k])}`).join(', '),
      ];
      console.error(`${r.model} ${name} rank ${rank}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      cells = [
        `refused: ${e.message}`, prog, '', gib(plan.stateAndActivations), '', `${gib(plan.memory.total)} (${gib(planBf16.total)})`, `— / ${pflop(plan.flops)}`,
        dims.map((k) => `${k} — / ${formatBytes(plan.volume[k])}`).join(', '),
      ];
    }
    console.log(`| ${r.model} | ${name} | ${rank} (${stage}) | ${cells.join(' | ')} |`);
  }
}
