// AdamW with decoupled weight decay (none on norms and biases), global-norm gradient clipping, and
// state that checkpoints save and restore. Uses the backend's fused adamw routine, or a composition
// of primitives on backends without one.
import type { Backend } from '../backend/contract.js';
import type { ParameterStore } from '../nn/parameters.js';
import * as T from '../tensor/ops.js';
import { keep, tidy } from '../tensor/scope.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { ConfigError } from '../nn/config.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** clip the global gradient norm to this value (0: no clipping) */
  clipNorm: number;
}

export const defaultAdamW = (): AdamWConfig => ({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm: 1.0 });

export class AdamW {
  /** optimizer steps taken */
  step = 0;
  readonly m = new Map<string, Tensor>();
  readonly v = new Map<string, Tensor>();

  constructor(
    readonly params: ParameterStore,
    readonly config: AdamWConfig = defaultAdamW(),
  ) {
    if (!(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1)) throw new ConfigError(`AdamW: betas must be in [0, 1), got ${config.beta1}, ${config.beta2}`);
    for (const [name, p] of params.tensors) {
      this.m.set(name, keep(T.zeros(p.backend, p.shape)));
      this.v.set(name, keep(T.zeros(p.backend, p.shape)));
    }
  }

  /** Global L2 norm of all gradients (but those `skip` names): summed on the device, one host read per step. */
  async gradNorm(skip?: (name: string) => boolean): Promise<number> {
    return l2Norm([...this.params.tensors].map(([name, p]) => [name, p.grad]), skip);
  }

  /**
   * Clips (if configured), multiplies gradients by gradScale (e.g. 1/accumulation steps) and takes
   * one step at learning rate lr. Returns the gradient norm before clipping. `skipNonFinite`: a
   * non-finite norm (a NaN or Inf gradient) changes nothing (the caller sees the norm and counts it).
   */
  async update(lr: number, gradScale = 1, skipNonFinite = false): Promise<number> {
    const c = this.config;
    const rawNorm = (await this.gradNorm()) * gradScale;
    if (skipNonFinite && !Number.isFinite(rawNorm)) return rawNorm;
    const scale = clippedGradScale(rawNorm, gradScale, c.clipNorm);
    this.step++;
    noGrad(() => {
      for (const [name, p] of this.params.tensors) {
        const g = p.grad;
        if (!g) continue;
        const wd = this.params.noDecay.has(name) ? 0 : c.weightDecay;
        tidy(() => {
          const gs = scale === 1 ? g : T.mulScalar(g, scale);
          applyAdamW(p.backend, p, gs, this.m.get(name)!, this.v.get(name)!, { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: wd, step: this.step });
        });
      }
    });
    return rawNorm;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/** The factor gradients are multiplied by: gradScale, times clipNorm / norm when the (scaled) norm exceeds clipNorm > 0. */
export function clippedGradScale(scaledNorm: number, gradScale: number, clipNorm: number): number {
  return clipNorm > 0 && scaledNorm > clipNorm ? gradScale * (clipNorm / (scaledNorm + 1e-6)) : gradScale;
}

/** One AdamW update of p, m, v in place from gradient g (fused when the backend has it). */
export function applyAdamW(backend: Backend, p: Tensor, g: Tensor, m: Tensor, v: Tensor, d: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number }): void {
  if (backend.fused.adamw && p.dtype === 'f32') {
    backend.fused.adamw(p.buf, g.buf, m.buf, v.buf, d);
    return;
  }
  // composition: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr·wd·p + lr·m̂/(√v̂ + eps)
  const m2 = T.add(T.mulScalar(m, d.beta1), T.mulScalar(g, 1 - d.beta1));
  const v2 = T.add(T.mulScalar(v, d.beta2), T.mulScalar(T.square(g), 1 - d.beta2));
  const mhat = T.mulScalar(m2, 1 / (1 - Math.pow(d.beta1, d.step)));
  const vhat = T.mulScalar(v2, 1 / (1 - Math.pow(d.beta2, d.step)));
  const upd = T.div(mhat, T.addScalar(T.sqrt(vhat), d.eps));
  const p2 = T.sub(T.mulScalar(p, 1 - d.lr * d.weightDecay), T.mulScalar(upd, d.lr));
  T.assign(m, m2);
  T.assign(v, v2);
  T.assign(p, p2);
}

/** L2 norm of the named gradients (null: none; those `skip` names left out), summed on the device, one host read. */
export async function l2Norm(grads: readonly (readonly [string, Tensor | null])[], skip?: (name: string) => boolean): Promise<number> {
  return Math.sqrt(await sumOfSquares(grads, skip));
}

/** Σ of the squares of the named gradients (null: none; `skip` names left out), on the device, one host read. */
export async function sumOfSquares(grads: Iterable<readonly [string, Tensor | null]>, skip?: (name: string) => boolean): Promise<number> {
  const total = noGrad(() =>
    tidy(() => {
      let acc: Tensor | null = null;
      for (const [name, g] of grads) {
        if (!g || skip?.(name)) continue;
        // each square freed once summed: the norm never holds a second copy of every gradient
        const s = tidy(() => T.sum(T.square(g)));
        acc = acc ? T.add(acc, s) : s;
      }
      return acc;
    }),
  );
  if (!total) return 0;
  const ss = await total.item();
  total.dispose();
  return ss;
}
