// The 1T dry runs of bench/RESULTS.md: for the planner's recommended layouts of dense-1t and moe-1t on
// 8,192 Ascend 910B (`zili plan --model NAME --chip ascend-910b --chips 8192`) and for the parts of them
// zili executes today, one rank per pipeline stage (first, middle, last) is dry-run on the meta
// backend with the shape-only communicator (src/train/dry-run.ts, what `zili train --dry-run-rank`
// runs) and set beside the planner: its memory per chip for that stage (src/plan/memory.ts, at zili's
// training precision: f32 weights, gradients and AdamW moments, f32 activations) and its bytes per step
// per dimension (src/plan/comm-volume.ts). A layout not executable yet prints the refusal and the
// planner's numbers (also at Megatron's bf16 mixed precision, the plan's own). Markdown on stdout.
//   npx tsc -p . && node dist/bench/dry-run-1t.js [--quick]
import { ConfigError } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { BYTES, GiB, stageMemory } from '../src/plan/memory.js';
import { planModel } from '../src/plan/model.js';
import { makeTrainConfig } from '../src/train/train-config.js';
import { type DryRunLayout, dryRunRank } from '../src/train/dry-run.js';
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

const quick = process.argv.includes('--quick');
const ROWS: Row[] = [
  { model: 'dense-1t', what: 'recommended', tp: 8, pp: 32, vpp: 4, dp: 32, cp: 1, ep: 1, zero: 1, sp: true, globalBatch: 8192 },
  { model: 'dense-1t', what: 'its pipeline', tp: 1, pp: 32, vpp: 4, dp: 1, cp: 1, ep: 1, zero: 0, sp: false, globalBatch: 256 },
  { model: 'dense-1t', what: 'its tp x dp', tp: 8, pp: 1, vpp: 1, dp: 32, cp: 1, ep: 1, zero: 0, sp: true, globalBatch: 256 },
  { model: 'dense-1t', what: 'its dp, ZeRO-1', tp: 1, pp: 1, vpp: 1, dp: 32, cp: 1, ep: 1, zero: 1, sp: false, globalBatch: 32 },
  { model: 'moe-1t', what: 'recommended', tp: 1, pp: 32, vpp: 1, dp: 32, cp: 8, ep: 8, zero: 1, sp: false, globalBatch: 4096 },
  { model: 'moe-1t', what: 'its dp, ZeRO-1', tp: 1, pp: 1, vpp: 1, dp: 32, cp: 1, ep: 1, zero: 1, sp: false, globalBatch: 32 },
];

const gib = (b: number) => (b / GiB).toFixed(1);
const pct = (a: number, b: number) => `${a >= b ? '+' : ''}${(((a - b) / b) * 100).toFixed(1)}%`;

console.log('| model | layout | rank (pp stage) | dry run peak GiB | planner GiB (state + activations) | dry run vs planner | planner total with reserve (bf16 plan) | bytes sent per step, dry run / planner |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of ROWS) {
  if (quick && r.pp === 1 && r.tp === 1) continue;
  const config = preset(r.model);
  const degrees: DryRunLayout = { tp: r.tp, pp: r.pp, dp: r.dp, ep: r.ep, cp: r.cp };
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
  for (const stage of stages) {
    const rank = stage * r.tp * r.cp * r.dp;
    const plan = planForRank(c, stage);
    const planState = plan.stateAndActivations;
    const planBf16 = stageMemory(bf16, plan.layout, stage, BYTES);
    const vol = plan.volume;
    let measured = 'refused', diff = '', bytes: string;
    const dims = (['tp', 'dp', 'pp', 'ep', 'cp'] as const).filter((d) => (d === 'tp' ? r.tp : d === 'pp' ? r.pp : d === 'dp' ? r.dp : d === 'ep' ? r.ep : r.cp) > 1);
    try {
      const t0 = performance.now();
      const d = await dryRunRank(c, rank, degrees);
      measured = gib(d.peakBytes);
      diff = pct(d.peakBytes, planState);
      bytes = dims.map((k) => `${k} ${formatBytes(d.bytesSent[k]!)} / ${formatBytes(vol[k])}`).join(', ');
      console.error(`${r.model} ${name} rank ${rank}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      measured = `refused: ${e.message}`;
      bytes = dims.map((k) => `${k} — / ${formatBytes(vol[k])}`).join(', ');
    }
    console.log(`| ${r.model} | ${name} | ${rank} (${stage}) | ${measured} | ${gib(planState)} | ${diff} | ${gib(plan.memory.total)} (${gib(planBf16.total)}) | ${bytes} |`);
  }
}
