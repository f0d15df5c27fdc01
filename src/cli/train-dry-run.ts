// `zili train --backend meta --dry-run-rank R`: prints the dry run of one rank (src/train/dry-run.ts)
// — its peak memory, FLOPs and bytes sent per step per mesh dimension, each beside the planner's
// prediction for the same layout and stage (src/train/dry-run-plan.ts) — and with --json ends with
// {"peakMemoryGiB", "flopsPerStep", "bytesSent": {tp, dp, pp, ep, cp}}.
import { type DryRunResult, dryRunLayout, dryRunRank } from '../train/dry-run.js';
import type { TrainConfig } from '../train/train-config.js';
import { formatBytes, formatPercent } from '../train/format.js';
import { planForRank, type RankPlan } from '../train/dry-run-plan.js';

const GiB = 2 ** 30;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${formatPercent(x)}`;

/** The JSON line of a dry run (the contract of issue 9 item 6). */
export function dryRunJson(r: DryRunResult): { peakMemoryGiB: number; flopsPerStep: number; bytesSent: Record<string, number> } {
  return { peakMemoryGiB: r.peakBytes / GiB, flopsPerStep: r.flopsPerStep, bytesSent: r.bytesSent };
}

export function formatDryRun(c: TrainConfig, r: DryRunResult, plan: RankPlan): string[] {
  const m = r.mesh;
  const p = plan.memory;
  const planned = (d: string) => (d in plan.volume ? ` (planner ${formatBytes(plan.volume[d as keyof RankPlan['volume']])})` : '');
  const flops = (n: number) => (n >= 1e15 ? `${(n / 1e15).toFixed(2)} PFLOP` : n >= 1e12 ? `${(n / 1e12).toFixed(2)} TFLOP` : `${(n / 1e9).toFixed(2)} GFLOP`);
  const lines = [
    `dry run: rank ${r.rank} of tp${m.tp} cp${m.cp} dp${m.dp} pp${m.pp}${m.ep > 1 ? ` ep${m.ep}` : ''} (${m.world} ranks), at tp ${r.coords.tp} cp ${r.coords.cp} dp ${r.coords.dp} pp ${r.coords.pp}; ` +
      `model '${c.model.name}', ${r.microBatches} micro-batch(es) of ${c.microBatch} x ${c.seqLen} tokens, ${c.dtype}, ZeRO-${c.zero}, meta backend`,
    `  held between steps  ${formatBytes(r.heldBytes)} (weights and optimizer state)`,
    `  peak memory         ${formatBytes(r.peakBytes)} (${(r.peakBytes / GiB).toFixed(2)} GiB); planner for pp stage ${r.coords.pp}: zili's program ${formatBytes(plan.program.peak)} ` +
      `at ${plan.program.peakPhase}, measured ${signed(r.peakBytes / plan.program.peak - 1)}; plain sum ${formatBytes(plan.stateAndActivations)} ` +
      `(weights ${formatBytes(p.weights)}, grads ${formatBytes(p.grads)}, optimizer ${formatBytes(p.optimizer)}, activations ${formatBytes(p.activations)}; +${formatBytes(p.other)} runtime reserve), ` +
      `measured ${signed(r.peakBytes / plan.stateAndActivations - 1)}`,
    `  FLOPs per step      ${flops(r.flopsPerStep)} (GEMM ${flops(r.flops.matmul)}, attention ${flops(r.flops.attention)}, other ${flops(r.flops.other)}); ` +
      `planner ${flops(plan.flops)} (matmuls and attention), GEMM + attention ${signed((r.flops.matmul + r.flops.attention) / plan.flops - 1)}`,
    `  bytes sent per step ${Object.entries(r.bytesSent).map(([d, b]) => `${d} ${formatBytes(b)}${planned(d)}`).join(', ')}`,
  ];
  for (const e of r.collectives) lines.push(`    ${e.dimension} ${e.op}: ${e.calls} call(s), ${formatBytes(e.bytes)}`);
  return lines;
}

export async function dryRunCommand(c: TrainConfig, rank: number, o: { json: boolean }): Promise<number> {
  const layout = dryRunLayout(c);
  const r = await dryRunRank(c, rank, layout);
  for (const l of formatDryRun(c, r, planForRank(c, layout, r.coords.pp))) console.log(l);
  if (o.json) console.log(JSON.stringify(dryRunJson(r)));
  return 0;
}
