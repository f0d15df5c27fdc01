// Model FLOPs utilisation (MFU): the FLOPs a training step needs by the model's arithmetic, per
// second, over the hardware's peak. The peaks are the FMA loops measured on the development
// machines (DESIGN.md, "Facts measured": about 210 GFLOP/s per core in fp32 and 394 per core with
// bf16 `vdpbf16ps`); they live here and nowhere else.
import type { ModelConfig } from '../nn/config.js';
import { countParams } from '../nn/param-count.js';

/** Measured FMA peak per CPU core, GFLOP/s (DESIGN.md). */
export const CPU_PEAK_GFLOPS_PER_CORE = { f32: 210, bf16: 394 } as const;

/** Peak FLOP/s of `threads` CPU cores at a compute dtype. */
export function cpuPeakFlops(dtype: 'f32' | 'bf16', threads: number): number {
  return CPU_PEAK_GFLOPS_PER_CORE[dtype] * 1e9 * Math.max(1, threads);
}

/**
 * Training FLOPs per token (PaLM's formula, appendix B): 6·N + 12·L·T·d, where N counts the active
 * parameters that take part in a matmul (all active parameters but an untied input-embedding table,
 * which is a lookup; the tied table does the output projection) and 12·L·T·d is attention's
 * scores and weighted sum over a context of T tokens, forward and backward. Recomputation is not
 * counted (MFU, not hardware utilisation).
 */
export function trainFlopsPerToken(c: ModelConfig, seqLen: number): number {
  const p = countParams(c);
  const matmulParams = p.active - p.norms - (c.tiedEmbeddings ? 0 : c.vocab * c.dModel);
  return 6 * matmulParams + 12 * c.layers * seqLen * c.dModel;
}

/** MFU of a measured throughput. */
export function mfu(tokensPerSec: number, c: ModelConfig, seqLen: number, dtype: 'f32' | 'bf16', threads: number): number {
  return (tokensPerSec * trainFlopsPerToken(c, seqLen)) / cpuPeakFlops(dtype, threads);
}
