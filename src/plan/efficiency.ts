// The few physical efficiencies the cost model is calibrated with (no per-run constants), and the
// achievable-GEMM-efficiency curve. Values were fitted on the published runs (docs/planner.md).
import type { ResolvedChip } from './hardware.js';
import type { Stack } from './stack.js';

/** Chip generations whose achievable GEMM fraction is fitted separately (others use Ampere's). */
export type Generation = 'ampere' | 'hopper' | 'ascend' | 'other';

export function chipGeneration(chip: { id: string; vendor: string }): Generation {
  const id = chip.id.toLowerCase();
  if (/^(a100|a800|a30|a10)/.test(id)) return 'ampere';
  if (/^(h100|h800|h200|h20|gh200)/.test(id)) return 'hopper';
  if (id.startsWith('ascend') || chip.vendor === 'Huawei') return 'ascend';
  return 'other';
}

export interface Efficiency {
  /** fraction of peak a large GEMM reaches on Ampere (and on chips of no fitted generation) */
  gemmMax: number;
  /** Hopper's large-GEMM fraction relative to Ampere's (1 = same) */
  hopperRel: number;
  /**
   * Ascend's large-GEMM fraction relative to Ampere's; null when no Ascend run was fitted: then it is
   * interpolated from the chip's compute/bandwidth balance like any chip of no fitted generation
   */
  ascendRel: number | null;
  /**
   * weight of the memory-traffic term of a GEMM: efficiency = gemmMax / (1 + kappa * (P / BW) * (1/M + 1/N + 1/K)),
   * the roofline of an M x N x K product with P = peak FLOP/s and BW = memory bandwidth (16-bit operands)
   */
  gemmKappa: number;
  /** fraction of memory bandwidth elementwise kernels (norms, softmax, activations, dropout) reach */
  memEff: number;
  /** computation speed of the deepspeed-legacy stack relative to megatron (1 = same) */
  deepspeedRel: number;
  /** computation speed of the overlapped stack relative to megatron (1 = same) */
  overlappedRel: number;
  /** fraction of link bandwidth collectives reach (inside and between nodes); assumed (typical NCCL bus bandwidth), not fitted */
  netEff: number;
  /** fused (flash) attention speed relative to a large GEMM; an assumption, not fitted */
  flashRel: number;
  /** per-step latency of a collective, microseconds; an assumption, not fitted */
  latencyUs: number;
  /** computation slow-down while a collective runs beside it (shared SMs and memory); an assumption, not fitted */
  overlapSlowdown: number;
}

/** Neutral starting point of every fit: the relative factors at 1 (no generation or stack effect). */
export const NEUTRAL_EFFICIENCY: Efficiency = {
  gemmMax: 0.79,
  hopperRel: 1,
  ascendRel: null,
  gemmKappa: 0.51,
  memEff: 0.77,
  deepspeedRel: 1,
  overlappedRel: 1,
  netEff: 0.8,
  flashRel: 0.8,
  latencyUs: 10,
  overlapSlowdown: 1.1,
};

/**
 * Fitted on every run of src/plan/published-runs.ts by fitEfficiency (src/plan/calibrate.ts), rounded;
 * test/plan-published.test.ts refits and checks these stay the fit's answer.
 */
export const DEFAULT_EFFICIENCY: Efficiency = {
  ...NEUTRAL_EFFICIENCY,
  gemmMax: 0.736,
  hopperRel: 0.675,
  ascendRel: 0.776,
  gemmKappa: 0.0502,
  memEff: 0.684,
  deepspeedRel: 0.791,
  overlappedRel: 1.048,
};

/** The fitted parameters, in the order the calibration searches them. */
export const FITTED_KEYS = ['gemmMax', 'gemmKappa', 'memEff', 'hopperRel', 'ascendRel', 'deepspeedRel', 'overlappedRel'] as const;

/**
 * The honest band around a predicted MFU: the 90th percentile of the leave-one-source-out relative
 * errors on the validation set (docs/planner.md); the test recomputes it.
 */
export const MFU_BAND = 0.12;

/** Compute/bandwidth balance (FLOPs per byte) of the reference chips of the two fitted NVIDIA generations. */
const AMPERE_BALANCE = 312 / 2.04;
const HOPPER_BALANCE = 989.5 / 3.35;

/**
 * Large-GEMM fraction relative to Ampere's for a chip of no fitted generation: interpolated (and held
 * within the fitted range) on the chip's FLOPs per byte of memory bandwidth, between Ampere (1) and
 * Hopper (hopperRel). A chip that must feed more FLOPs per byte reaches less of its peak.
 */
export function balanceRel(chip: { peakTflops: number; memoryBandwidthTBs: number }, e: Efficiency): number {
  const b = chip.peakTflops / chip.memoryBandwidthTBs;
  const t = Math.min(1, Math.max(0, (b - AMPERE_BALANCE) / (HOPPER_BALANCE - AMPERE_BALANCE)));
  return 1 + t * (e.hopperRel - 1);
}

/** Large-GEMM fraction of peak on this chip (its generation's). */
export function gemmMaxFor(chip: ResolvedChip, e: Efficiency): number {
  if (chip.measuredGemm) return 1; // a measured machine: peakTflops is already what its GEMMs reach
  const g = chipGeneration(chip);
  const rel = g === 'ampere' ? 1 : g === 'hopper' ? e.hopperRel : g === 'ascend' && e.ascendRel !== null ? e.ascendRel : balanceRel(chip, e);
  return e.gemmMax * rel;
}

/** Speed of a software stack's computation relative to Megatron-LM's. */
export function stackRel(stack: Stack, e: Efficiency): number {
  return stack === 'deepspeed-legacy' ? e.deepspeedRel : stack === 'overlapped' ? e.overlappedRel : 1;
}

/** Achievable fraction of peak for an M x N x K GEMM (per chip). */
export function gemmEfficiency(M: number, N: number, K: number, chip: ResolvedChip, e: Efficiency): number {
  if (chip.measuredGemm) return chip.measuredGemm(M, N, K) / (chip.peakTflops * 1e12);
  const balance = chip.peakTflops / chip.memoryBandwidthTBs; // FLOPs per byte the chip can feed
  return gemmMaxFor(chip, e) / (1 + e.gemmKappa * balance * (1 / M + 1 / N + 1 / K));
}

/** Seconds for an M x N x K GEMM, `count` times. */
export function gemmSeconds(M: number, N: number, K: number, chip: ResolvedChip, e: Efficiency, count = 1): number {
  if (M <= 0 || N <= 0 || K <= 0) return 0;
  return (count * 2 * M * N * K) / (chip.peakTflops * 1e12 * gemmEfficiency(M, N, K, chip, e));
}
