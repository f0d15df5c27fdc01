// Will a training run fit in this machine's memory? Estimated from the config alone, BEFORE any
// tensor is allocated, so a model that cannot fit is refused with what to change instead of
// swapping the machine to death or being killed halfway through allocating.
import * as os from 'node:os';
import { ConfigError } from '../nn/config.js';
import { countParams } from '../nn/param-count.js';
import { activationBytesPerLayer } from '../plan/memory.js';
import { formatBytes, formatCount } from './format.js';
import type { TrainConfig } from './train-config.js';

export interface TrainMemoryEstimate {
  /** fp32 master weights */
  weights: number;
  /** fp32 gradients */
  grads: number;
  /** AdamW first and second moments (fp32) */
  optimizer: number;
  /** activations kept for backward of one micro-batch, logits included */
  activations: number;
  total: number;
}

/**
 * Bytes a run needs on the CPU backend: 4 (weights) + 4 (grads) + 8 (AdamW m, v) bytes per
 * parameter, plus bf16 copies of the weights (2 bytes) under --dtype bf16, plus activations of one
 * micro-batch: the planner's per-layer estimate (written for 16-bit activations, so doubled for
 * fp32; fused flash attention keeps no s×s scores) and the logits with their softmax and gradient
 * (3 × tokens × vocab × 4 bytes). 20% is added for the caching allocator's free lists. Per
 * data-parallel rank: with --zero >= 1 a rank holds 1/dp of the AdamW state (gradients and weights
 * are still whole at the step's peak, see docs/distributed.md).
 */
export function estimateTrainMemory(c: TrainConfig): TrainMemoryEstimate {
  const n = countParams(c.model).total;
  const weights = 4 * n + (c.dtype === 'bf16' ? 2 * n : 0);
  const grads = 4 * n;
  const optimizer = c.zero >= 1 ? Math.ceil((8 * n) / c.dp) : 8 * n;
  const layers = activationBytesPerLayer(c.model, { microBatch: c.microBatch, seqLen: c.seqLen, recompute: c.recompute, attention: 'flash' });
  const tokens = c.microBatch * c.seqLen;
  const activations = 2 * layers.reduce((s, l) => s + l.bytes, 0) + 3 * tokens * c.model.vocab * 4 + 2 * tokens * c.model.dModel * 4;
  const total = Math.ceil(1.2 * (weights + grads + optimizer + activations));
  return { weights, grads, optimizer, activations, total };
}

/**
 * Throws a user-facing ConfigError when the estimate exceeds the memory available (default: the
 * operating system's available memory), saying what takes the room and what to change.
 */
export function assertFitsInMemory(c: TrainConfig, available = os.freemem()): TrainMemoryEstimate {
  const e = estimateTrainMemory(c);
  if (e.total <= available) return e;
  const n = countParams(c.model).total;
  const state = e.weights + e.grads + e.optimizer;
  const fixes: string[] = [];
  if (c.dp > 1 && c.zero === 0) fixes.push(`--zero 1 (each of the ${c.dp} ranks then keeps 1/${c.dp} of the AdamW state)`);
  if (1.2 * state > available) fixes.push(`a smaller model (--preset tiny or small): its ${formatCount(n)} parameters alone need ${formatBytes(state)} for weights, gradients and AdamW state`);
  else {
    if (c.microBatch > 1) fixes.push(`a smaller --micro-batch (now ${c.microBatch}; keep --global-batch, gradients are accumulated)`);
    if (c.recompute === 'none') fixes.push('--recompute full');
    fixes.push(`a shorter --seq (now ${c.seqLen})`);
  }
  throw new ConfigError(
    `model '${c.model.name}' needs about ${formatBytes(e.total)} to train here (weights ${formatBytes(e.weights)}, gradients ${formatBytes(e.grads)}, ` +
      `AdamW ${formatBytes(e.optimizer)}, activations ${formatBytes(e.activations)}, +20% allocator headroom) but only ${formatBytes(available)} ` +
      `of memory is available; nothing was allocated. Use ${fixes.join(', or ')}.`,
  );
}
