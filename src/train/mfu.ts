// Model FLOPs utilisation (MFU): the FLOPs a training step needs by the model's arithmetic, per
// second, over the hardware's peak. One definition for the trainer, `bench train` and the planner:
// model FLOPs per token come from src/plan/flops.ts (Megatron-LM's conventions: every matmul,
// attention over the full T² square, backward = 2 × forward, no recomputation); the peak is the
// measured peak (src/backend/cpu/peak.ts) of the unit the GEMMs actually run on at that dtype:
// f32 FMA for f32 and for bf16 widened to f32, AVX512-BF16 or AMX for oneDNN's bf16 kernels.
import type { Backend } from '../backend/contract.js';
import type { ModelConfig } from '../nn/config.js';
import { modelFlopsPerToken } from '../plan/flops.js';
import { cpuPeak } from '../backend/cpu/peak.js';
import { type PeakUnit, gemmChoice, loadNative } from '../backend/cpu/native.js';

/** Training FLOPs per token of a model at a sequence length (forward + backward). */
export function trainFlopsPerToken(c: ModelConfig, seqLen: number): number {
  return modelFlopsPerToken(seqLen === c.seqLen ? c : { ...c, seqLen });
}

export interface PeakInfo {
  /** FLOP/s; 0 when unknown */
  flops: number;
  /** the compute unit it is the peak of ('' when unknown) */
  unit: PeakUnit | '';
  /** how it was found: the unit's measured loop, or a GEMM that ran faster than it */
  source: string;
}

/** Which unit a GEMM implementation name runs on ('brg:avx512_core_amx_bf16', 'f32-widen:openblas', ...). */
export function unitOfImpl(impl: string): PeakUnit {
  if (impl.includes('amx')) return 'amx-bf16';
  if (impl.includes('avx512_core_bf16') || impl.includes('avx512_bf16')) return 'avx512-bf16';
  return 'f32-fma';
}

const UNIT_ORDER: PeakUnit[] = ['f32-fma', 'avx512-bf16', 'amx-bf16'];

/**
 * Peak of the unit the backend's GEMMs run on at a compute dtype (cpu backend; unknown elsewhere).
 * For bf16 the strongest unit any shape class dispatches to (the conservative denominator). The
 * peak is never below the fastest GEMM measured on that unit, so MFU cannot exceed 1 because the
 * peak loop was measured under load.
 */
export function peakOf(backend: Backend, dtype: 'f32' | 'bf16', threads: number): PeakInfo {
  if (backend.name !== 'cpu') return { flops: 0, unit: '', source: 'unknown for this backend' };
  const p = cpuPeak(threads);
  const tuning = gemmChoice();
  const n = loadNative();
  let unit: PeakUnit = 'f32-fma';
  if (dtype === 'bf16') {
    const impls = tuning ? Object.values(tuning.bf16).map((c) => c.impl) : [n.bgemmImpl(false, true, 2048, 384, 384)];
    for (const impl of impls) if (UNIT_ORDER.indexOf(unitOfImpl(impl)) > UNIT_ORDER.indexOf(unit)) unit = unitOfImpl(impl);
  }
  const loop = p.units[unit] ?? 0;
  // every GEMM measured on this unit: f32 ones run on f32 FMA, bf16 ones where their implementation says
  const rates = !tuning || tuning.threads !== threads ? [] : [
    ...Object.values(tuning.f32).map((c) => ({ unit: 'f32-fma' as PeakUnit, gflops: c.gflops })),
    ...Object.values(tuning.bf16).map((c) => ({ unit: unitOfImpl(c.impl), gflops: c.gflops })),
  ];
  const gemm = Math.max(0, ...rates.filter((r) => r.unit === unit).map((r) => r.gflops));
  if (gemm > loop) return { flops: gemm * 1e9, unit, source: `fastest measured GEMM (its peak loop measured ${loop.toFixed(0)} GFLOP/s)` };
  return { flops: loop * 1e9, unit, source: 'measured peak loop' };
}

/** Peak FLOP/s of the backend's device at a compute dtype: see peakOf. */
export function peakFlops(backend: Backend, dtype: 'f32' | 'bf16', threads: number): number {
  return peakOf(backend, dtype, threads).flops;
}

/** MFU of a measured throughput (0 when the peak is unknown), at most 1. */
export function mfu(tokensPerSec: number, c: ModelConfig, seqLen: number, peak: number): number {
  return peak > 0 ? Math.min(1, (tokensPerSec * trainFlopsPerToken(c, seqLen)) / peak) : 0;
}
