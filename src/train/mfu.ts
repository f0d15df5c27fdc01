// Model FLOPs utilisation (MFU): the FLOPs a training step needs by the model's arithmetic, per
// second, over the hardware's peak. One definition for the trainer, `bench train` and the planner:
// model FLOPs per token come from src/plan/flops.ts (Megatron-LM's conventions: every matmul,
// attention over the full T² square, backward = 2 × forward, no recomputation); the peak is this
// CPU's FMA (f32) or bf16 dot-product throughput as measured by src/backend/cpu/peak.ts.
import type { Backend } from '../backend/contract.js';
import type { ModelConfig } from '../nn/config.js';
import { modelFlopsPerToken } from '../plan/flops.js';
import { cpuPeak } from '../backend/cpu/peak.js';

/** Training FLOPs per token of a model at a sequence length (forward + backward). */
export function trainFlopsPerToken(c: ModelConfig, seqLen: number): number {
  return modelFlopsPerToken(seqLen === c.seqLen ? c : { ...c, seqLen });
}

/** Peak FLOP/s of the backend's device at a compute dtype: measured on the cpu backend, 0 (unknown) elsewhere. */
export function peakFlops(backend: Backend, dtype: 'f32' | 'bf16', threads: number): number {
  if (backend.name !== 'cpu') return 0;
  const p = cpuPeak(threads);
  return (dtype === 'bf16' && p.bf16Gflops > 0 ? p.bf16Gflops : p.f32Gflops) * 1e9;
}

/** MFU of a measured throughput (0 when the peak is unknown). */
export function mfu(tokensPerSec: number, c: ModelConfig, seqLen: number, peak: number): number {
  return peak > 0 ? (tokensPerSec * trainFlopsPerToken(c, seqLen)) / peak : 0;
}
