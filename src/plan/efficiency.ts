// The few physical efficiencies the cost model is calibrated with (no per-run constants), and the
// achievable-GEMM-efficiency curve. Values were fitted on the published runs (docs/planner.md).
import type { ResolvedChip } from './hardware.js';

export interface Efficiency {
  /** fraction of peak a large GEMM reaches */
  gemmMax: number;
  /**
   * weight of the memory-traffic term of a GEMM: efficiency = gemmMax / (1 + kappa * (P / BW) * (1/M + 1/N + 1/K)),
   * the roofline of an M x N x K product with P = peak FLOP/s and BW = memory bandwidth (bf16 operands)
   */
  gemmKappa: number;
  /** fraction of memory bandwidth elementwise kernels (norms, softmax, activations, dropout) reach */
  memEff: number;
  /** fraction of link bandwidth collectives reach (inside and between nodes); assumed (typical NCCL bus bandwidth), not fitted */
  netEff: number;
  /** fused (flash) attention speed relative to a large GEMM; an assumption, not fitted */
  flashRel: number;
  /** per-step latency of a collective, microseconds; an assumption, not fitted */
  latencyUs: number;
}

/**
 * gemmMax, gemmKappa and memEff fitted jointly on Narayanan 2021 (10 runs) and Korthikanti 2022 (4 runs) by
 * fitEfficiency (src/plan/calibrate.ts), rounded; the out-of-sample checks are in docs/planner.md.
 */
export const DEFAULT_EFFICIENCY: Efficiency = {
  gemmMax: 0.79,
  gemmKappa: 0.51,
  memEff: 0.77,
  netEff: 0.8,
  flashRel: 0.8,
  latencyUs: 10,
};

/** The fitted parameters, in the order the calibration searches them. */
export const FITTED_KEYS = ['gemmMax', 'gemmKappa', 'memEff'] as const;

/** Achievable fraction of peak for an M x N x K GEMM (per chip). */
export function gemmEfficiency(M: number, N: number, K: number, chip: ResolvedChip, e: Efficiency): number {
  const balance = chip.peakTflops / chip.memoryBandwidthTBs; // FLOPs per byte the chip can feed
  return e.gemmMax / (1 + e.gemmKappa * balance * (1 / M + 1 / N + 1 / K));
}

/** Seconds for an M x N x K GEMM, `count` times. */
export function gemmSeconds(M: number, N: number, K: number, chip: ResolvedChip, e: Efficiency, count = 1): number {
  if (M <= 0 || N <= 0 || K <= 0) return 0;
  return (count * 2 * M * N * K) / (chip.peakTflops * 1e12 * gemmEfficiency(M, N, K, chip, e));
}
