// What a pipeline chunk computes, written once for both ways a stage holds its layers: whole (the
// model's own embed / forwardLayers / head, synchronous) or cut to tensor-parallel shards
// (tensor-parallel.ts's block forward, awaiting its tp collectives). The executor writes each step
// as a flow over maybe-asynchronous values and runs it synchronously inside `tidy`, or awaiting each
// value inside `tidyAsync` (in-process test ranks of a whole-layer pipeline must not interleave
// async memory scopes, so the synchronous form is kept where nothing communicates).
import type { Transformer } from '../nn/transformer.js';
import { backward, backwardAsync } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { tidy, tidyAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorParallel } from './tensor-parallel.js';

export type Maybe<T> = T | Promise<T>;

/**
 * What a chunk computes: on the stage's whole layers (synchronous), or on its tensor-parallel shards
 * (awaiting the tp collectives). `sync` says which; the step's code is written once as a flow.
 */
export interface ChunkCompute {
  sync: boolean;
  /** rows of the hidden states this rank passes between stages for a micro-batch of `tokens` */
  hiddenRows(tokens: number): number;
  embed(ids: Int32Array, B: number, S: number): Maybe<Tensor>;
  layers(x: Tensor, lo: number, hi: number, B: number, S: number): Maybe<{ x: Tensor; aux: Tensor | null }>;
  /** targets: the micro-batch's rows [B, S] (host, row-major) */
  headLoss(x: Tensor, targets: Int32Array, B: number, S: number): Maybe<Tensor>;
  backward(root: Tensor, grad?: Tensor): Maybe<void>;
}

export function wholeLayers(model: Transformer): ChunkCompute {
  const be = model.backend;
  return {
    sync: true,
    hiddenRows: (tokens) => tokens,
    embed: (ids, B, S) => model.embed(T.tensor(be, ids, [B, S], 'i32')),
    // the layers consume (dispose) their input; a stage's input leaf still collects its gradient
    layers: (x, lo, hi, B, S) => model.forwardLayers(x, lo, hi, B, S),
    headLoss: (x, targets) => T.crossEntropy(model.head(x), T.tensor(be, targets, [targets.length], 'i32')),
    backward: (root, grad) => backward(root, grad),
  };
}

export function shardedLayers(tp: TensorParallel): ChunkCompute {
  return {
    sync: false,
    hiddenRows: (tokens) => tp.hiddenRows(tokens),
    embed: (ids) => tp.embed(ids),
    layers: async (x, lo, hi, B, S) => ({ x: await tp.layers(x, lo, hi, B, S), aux: null }),
    headLoss: (x, targets) => tp.headLoss(x, targets),
    backward: (root, grad) => backwardAsync(root, grad),
  };
}

/** A step written once over maybe-asynchronous values: `yield* get(x)` gives x's value. */
export type Flow<R> = Generator<unknown, R, unknown>;
export function* get<T>(x: Maybe<T>): Generator<Maybe<T>, T, unknown> {
  return (yield x) as T;
}

/**
 * Runs a flow in a memory scope: synchronously (every value ready, inside tidy — in-process test
 * ranks interleave only between computes) or awaiting each value (inside tidyAsync).
 */
export function runFlow<R>(sync: boolean, flow: () => Flow<R>): Maybe<R> {
  if (sync)
    return tidy(() => {
      const it = flow();
      let r = it.next();
      while (!r.done) r = it.next(r.value);
      return r.value;
    });
  return tidyAsync(async () => {
    const it = flow();
    let r = it.next();
    while (!r.done) r = it.next(await r.value);
    return r.value;
  });
}
