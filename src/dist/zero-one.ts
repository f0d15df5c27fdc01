// ZeRO-1 for layouts that reduce gradients after the whole step (pipeline, composed with tensor
// parallelism): AdamW whose moments are sharded over the data-parallel replicas. The replicas'
// gradients are reduce-scattered (reduceScatterGrads): each replica receives the sum of only its
// chunk of every parameter (elements [start, end) of the flattened tensor, shard-layout.ts), updates
// that chunk with its chunk of the moments, then the chunks are all-gathered into the whole
// parameter — Megatron's distributed optimizer: an all-reduce's bytes in all. AdamW is elementwise,
// so the result equals the unsharded update; the moments take 1/dp of the memory. The clipping norm
// is the caller's (the chunks' squares summed over the replicas and the model-parallel ranks).
// Under expert parallelism each parameter has its own replica group (`groupOf`: routed experts their
// expert-data-parallel group, the rest the dense replicas): its chunking, reduce-scatter and gather
// run over that group.
import type { Backend } from '../backend/contract.js';
import { ParameterStore } from '../nn/parameters.js';
import { type AdamWConfig, AdamW, applyAdamW, clippedGradScale, l2Norm } from '../optim/adamw.js';
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
    /** the replica group of each parameter (default: `dp` for all) */
    private readonly groupOf: (name: string) => Communicator = () => dp,
  ) {
    // the base allocates whole moments for every tensor of the store it is given: it gets an empty
    // one, then this stage's store (whose gradients its gradNorm reads)
    super(new ParameterStore(params.backend, params.seed), config);
    Object.defineProperty(this, 'params', { value: params });
    for (const [name, p] of params.tensors) {
      const c = chunkOf(p.numel, groupOf(name).size);
      this.m.set(name, keep(T.zeros(p.backend, [c])));
      this.v.set(name, keep(T.zeros(p.backend, [c])));
    }
  }

  /** this rank's chunk of each parameter's gradient summed over the replicas (reduceScatterGrads), until the update */
  private readonly gradChunks = new Map<string, Tensor>();

  /**
   * Σ over the replicas of every gradient, each replica receiving only its chunk (a reduce-scatter, as
   * Megatron's distributed optimizer: with the update's all-gather, an all-reduce's bytes in all); the
   * whole gradients are freed. A parameter no replica computed a gradient for (flags max-reduced first,
   * so every replica issues the same collectives) gets no chunk: AdamW leaves it alone.
   */
  async reduceScatterGrads(): Promise<void> {
    const be = this.params.backend;
    const list = [...this.params.tensors];
    const present = new Map<string, number>();
    for (const group of new Set(list.map(([name]) => this.groupOf(name)))) {
      const mine = list.filter(([name]) => this.groupOf(name) === group);
      const flags = Int32Array.from(mine, ([, p]) => (p.grad ? 1 : 0));
      await group.allReduce(flags, 'max');
      mine.forEach(([name], i) => present.set(name, flags[i]!));
    }
    const flights: Promise<void>[] = [];
    list.forEach(([name, p]) => {
      if (!present.get(name)) return;
      const group = this.groupOf(name), n = group.size;
      const chunk = chunkOf(p.numel, n);
      const whole = p.grad ?? keep(T.zerosLike(p));
      p.grad = null;
      let src = whole;
      if (chunk * n !== p.numel) {
        src = keep(T.zeros(be, [chunk * n]));
        copy1d(be, whole, 0, src, 0, p.numel);
        whole.dispose();
      }
      const mine = keep(T.empty(be, [chunk]));
      this.gradChunks.set(name, mine);
      flights.push(group.reduceScatter(src, mine, 'sum').then(() => src.dispose()));
    });
    await Promise.all(flights);
  }

  /** Before the update: the norm of this rank's gradient chunks (the caller sums the squares over the replicas). */
  override gradNorm(skip?: (name: string) => boolean): Promise<number> {
    return this.gradChunks.size ? l2Norm([...this.gradChunks], skip) : super.gradNorm(skip);
  }

  /** This rank's element range of a parameter. */
  private range(name: string, p: Tensor): { start: number; end: number } {
    const group = this.groupOf(name);
    return ownedRange(p.numel, group.size, group.rank);
  }

  /** Drops the step's reduced gradient chunks (a skipped update). */
  dropGradChunks(): void {
    for (const g of this.gradChunks.values()) g.dispose();
    this.gradChunks.clear();
  }

  /** AdamW on this rank's chunks, then the chunks all-gathered into the whole parameters (reduces the gradients first if the caller did not). */
  override async update(lr: number, gradScale = 1, skipNonFinite = false): Promise<number> {
    const c = this.config, be = this.params.backend;
    if (!this.gradChunks.size) await this.reduceScatterGrads();
    const rawNorm = (await this.gradNorm()) * gradScale;
    if (skipNonFinite && !Number.isFinite(rawNorm)) {
      this.dropGradChunks();
      return rawNorm;
    }
    const scale = clippedGradScale(rawNorm, gradScale, c.clipNorm);
    this.step++;
    const gathers: Promise<void>[] = [];
    const after: (() => void)[] = [];
    noGrad(() => {
      for (const [name, p] of this.params.tensors) {
        const g = this.gradChunks.get(name);
        if (!g) continue; // no replica computed one: every replica skips it
        this.gradChunks.delete(name);
        const group = this.groupOf(name);
        const chunk = chunkOf(p.numel, group.size);
        const { start, end } = this.range(name, p);
        const mine = keep(T.zeros(be, [chunk]));
        const all = keep(T.empty(be, [chunk * group.size]));
        tidy(() => {
          copy1d(be, p, start, mine, 0, end - start);
          const wd = this.params.noDecay.has(name) ? 0 : c.weightDecay;
          applyAdamW(be, mine, scale === 1 ? g : T.mulScalar(g, scale), this.m.get(name)!, this.v.get(name)!, { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: wd, step: this.step });
        });
        gathers.push(group.allGather(mine, all));
        after.push(() => {
          g.dispose();
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
        const group = this.groupOf(name);
        const all = keep(T.empty(be, [src.get(name)!.numel * group.size]));
        await group.allGather(src.get(name)!, all);
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
        const { start, end } = this.range(name, p);
        const host = new Float32Array(dst.numel);
        host.set((src.data as Float32Array).subarray(start, end));
        p.backend.write(dst.buf, host);
      }
    this.step = step;
    restoreRouterBias(model, s!, where);
  }
}
