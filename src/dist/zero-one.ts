// ZeRO-1 for layouts that reduce gradients after the whole step (pipeline, composed with tensor
// parallelism): AdamW whose moments are sharded over the data-parallel replicas. The gradients are
// already summed over the replicas (replica-grads.ts), so every replica holds the same ones; each
// updates only its chunk of every parameter (elements [start, end) of the flattened tensor,
// shard-layout.ts) with its chunk of the moments, then the chunks are all-gathered into the whole
// parameter. AdamW is elementwise, so the result equals the unsharded update; the moments take
// 1/dp of the memory. The clipping norm is the caller's (computed on the whole, reduced gradients).
import type { Backend } from '../backend/contract.js';
import { ParameterStore } from '../nn/parameters.js';
import { type AdamWConfig, AdamW, applyAdamW, clippedGradScale } from '../optim/adamw.js';
import { noGrad } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { NamedTensors } from '../train/safetensors.js';
import type { OptimizerState } from '../train/checkpoint.js';
import { CheckpointError } from '../train/checkpoint.js';
import { restoreRouterBias, savedOptimizerStep } from '../train/train-state.js';
import type { Transformer } from '../nn/transformer.js';
import type { Communicator } from './communicator.js';
import { chunkOf, ownedRange } from './shard-layout.js';

function copy1d(be: Backend, src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, n: number): void {
  if (n > 0) be.copyStrided(src.buf, srcOffset, [1], dst.buf, dstOffset, [1], [n]);
}

export class ZeroOneAdamW extends AdamW {
  constructor(
    params: ParameterStore,
    config: AdamWConfig,
    readonly dp: Communicator,
  ) {
    // the base allocates whole moments for every tensor of the store it is given: it gets an empty
    // one, then this stage's store (whose gradients its gradNorm reads)
    super(new ParameterStore(params.backend, params.seed), config);
    Object.defineProperty(this, 'params', { value: params });
    for (const [name, p] of params.tensors) {
      const c = chunkOf(p.numel, dp.size);
      this.m.set(name, keep(T.zeros(p.backend, [c])));
      this.v.set(name, keep(T.zeros(p.backend, [c])));
    }
  }

  /** This rank's element range of a parameter. */
  private range(p: Tensor): { start: number; end: number } {
    return ownedRange(p.numel, this.dp.size, this.dp.rank);
  }

  override async update(lr: number, gradScale = 1, skipNonFinite = false): Promise<number> {
    const c = this.config, be = this.params.backend;
    const rawNorm = (await this.gradNorm()) * gradScale;
    if (skipNonFinite && !Number.isFinite(rawNorm)) return rawNorm;
    const scale = clippedGradScale(rawNorm, gradScale, c.clipNorm);
    this.step++;
    const gathers: Promise<void>[] = [];
    const after: (() => void)[] = [];
    noGrad(() => {
      for (const [name, p] of this.params.tensors) {
        if (!p.grad) continue; // no replica computed one (replica-grads.ts): every replica skips it
        const chunk = chunkOf(p.numel, this.dp.size);
        const { start, end } = this.range(p);
        const mine = keep(T.zeros(be, [chunk]));
        const all = keep(T.empty(be, [chunk * this.dp.size]));
        tidy(() => {
          const g = T.zeros(be, [chunk]);
          copy1d(be, p.grad!, start, g, 0, end - start);
          copy1d(be, p, start, mine, 0, end - start);
          const wd = this.params.noDecay.has(name) ? 0 : c.weightDecay;
          applyAdamW(be, mine, scale === 1 ? g : T.mulScalar(g, scale), this.m.get(name)!, this.v.get(name)!, { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: wd, step: this.step });
        });
        gathers.push(this.dp.allGather(mine, all));
        after.push(() => {
          copy1d(be, all, 0, p, 0, p.numel);
          mine.dispose();
          all.dispose();
        });
      }
    });
    await Promise.all(gathers);
    for (const f of after) f();
    return rawNorm;
  }

  /** The whole moments of every parameter, gathered from the replicas' chunks (collective over dp). */
  async wholeMoments(): Promise<{ m: Map<string, Tensor>; v: Map<string, Tensor> }> {
    const be = this.params.backend;
    const out = { m: new Map<string, Tensor>(), v: new Map<string, Tensor>() };
    for (const [name, p] of this.params.tensors)
      for (const [src, dst] of [[this.m, out.m], [this.v, out.v]] as const) {
        const all = keep(T.empty(be, [src.get(name)!.numel * this.dp.size]));
        await this.dp.allGather(src.get(name)!, all);
        const whole = keep(T.empty(be, p.shape));
        copy1d(be, all, 0, whole, 0, p.numel);
        all.dispose();
        dst.set(name, whole);
      }
    return out;
  }

  /** Loads this rank's chunks of whole saved moments (this rank's shards of them), the step and the routing biases. */
  restore(model: Transformer, s: OptimizerState | null, moments: { m: NamedTensors; v: NamedTensors }, where: string): void {
    const step = savedOptimizerStep(s, where);
    for (const [name, p] of this.params.tensors)
      for (const [key, src, dst] of [[`${name}.m`, moments.m[name], this.m.get(name)!], [`${name}.v`, moments.v[name], this.v.get(name)!]] as const) {
        if (!src || src.dtype !== 'f32' || src.shape.join(',') !== p.shape.join(','))
          throw new CheckpointError(`checkpoint ${where}: AdamW moment '${key}' is ${src ? `${src.dtype} [${src.shape.join(', ')}]` : 'missing'}, this model needs f32 [${p.shape.join(', ')}]`);
        const { start, end } = this.range(p);
        const host = new Float32Array(dst.numel);
        host.set((src.data as Float32Array).subarray(start, end));
        p.backend.write(dst.buf, host);
      }
    this.step = step;
    restoreRouterBias(model, s!, where);
  }
}
