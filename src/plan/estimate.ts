// One layout's prediction: memory per chip, step time, MFU/HFU, throughput, days and energy for a
// token budget, and reliability; plus the planner-io JSON output.
import { type ClusterParams, DEFAULT_CLUSTER } from './cluster.js';
import { DEFAULT_EFFICIENCY, type Efficiency, MFU_BAND } from './efficiency.js';
import { hardwareFlopsPerToken, modelFlopsPerToken } from './flops.js';
import type { ResolvedChip } from './hardware.js';
import { checkLayout, type Layout } from './layout.js';
import { GiB, type MemoryBreakdown, memoryPerChip } from './memory.js';
import type { PlanModel } from './model.js';
import { type Reliability, reliability } from './reliability.js';
import type { Stack } from './stack.js';
import { type LayerTimeCache, type StepTime, stepTime } from './step-time.js';

export interface EstimateInput {
  model: PlanModel;
  chip: ResolvedChip;
  chips: number;
  layout: Layout;
  cluster?: ClusterParams;
  efficiency?: Efficiency;
  /** software stack (default megatron) */
  stack?: Stack;
  /** tokens to train, for days and energy (default 10T) */
  tokens?: number;
  /** per-layer time cache shared by a search (same model, chip and efficiency) */
  cache?: LayerTimeCache;
}

export interface Estimate {
  layout: Layout;
  chips: number;
  memory: MemoryBreakdown;
  /** memory limit per chip, bytes */
  memoryLimit: number;
  fits: boolean;
  time: StepTime;
  stepTimeS: number;
  tokensPerS: number;
  mfu: number;
  /** the honest band around mfu: the validation set's 90th-percentile leave-one-source-out error */
  mfuLow: number;
  mfuHigh: number;
  hfu: number;
  tflopsPerChip: number;
  tokens: number;
  /** days of pure training for `tokens` (no interruptions) */
  days: number;
  /** days including checkpoints, lost work and restarts (days / goodput) */
  wallDays: number;
  /** chips' energy at board power over wallDays times the cluster's power overhead, MWh (null when TDP unknown) */
  energyMWh: number | null;
  reliability: Reliability;
}

/** Prediction without validity checks (the search calls it on layouts it built valid). */
export function estimateUnchecked(inp: EstimateInput): Estimate {
  const { model, chip, chips, layout } = inp;
  const eff = inp.efficiency ?? DEFAULT_EFFICIENCY;
  const cluster = inp.cluster ?? DEFAULT_CLUSTER;
  const tokens = inp.tokens ?? 10e12;
  const memory = memoryPerChip(model, layout);
  const memoryLimit = chip.usableMemoryGiB * GiB;
  const time = stepTime(model, layout, chip, eff, inp.cache, inp.stack ?? 'megatron');
  const tokensPerStep = layout.globalBatch * model.config.seqLen;
  const tokensPerS = tokensPerStep / time.total;
  const peak = chips * chip.peakTflops * 1e12;
  const mfu = (modelFlopsPerToken(model.config) * tokensPerS) / peak;
  const hfu = (hardwareFlopsPerToken(model.config, layout.recompute, layout.attention) * tokensPerS) / peak;
  const days = tokens / tokensPerS / 86400;
  const rel = reliability(chips, model.params.total, cluster);
  const wallDays = rel.goodput > 0 ? days / rel.goodput : Infinity;
  const energyMWh = chip.tdpW === null ? null : (chips * chip.tdpW * wallDays * 24 * cluster.powerOverhead) / 1e6;
  return {
    layout, chips, memory, memoryLimit, fits: memory.total <= memoryLimit, time, stepTimeS: time.total, tokensPerS, mfu,
    mfuLow: mfu * (1 - MFU_BAND), mfuHigh: mfu * (1 + MFU_BAND), hfu,
    tflopsPerChip: (hfu * peak) / chips / 1e12, tokens, days, wallDays, energyMWh, reliability: rel,
  };
}

/** Prediction for one layout; throws a PlanError saying how to fix an invalid layout. */
export function estimate(inp: EstimateInput): Estimate {
  checkLayout(inp.model.config, inp.layout, inp.chips);
  return estimateUnchecked(inp);
}

const r = (x: number, digits = 3) => Number(x.toPrecision(digits));

/** The planner-io output object (docs/planner-io.md). */
export function toPlannerIo(e: Estimate): Record<string, unknown> {
  const g = (b: number) => r(b / GiB, 3);
  return {
    stepTimeS: r(e.stepTimeS, 4),
    tokensPerS: r(e.tokensPerS, 4),
    mfu: r(e.mfu, 3),
    mfuLow: r(e.mfuLow, 3),
    mfuHigh: r(e.mfuHigh, 3),
    hfu: r(e.hfu, 3),
    tflopsPerChip: r(e.tflopsPerChip, 4),
    bubbleFraction: r(e.time.bubbleFraction, 3),
    fits: e.fits,
    memoryGiB: {
      total: g(e.memory.total), weights: g(e.memory.weights), grads: g(e.memory.grads), optimizer: g(e.memory.optimizer),
      activations: g(e.memory.activations), other: g(e.memory.other), limit: g(e.memoryLimit),
    },
    days: r(e.days, 4),
    interruptionsPerWeek: r(e.reliability.interruptionsPerWeek, 3),
    checkpointIntervalMin: r(e.reliability.checkpointIntervalS / 60, 3),
    goodput: r(e.reliability.goodput, 3),
  };
}
