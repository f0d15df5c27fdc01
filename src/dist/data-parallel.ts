// Data-parallel training step with ZeRO stages 0-3, over a Communicator of the data-parallel ranks.
//
// Every rank runs forward/backward on its own rows of the global batch. On the step's last
// micro-batch only (earlier micro-batches accumulate locally, without communication; under ZeRO 2
// on every micro-batch), autograd's
// grad-ready hook reports each parameter as its gradient becomes final; a bucket (shard-layout.ts)
// whose parameters are all final is packed and its nonblocking collective issued at once, while the
// rest of backward runs. Buckets are issued strictly in bucket order (collectives must be issued in
// the same order on every rank, even when MoE routing makes ranks reach parameters in other orders).
//   ZeRO 0: gradients all-reduced, every rank runs the same full AdamW.
//   ZeRO 1: gradients reduce-scattered (Megatron's distributed optimizer): a rank only receives its
//           own chunks, updates only its chunk of every parameter with its chunk of the AdamW
//           moments, then the chunks are all-gathered into the full parameters. A collective on host
//           buffers starts at its call (base.ts), so each bucket's reduce-scatter runs while backward
//           goes on; at most two buckets' full-size buffers are in flight (a third waits for the
//           oldest, which is then freed).
//   ZeRO 2: as 1, and with gradient accumulation every micro-batch's gradients are reduce-scattered
//           (not only the last one's) and added into the rank's chunks: no full-size gradient
//           outlives the backward that made it, for M+1 rings of gradient bytes per step instead of 2.
//   ZeRO 3: as 2, and between steps a rank keeps only its chunk of each parameter. On a
//           communicator that can wait synchronously (MPI, local), parameters are all-gathered layer
//           by layer just before use and freed after, the next layer's gather prefetched
//           (zero3-gather.ts); otherwise (the in-process loopback of the tests) every parameter is
//           gathered at the start of the step. Each gathered weight is freed as soon as its
//           gradient is final; gradients accumulate over micro-batches in full-size tensors of
//           their own, since a parameter's leaf tensor is re-created at every gather.
// Exposed communication: the time JavaScript spends blocked on collectives (waiting for a gather,
// for a bucket, for the step's last collectives, for the optimizer's) is reported per step.
// Clipping uses the global norm (chunks' squares summed over ranks), MoE routing biases move by the
// expert loads summed over all ranks, and the reported loss is the mean over ranks, so every rank
// computes what one process with the whole global batch would.
import type { Backend } from '../backend/contract.js';
import type { TokenLoader } from '../data/loader.js';
import type { Transformer } from '../nn/transformer.js';
import { type AdamWConfig, AdamW, applyAdamW, clippedGradScale, sumOfSquares } from '../optim/adamw.js';
import { noGrad } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { microBatch, type StepOptions, type StepResult } from '../train/step.js';
import { CheckpointError, type OptimizerState } from '../train/checkpoint.js';
import type { NamedTensor, NamedTensors } from '../train/safetensors.js';
import { restoreModel, restoreOptimizer, restoreRouterBias, savedOptimizerStep } from '../train/train-state.js';
import type { Communicator } from './communicator.js';
import { zeroCopy } from './buffers.js';
import { type Bucket, type ShardLayout, ownedRange, planShards } from './shard-layout.js';
import { type GatherEvent, LayerwiseGather, gatherUnit, gatheredLeaf, isBlockParam, issueGather, unpackGather } from './zero3-gather.js';

export type ZeroStage = 0 | 1 | 2 | 3;
/**
 * How ZeRO-3's gathered weights live (the planner's memory model follows it, src/dist/memory-report.ts):
 * layer by layer they are freed after each block, but without recomputation the autograd graph holds
 * every block's weights until its backward, so only `--recompute full` keeps one or two blocks' worth.
 */
export function zero3GatherMode(recompute: 'none' | 'full'): 'all' | 'layer' {
  return recompute === 'full' ? 'layer' : 'all';
}

/** A bucket's collective: the packed full-size buffer (all-reduced in place, or the reduce-scatter's input until it completes) and the reduce-scatter's output. */
interface Reduced {
  bucket: Bucket;
  flat: Tensor | null;
  out: Tensor | null;
  /** the collective's Promise (null when it ran blocking) */
  done: Promise<void> | null;
}

/** Reduce-scatter buckets whose full-size buffers may be in flight at once (ZeRO 2-3); one more waits for the oldest. */
const BUCKETS_IN_FLIGHT = 2;

export interface DataParallelOptions {
  zero: ZeroStage;
  /** gradient bucket size cap in bytes (whole flat buffer) */
  bucketBytes: number;
  adamw: AdamWConfig;
  /** forward + backward of one micro-batch (default train/step.ts microBatch; context parallelism passes its own) */
  microBatch?: typeof microBatch;
  /** ZeRO 3: told of every layer-by-layer gather event (tests, tracing) */
  onGather?: (e: GatherEvent) => void;
  /** ZeRO 3: gather every parameter at the start of the step even where layer by layer is possible */
  gatherAllAtStart?: boolean;
}

/** A step's result plus the seconds this rank spent blocked on communication. */
export interface DataParallelStepResult extends StepResult {
  commWaitS: number;
}

/** Optimizer state of this rank: full tensors (ZeRO 0) or this rank's chunks (ZeRO >= 1), by parameter name. */
export interface RankOptimizerState {
  step: number;
  m: Map<string, Tensor>;
  v: Map<string, Tensor>;
}

function copy1d(src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, n: number): void {
  if (n > 0) src.backend.copyStrided(src.buf, srcOffset, [1], dst.buf, dstOffset, [1], [n]);
}

export class DataParallel {
  readonly layout: ShardLayout;
  readonly zero: ZeroStage;
  private readonly be: Backend;
  /** parameter shapes and no-decay flags, in creation order */
  private readonly shapes = new Map<string, readonly number[]>();
  /** ZeRO 0: the ordinary optimizer over the full parameters */
  private readonly full: AdamW | null;
  /** ZeRO >= 1: AdamW moments of this rank's chunks */
  private readonly m = new Map<string, Tensor>();
  private readonly v = new Map<string, Tensor>();
  private optStep = 0;
  /** ZeRO 3: this rank's chunk of every parameter (the master copy between steps) */
  private readonly paramChunks = new Map<string, Tensor>();
  /** ZeRO 3: whether the full parameters are currently materialised */
  private gathered = true;
  /** ZeRO >= 1: reduced gradient chunks of the step in progress (none for a parameter no rank computed a gradient of) */
  private readonly gradChunks = new Map<string, Tensor>();
  /** position of each parameter in creation order (the index of its has-a-gradient flag) */
  private readonly order = new Map<string, number>();
  /** ZeRO 3: gradients accumulated over the step's micro-batches, taken from each leaf as it becomes final */
  private readonly accGrads = new Map<string, Tensor>();
  /** ZeRO 3 layer by layer: the gathers' own communicator (made at the first step), null before or when not layer by layer */
  private gatherComm: Communicator | null = null;
  /** seconds blocked on communication in the step in progress */
  private commWaitS = 0;

  constructor(
    readonly model: Transformer,
    readonly comm: Communicator,
    readonly opts: DataParallelOptions,
  ) {
    this.zero = opts.zero;
    this.be = model.backend;
    const list = [...model.params.tensors].map(([name, t]) => ({ name, numel: t.numel }));
    for (const [name, t] of model.params.tensors) {
      this.order.set(name, this.order.size);
      this.shapes.set(name, [...t.shape]);
    }
    this.layout = planShards(list, comm.size, comm.rank, opts.bucketBytes);
    this.full = this.zero === 0 ? new AdamW(model.params, opts.adamw) : null;
    if (this.zero >= 1)
      for (const s of this.layout.slots.values()) {
        this.m.set(s.name, keep(T.zeros(this.be, [s.chunk])));
        this.v.set(s.name, keep(T.zeros(this.be, [s.chunk])));
      }
    if (this.zero === 3) {
      for (const s of this.layout.slots.values()) {
        const p = model.params.get(s.name);
        const c = keep(T.zeros(this.be, [s.chunk]));
        const r = ownedRange(s.numel, comm.size, comm.rank);
        copy1d(p, r.start, c, 0, r.end - r.start);
        this.paramChunks.set(s.name, c);
      }
      this.releaseParams();
    }
  }

  /** Optimizer steps taken. */
  get step(): number {
    return this.full ? this.full.step : this.optStep;
  }

  /** This rank's optimizer state (full tensors under ZeRO 0, chunks otherwise). */
  optimizerState(): RankOptimizerState {
    return this.full ? { step: this.full.step, m: this.full.m, v: this.full.v } : { step: this.optStep, m: this.m, v: this.v };
  }

  /** This rank's master copy of a parameter: the full tensor (ZeRO 0-2) or its chunk (ZeRO 3). */
  paramSource(name: string): { tensor: Tensor; sharded: boolean } {
    return this.zero === 3 ? { tensor: this.paramChunks.get(name)!, sharded: true } : { tensor: this.model.params.get(name), sharded: false };
  }

  /** Parameter names in creation order with their shapes. */
  paramShapes(): ReadonlyMap<string, readonly number[]> {
    return this.shapes;
  }

  /**
   * Loads whole saved tensors (any layout's checkpoint, assembled) into this rank: full weights, or
   * this rank's chunks of weights (ZeRO 3) and moments (ZeRO >= 1), the step count and routing biases.
   */
  restore(tensors: NamedTensors, s: OptimizerState | null, where: string): void {
    if (this.full) {
      restoreModel(this.model, tensors, where);
      restoreOptimizer(this.full, this.model, s, where);
      return;
    }
    const step = savedOptimizerStep(s, where);
    if (this.zero < 3) restoreModel(this.model, tensors, where);
    const { world, rank } = this.layout;
    const chunkInto = (dst: Tensor, src: NamedTensor | undefined, what: string, shape: readonly number[]) => {
      if (!src || src.dtype !== 'f32' || src.shape.join(',') !== shape.join(','))
        throw new CheckpointError(`checkpoint ${where}: ${what} is ${src ? `${src.dtype} [${src.shape.join(', ')}]` : 'missing'}, this model needs f32 [${shape.join(', ')}]`);
      const { start, end } = ownedRange(src.data.length, world, rank);
      const host = new Float32Array(dst.numel);
      host.set((src.data as Float32Array).subarray(start, end));
      this.be.write(dst.buf, host);
    };
    for (const [name, shape] of this.shapes) {
      if (this.zero === 3) chunkInto(this.paramChunks.get(name)!, tensors[name], `weight '${name}'`, shape);
      chunkInto(this.m.get(name)!, s!.m[name], `AdamW moment '${name}.m'`, shape);
      chunkInto(this.v.get(name)!, s!.v[name], `AdamW moment '${name}.v'`, shape);
    }
    this.optStep = step;
    restoreRouterBias(this.model, s!, where);
  }

  /** Bytes of training state this rank holds between steps: weights, AdamW moments (gradients live only within a step). */
  stateBytes(): { weights: number; optimizer: number } {
    let weights = 0, optimizer = 0;
    for (const s of this.layout.slots.values()) {
      weights += 4 * (this.zero === 3 ? s.chunk : s.numel);
      optimizer += 8 * (this.zero >= 1 ? s.chunk : s.numel);
    }
    return { weights, optimizer };
  }

  /** Runs fn with the full parameters present (ZeRO 3 gathers them first and frees them after). */
  async withFullParams<R>(fn: () => Promise<R>): Promise<R> {
    const was = this.gathered;
    if (!was) await this.gatherParams();
    try {
      return await fn();
    } finally {
      if (!was) this.releaseParams();
    }
  }

  /** Whether ZeRO 3 gathers layer by layer here (the communicator can wait synchronously, and the model's own forward runs the blocks: a custom micro-batch routine such as context parallelism's gathers all at the start). */
  get layerwise(): boolean {
    return this.zero === 3 && this.opts.gatherAllAtStart !== true && !this.opts.microBatch && !!this.comm.waitSync && !!this.comm.completed;
  }

  /** One optimizer step over `accum` micro-batches of this rank's rows; the result is global. */
  async runStep(loader: TokenLoader, accum: number, lr: number, opts: StepOptions = {}): Promise<DataParallelStepResult> {
    const model = this.model, comm = this.comm;
    this.commWaitS = 0;
    let layers: LayerwiseGather | null = null;
    if (this.layerwise) {
      this.gatherComm ??= await comm.split(0, comm.rank, `${comm.name}-zero3`);
      await this.timed(this.gatherRoot());
      layers = new LayerwiseGather(model, this.gatherComm!, this.paramChunks, model.recomputeMode === 'full', (name) => this.accGrads.get(name), this.opts.onGather);
    } else if (this.zero === 3) await this.timed(this.gatherParams());
    let ceSum = 0, auxSum = 0;
    const loads = new Map<number, number[]>();
    const inflight: Promise<void>[] = [];
    const reduced: Reduced[] = [];
    // which parameters got a gradient on this rank; after a max-reduction, on any rank. One process
    // leaves a parameter without gradient (an expert no token chose) untouched by AdamW, so do we.
    const present = new Int32Array(this.order.size);
    model.blockHook = layers?.hook ?? null;
    try {
      for (let micro = 0; micro < accum; micro++) {
        const last = micro === accum - 1;
        // ZeRO-2 reduce-scatters every micro-batch's gradients into the chunks it accumulates (no
        // full-size gradient outlives its backward); the others only the last one's
        const everyMicro = this.zero === 2 && !last;
        const microInflight: Promise<void>[] = [];
        const microReduced: Reduced[] = [];
        const launcher = last ? this.bucketLauncher(inflight, reduced, present) : everyMicro ? this.bucketLauncher(microInflight, microReduced, present) : null;
        // layer by layer, a block's weights are re-gathered per micro-batch: their gradients move to accGrads as they become
        // final (the root unit's stay on its leaves, held for the whole step, until the last micro-batch)
        const ready = launcher ? launcher.ready : layers ? (leaf: Tensor) => void (isBlockParam(leaf.name) && this.takeGrad(leaf, true)) : null;
        layers?.startForward();
        const r = await (this.opts.microBatch ?? microBatch)(model, loader, loads, ready ? { onGradReady: ready } : {}, () => {
          layers?.endBackward();
          launcher?.flush();
        });
        ceSum += r.ce;
        auxSum += r.aux;
        if (everyMicro) {
          await this.timed(Promise.all(microInflight));
          // every slot: which parameters any rank touched is agreed only at the step's end (a parameter
          // absent here may hold another rank's gradient in this chunk)
          this.unpack(microReduced, null);
        }
      }
    } finally {
      model.blockHook = null;
    }
    // the step's scalars and the MoE loads travel behind the gradient buckets
    const scalars = Float32Array.from([opts.poisonLoss ? NaN : ceSum / accum, auxSum / accum]);
    inflight.push(comm.allReduce(scalars));
    const layerIds = [...loads.keys()].sort((a, b) => a - b);
    const loadBuf = Int32Array.from(layerIds.flatMap((l) => loads.get(l)!));
    if (loadBuf.length) inflight.push(comm.allReduce(loadBuf));
    inflight.push(comm.allReduce(present, 'max'));
    if (layers) {
      inflight.push(...layers.issued);
      this.commWaitS += layers.waitS;
    }
    await this.timed(Promise.all(inflight));
    this.unpack(reduced, present);
    // ZeRO-2's earlier micro-batches unpacked every slot: a parameter no rank touched keeps no chunk
    if (this.zero === 2) for (const [name, i] of this.order) if (!present[i]) this.dropChunk(name);
    if (this.zero === 3) this.releaseParams();

    const gradScale = 1 / (accum * comm.size);
    // the loss and the norm are global: every rank takes the same decision
    const loss = scalars[0]! / comm.size;
    const skip = opts.skipNonFinite === true && !Number.isFinite(loss);
    const gradNorm = skip ? NaN : this.full ? await this.full.update(lr, gradScale, opts.skipNonFinite) : await this.shardedUpdate(lr, gradScale, opts.skipNonFinite);
    if (opts.skipNonFinite && !Number.isFinite(gradNorm)) {
      for (const g of [...this.gradChunks.values(), ...this.accGrads.values()]) g.dispose();
      this.gradChunks.clear();
      this.accGrads.clear();
      model.params.zeroGrad();
      return { loss, aux: scalars[1]! / comm.size, gradNorm, skipped: true, commWaitS: this.commWaitS };
    }
    let at = 0;
    for (const l of layerIds) {
      const n = loads.get(l)!.length;
      model.lastLoads.set(l, Array.from(loadBuf.subarray(at, at + n)));
      at += n;
    }
    model.updateRouterBias();
    model.params.zeroGrad();
    return { loss, aux: scalars[1]! / comm.size, gradNorm, commWaitS: this.commWaitS };
  }

  /** Awaits p, counting the time as exposed communication. */
  private async timed<R>(p: Promise<R>): Promise<R> {
    const t0 = performance.now();
    try {
      return await p;
    } finally {
      this.commWaitS += (performance.now() - t0) / 1000;
    }
  }

  /** Runs a blocking communication call, counting its time as exposed communication. */
  private blocked(fn: () => void): void {
    const t0 = performance.now();
    fn();
    this.commWaitS += (performance.now() - t0) / 1000;
  }

  /**
   * ZeRO 3: moves a leaf's gradient (final for this backward) to accGrads and frees the leaf when
   * asked; returns the parameter's name (undefined for a leaf that is no parameter).
   */
  private takeGrad(leaf: Tensor, free: boolean): string | undefined {
    const name = leaf.name;
    if (!this.shapes.has(name)) return undefined;
    // a re-gathered leaf starts with the accumulated gradient (see LayerwiseGather), so this is the same tensor or the first one
    if (leaf.grad) this.accGrads.set(name, leaf.grad);
    leaf.grad = null;
    if (free) leaf.dispose();
    return name;
  }

  /** The gradient a bucket packs: the leaf's (ZeRO 0-2), or the accumulated one (ZeRO 3). */
  private gradOf(name: string): Tensor | null {
    return (this.zero === 3 ? this.accGrads.get(name) : undefined) ?? this.model.params.get(name).grad;
  }

  /** The grad-ready hook of the last micro-batch: issues each bucket's collective once all its gradients are final, in bucket order. */
  private bucketLauncher(inflight: Promise<void>[], reduced: Reduced[], present: Int32Array) {
    const layout = this.layout;
    const pending = layout.buckets.map((b) => b.slots.length);
    const canWait = !!this.comm.waitSync && !!this.comm.completed;
    let next = 0;
    /** frees the full-size buffers of finished reduce-scatters; waits for the oldest while more than BUCKETS_IN_FLIGHT are in flight */
    const reap = () => {
      const busy = reduced.filter((r) => r.flat && r.done);
      busy.forEach((r, k) => {
        // oldest first; collectives of one communicator complete in issue order
        if (busy.length - k > BUCKETS_IN_FLIGHT) this.blocked(() => this.comm.waitSync!(r.done!));
        else if (!this.comm.completed!(r.done!)) return;
        r.flat!.dispose();
        r.flat = null;
      });
    };
    const launch = (b: Bucket) => {
      const world = layout.world;
      const flat = keep(T.zeros(this.be, [world * b.regionNumel]));
      for (const s of b.slots) {
        const p = this.model.params.get(s.name);
        const g = this.gradOf(s.name);
        if (g) present[this.order.get(s.name)!] = 1;
        if (g)
          for (let r = 0; r < world; r++) {
            const { start, end } = ownedRange(s.numel, world, r);
            copy1d(g, start, flat, r * b.regionNumel + s.offset, end - start);
          }
        // ZeRO >= 1 keeps no full gradient once it is in a bucket
        if (this.zero >= 1 && g) {
          g.dispose();
          p.grad = null;
          this.accGrads.delete(s.name);
        }
      }
      if (this.zero >= 1) {
        const out = keep(T.zeros(this.be, [b.regionNumel]));
        if (canWait && zeroCopy(flat, out)) {
          // started now (base.ts): reduced while backward goes on, its full-size buffer freed once done
          const done = this.comm.reduceScatter(flat, out);
          inflight.push(done);
          reduced.push({ bucket: b, flat, out, done });
          reap();
        } else if (this.comm.reduceScatterSync && zeroCopy(flat, out)) {
          this.blocked(() => this.comm.reduceScatterSync!(flat, out));
          flat.dispose();
          reduced.push({ bucket: b, flat: null, out, done: null });
        } else {
          const done = this.comm.reduceScatter(flat, out);
          inflight.push(done);
          reduced.push({ bucket: b, flat, out, done });
        }
      } else {
        const done = this.comm.allReduce(flat);
        inflight.push(done);
        reduced.push({ bucket: b, flat, out: null, done });
      }
    };
    const advance = () => {
      while (next < pending.length && pending[next] === 0) launch(layout.buckets[next++]!);
    };
    return {
      ready: (leaf: Tensor) => {
        // ZeRO 3: every tape node that read this weight has run and dropped its handles; free it now
        const name = this.zero === 3 ? this.takeGrad(leaf, true) : this.shapes.has(leaf.name) && this.model.params.get(leaf.name) === leaf ? leaf.name : undefined;
        if (name === undefined) return;
        pending[layout.slots.get(name)!.bucket]!--;
        advance();
      },
      /** after backward: buckets whose parameters got no gradient in this backward (e.g. an expert no local token chose) */
      flush: () => {
        for (let i = next; i < pending.length; i++) pending[i] = 0;
        advance();
      },
    };
  }

  /** A gradient chunk dropped: AdamW leaves its parameter alone this step. */
  private dropChunk(name: string): void {
    this.gradChunks.get(name)?.dispose();
    this.gradChunks.delete(name);
  }

  /**
   * After the collectives: full reduced gradients back into .grad (ZeRO 0), or this rank's chunks kept
   * (ZeRO >= 1), for the parameters some rank computed a gradient of (`present`, max-reduced; null: every slot).
   */
  private unpack(reduced: Reduced[], present: Int32Array | null): void {
    const { world, rank } = this.layout;
    for (const { bucket: b, flat, out } of reduced) {
      for (const s of b.slots) {
        if (present && !present[this.order.get(s.name)!]) continue;
        if (this.zero === 0) {
          const p = this.model.params.get(s.name);
          if (!p.grad) p.grad = keep(T.zeros(this.be, this.shapes.get(s.name)!));
          for (let r = 0; r < world; r++) {
            const { start, end } = ownedRange(s.numel, world, r);
            copy1d(flat!, r * b.regionNumel + s.offset, p.grad, start, end - start);
          }
        } else {
          const c = keep(T.empty(this.be, [s.chunk]));
          if (out) copy1d(out, s.offset, c, 0, s.chunk);
          else copy1d(flat!, rank * b.regionNumel + s.offset, c, 0, s.chunk);
          // ZeRO-2: earlier micro-batches' reduced chunks accumulate
          const acc = this.gradChunks.get(s.name);
          if (acc) {
            T.accumulateInto(acc, c);
            c.dispose();
          } else this.gradChunks.set(s.name, c);
        }
      }
      flat?.dispose();
      out?.dispose();
    }
  }

  /** ZeRO >= 1: global norm from every rank's chunks, AdamW on this rank's chunks, then the updated chunks all-gathered (ZeRO 1-2). */
  private async shardedUpdate(lr: number, gradScale: number, skipNonFinite = false): Promise<number> {
    const c = this.opts.adamw;
    const total = Float32Array.from([await sumOfSquares(this.gradChunks)]);
    await this.comm.allReduce(total);
    const rawNorm = Math.sqrt(total[0]!) * gradScale;
    if (skipNonFinite && !Number.isFinite(rawNorm)) return rawNorm;
    const scale = clippedGradScale(rawNorm, gradScale, c.clipNorm);
    this.optStep++;
    const { world, rank } = this.layout;
    const temps: Tensor[] = [];
    const chunks = new Map<string, Tensor>();
    noGrad(() => {
      for (const s of this.layout.slots.values()) {
        const g = this.gradChunks.get(s.name);
        const wd = this.model.params.noDecay.has(s.name) ? 0 : c.weightDecay;
        let chunk = this.paramChunks.get(s.name);
        if (!chunk) {
          chunk = keep(T.zeros(this.be, [s.chunk]));
          const r = ownedRange(s.numel, world, rank);
          copy1d(this.model.params.get(s.name), r.start, chunk, 0, r.end - r.start);
          temps.push(chunk);
        }
        chunks.set(s.name, chunk);
        if (!g) continue;
        const p = chunk;
        tidy(() => {
          const gs = scale === 1 ? g : T.mulScalar(g, scale);
          applyAdamW(this.be, p, gs, this.m.get(s.name)!, this.v.get(s.name)!, { lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, weightDecay: wd, step: this.optStep });
        });
      }
    });
    for (const g of this.gradChunks.values()) g.dispose();
    this.gradChunks.clear();
    if (this.zero < 3) {
      await this.allGatherInto(chunks, (name) => this.model.params.get(name));
    }
    for (const t of temps) t.dispose();
    return rawNorm;
  }

  /** All-gathers every parameter's chunks, bucket by bucket (all issued at once), into `target(name)`. */
  private async allGatherInto(chunks: ReadonlyMap<string, Tensor>, target: (name: string) => Tensor, units: readonly Bucket[] = this.layout.buckets, comm = this.comm): Promise<void> {
    const work = units.map((b) => issueGather(this.be, comm, b, chunks));
    await Promise.all(work.map((w) => w.done));
    for (const w of work) unpackGather(w, comm.size, target);
  }

  /** ZeRO 3: full parameters from every rank's chunks. */
  private async gatherParams(): Promise<void> {
    if (this.gathered) return;
    const ps = this.model.params;
    for (const [name, shape] of this.shapes) ps.tensors.set(name, gatheredLeaf(this.be, name, shape));
    await this.allGatherInto(this.paramChunks, (name) => ps.get(name));
    this.gathered = true;
  }

  /** ZeRO 3 layer by layer: the root unit (the parameters outside every block), held for the step; the blocks come through LayerwiseGather. */
  private async gatherRoot(): Promise<void> {
    const ps = this.model.params;
    const names = [...this.shapes.keys()].filter((n) => !isBlockParam(n));
    for (const name of names) ps.tensors.set(name, gatheredLeaf(this.be, name, this.shapes.get(name)!));
    const unit = gatherUnit(names.map((name) => ({ name, numel: ps.get(name).numel })), this.comm.size, this.comm.rank);
    await this.allGatherInto(this.paramChunks, (name) => ps.get(name), [unit], this.gatherComm!);
  }

  /** ZeRO 3: frees the full parameters (the chunks stay). */
  private releaseParams(): void {
    for (const t of this.model.params.tensors.values()) {
      t.grad?.dispose();
      t.grad = null;
      t.dispose();
    }
    this.gathered = false;
  }

  dispose(): void {
    this.full?.dispose();
    for (const t of [...this.m.values(), ...this.v.values(), ...this.paramChunks.values(), ...this.gradChunks.values()]) t.dispose();
    if (!this.gathered) for (const name of this.shapes.keys()) this.model.params.tensors.delete(name);
  }
}
