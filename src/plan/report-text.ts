// Plain-text report of a plan: the ranked layouts, the memory and time breakdown of the best ones,
// and the run-level answers (days, energy, interruptions, checkpoint interval).
import type { Estimate } from './estimate.js';
import { ASCEND_PEAK_CAVEAT, isAscend, type ResolvedChip } from './hardware.js';
import { describeLayout } from './layout.js';
import { GiB } from './memory.js';
import type { PlanModel } from './model.js';

export const fmtGiB = (b: number) => (b / GiB).toFixed(1);

export function fmtCount(x: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
  for (const [v, u] of units) {
    if (Math.abs(x) < v) continue;
    const s = (x / v).toFixed(x / v >= 100 ? 0 : 2);
    return `${s.includes('.') ? s.replace(/\.?0+$/, '') : s}${u}`;
  }
  return String(x);
}

export function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return 'never';
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n');
}

export function layoutCells(e: Estimate): string[] {
  const l = e.layout;
  return [describeLayout(l), String(l.microBatch), String(l.zero), l.recompute, fmtGiB(e.memory.total), e.stepTimeS.toFixed(2),
    `${(e.mfu * 100).toFixed(1)}%`, fmtCount(e.tokensPerS), e.days.toFixed(1)];
}

export function rankedTable(list: Estimate[]): string {
  const head = ['layout', 'mbs', 'zero', 'recompute', 'GiB/chip', 'step s', 'MFU', 'tokens/s', 'days'];
  return table([['#', ...head], ...list.map((e, i) => [String(i + 1), ...layoutCells(e)])]);
}

export function memoryLine(e: Estimate): string {
  const m = e.memory;
  return `memory per chip ${fmtGiB(m.total)} of ${fmtGiB(e.memoryLimit)} GiB: weights ${fmtGiB(m.weights)}, grads ${fmtGiB(m.grads)}, ` +
    `optimizer ${fmtGiB(m.optimizer)}, activations ${fmtGiB(m.activations)}, other ${fmtGiB(m.other)}` +
    (m.stage > 0 ? ` (last pipeline stage)` : ' (first pipeline stage)');
}

export function timeLine(e: Estimate): string {
  const p = e.time.parts;
  const items: [string, number][] = [['GEMM', p.compute], ['attention', p.attention], ['elementwise', p.elementwise], ['TP/SP', p.tp],
    ['CP', p.cp], ['EP all-to-all', p.ep], ['pipeline p2p', p.p2p], ['bubble', p.bubble], ['DP reduce (exposed)', p.dp], ['ZeRO', p.zero], ['optimizer', p.optimizer]];
  const shown = items.filter(([, v]) => v > 0.0005 * e.stepTimeS).map(([k, v]) => `${k} ${v.toFixed(2)}`);
  return `step ${e.stepTimeS.toFixed(2)} s (${e.time.microBatches} micro-batches): ${shown.join(', ')}`;
}

/**
 * A warning when interruptions eat the run: at goodput 0 the job never finishes (Infinity days), and
 * under 50% more time goes to failures than to training. Says which figures would change it.
 */
export function goodputWarning(e: Estimate): string | null {
  const r = e.reliability;
  if (r.goodput >= 0.5) return null;
  const why = `${r.interruptionsPerWeek.toFixed(0)} interruptions per week (one every ${fmtDuration(r.mtbfHours * 3600)}) against a ${fmtDuration(r.checkpointWriteS)} checkpoint write`;
  const fix = 'fewer chips, faster checkpoint storage (--storage-gbs), a shorter restart (--restart-min) or a lower failure rate (--failures-per-chip-year)';
  return r.goodput <= 0
    ? `WARNING: this run never finishes (goodput 0%): ${why} and the restart time leave no time to train; it needs ${fix}.`
    : `WARNING: goodput only ${(r.goodput * 100).toFixed(0)}%: ${why}; consider ${fix}.`;
}

export function runLines(e: Estimate, chip: ResolvedChip): string[] {
  const r = e.reliability;
  const out = [
    `${fmtCount(e.tokens)} tokens: ${e.days.toFixed(1)} days of training at ${fmtCount(e.tokensPerS)} tokens/s (MFU ${(e.mfu * 100).toFixed(1)}%, honest band ${(e.mfuLow * 100).toFixed(0)}-${(e.mfuHigh * 100).toFixed(0)}%, HFU ${(e.hfu * 100).toFixed(1)}%); ` +
      `${Number.isFinite(e.wallDays) ? `${e.wallDays.toFixed(1)} days` : 'never finishing'} wall-clock at goodput ${(r.goodput * 100).toFixed(1)}%`,
    `reliability: ${r.interruptionsPerWeek.toFixed(1)} interruptions per week (MTBF ${r.mtbfHours.toFixed(1)} h); checkpoint ${r.checkpointGB.toFixed(0)} GB ` +
      `written in ${fmtDuration(r.checkpointWriteS)}; checkpoint every ${fmtDuration(r.checkpointIntervalS)} (Young/Daly)`,
    e.energyMWh === null
      ? `energy: unknown (no board power for ${chip.id}; set tdpW)`
      : `energy: ${(e.energyMWh / 1000).toFixed(2)} GWh for the chips at ${chip.tdpW} W board power` ,
  ];
  const w = goodputWarning(e);
  if (w) out.push(w);
  return out;
}

export interface TextReportInput {
  model: PlanModel;
  chip: ResolvedChip;
  chips: number;
  globalBatch: number;
  ranked: Estimate[];
  reason: string;
  considered: number;
  fitting: number;
  elapsedMs: number;
  details?: number;
}

export function chipLine(chip: ResolvedChip): string {
  return `chip ${chip.id}: ${chip.peakTflops} TFLOP/s bf16, ${chip.memoryGiB} GiB (${chip.usableMemoryGiB} usable), ${chip.memoryBandwidthTBs} TB/s, ` +
    `${chip.chipsPerNode} per node at ${chip.intraNodeGBs} GB/s, ${chip.interNodeGBs} GB/s between nodes [${chip.confidence}: ${chip.source}]` +
    (chip.assumed?.length ? `\n  assumed, not published: ${chip.assumed.join(', ')}` : '');
}

export function textReport(r: TextReportInput): string {
  const c = r.model.config;
  const p = r.model.params;
  const lines = [
    `model ${c.name}: ${fmtCount(p.total)} parameters (${fmtCount(p.active)} active per token), ${c.layers} layers, d_model ${c.dModel}, seq ${c.seqLen}`,
    chipLine(r.chip),
    `${r.chips} chips, global batch ${r.globalBatch} sequences (${fmtCount(r.globalBatch * c.seqLen)} tokens); ${r.considered} valid layouts, ${r.fitting} fit in memory (searched in ${r.elapsedMs.toFixed(0)} ms)`,
  ];
  if (isAscend(r.chip)) lines.push(`note: MFU here divides by ${r.chip.peakTflops} TFLOP/s per chip. ${ASCEND_PEAK_CAVEAT}`);
  lines.push('', rankedTable(r.ranked), '', `why: ${r.reason}`);
  const best = r.ranked[0]!;
  for (const [i, e] of r.ranked.slice(0, r.details ?? 3).entries()) {
    lines.push('', `#${i + 1} ${describeLayout(e.layout)}, micro-batch ${e.layout.microBatch}, ZeRO-${e.layout.zero}, ${e.layout.recompute} recompute, ${e.layout.attention} attention${e.layout.sequenceParallel ? ', SP' : ''}`);
    lines.push(`  ${memoryLine(e)}`, `  ${timeLine(e)}`);
  }
  lines.push('', 'best layout:', ...runLines(best, r.chip).map((s) => `  ${s}`));
  return lines.join('\n');
}
