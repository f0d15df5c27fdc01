// The parallel runtime of a training run: which layouts run (checked before anything is allocated),
// the wrapper that runs this rank's part of the step (pipeline stages, tensor-parallel shards, data
// parallel with ZeRO, or the model alone) and one optimizer step through it. `zili train` and its dry
// run (dry-run.ts, the same program on the meta backend with a shape-only communicator) both build
// the runtime here, so a dry run measures the program a real rank would run.
import type { TokenLoader } from '../data/loader.js';
import type { Transformer } from '../nn/transformer.js';
import { AdamW, type AdamWConfig } from '../optim/adamw.js';
import type { Communicator } from '../dist/communicator.js';
import { DataParallel } from '../dist/data-parallel.js';
import { assertPipelineFits, pipelineOf } from '../dist/pipeline-config.js';
import { PipelineParallel } from '../dist/pipeline-parallel.js';
import { assertWorldFits } from '../dist/rank-agreement.js';
import { assertTensorParallelFits } from '../dist/tensor-parallel-plan.js';
import { TensorParallel } from '../dist/tensor-parallel.js';
import { assertContextParallelFits, ContextParallel } from '../dist/context-parallel.js';
import { assertExpertParallelFits, ExpertParallel } from '../dist/expert-parallel.js';
import { trainStep, type StepOptions, type StepResult } from './step.js';
import type { TrainConfig } from './train-config.js';

/**
 * Refuses, before anything is allocated, a layout that does not fit the job's `worldSize` ranks or
 * the model, or that is not executable yet — the one place a new composition is enabled.
 */
export function assertLayoutRuns(c: TrainConfig, worldSize: number): void {
  // each check refuses the compositions its layout does not run yet, naming what does
  const pipeline = pipelineOf(c);
  if (c.contextParallel) assertContextParallelFits(c, c.contextParallel, worldSize);
  if (c.contextParallel && !pipeline) return;
  if (c.expertParallel) {
    // with --tp, --pp or --zero 1 expert parallelism runs in the pipeline executor (expert-layers.ts)
    assertExpertParallelFits(c, c.expertParallel.ep, pipeline ? null : worldSize);
    if (pipeline) assertPipelineFits(c, pipeline, worldSize);
  } else if (pipeline) assertPipelineFits(c, pipeline, worldSize);
  else if (c.tensorParallel) assertTensorParallelFits(c, c.tensorParallel, worldSize);
  else assertWorldFits(c, worldSize);
}

export interface ParallelRuntime {
  /** pipeline stages keep only their chunks' parameters (src/dist/pipeline-parallel.ts) */
  pp: PipelineParallel | null;
  /** tensor-parallel ranks keep their shards of every parameter (src/dist/tensor-parallel.ts) */
  tensorPar: TensorParallel | null;
  /** context-parallel ranks read the same rows and keep their chunks; gradients reduce over dp·cp (src/dist/context-parallel.ts) */
  ctxPar: ContextParallel | null;
  /** plain dp × ep: ranks keep their experts of every MoE layer (src/dist/expert-parallel.ts; composed with tp, pp or ZeRO-1 the pipeline runs them); one process on an asynchronous backend runs MoE through the same path with ep 1 */
  expertPar: ExpertParallel | null;
  /** data parallel with ZeRO 0-3 (src/dist/data-parallel.ts) */
  dp: DataParallel | null;
  /** the optimizer the trainer restores and checkpoints (null under data parallelism, which owns its own) */
  opt: AdamW | null;
}

/** Wraps `model` for this rank of `comm` (null: one process) as the layout of `c` says. */
export async function openParallelRuntime(model: Transformer, comm: Communicator | null, c: TrainConfig, adamw: AdamWConfig): Promise<ParallelRuntime> {
  // pipeline stages keep only their chunks' parameters, composed with --tp and --dp on the process
  // mesh (each stage's parameters cut to its tp shards); tp × dp with ZeRO-1 runs as one stage
  const pipeline = pipelineOf(c);
  const pp = comm && pipeline ? await PipelineParallel.open(model, comm, { ...pipeline, adamw, tensorParallel: c.tensorParallel ?? null, dp: c.dp, cp: c.contextParallel?.cp ?? 1, zero: c.zero, microBatchTokens: c.microBatch * c.seqLen, ep: c.expertParallel?.ep ?? 1 }) : null;
  const tensorPar = comm && c.tensorParallel && !pp ? await TensorParallel.open(model, comm, c.tensorParallel, c.dp, c.microBatch * c.seqLen) : null;
  const ctxPar = comm && c.contextParallel && !pp ? await ContextParallel.open(model, comm, c.contextParallel, c.dp) : null;
  const expertPar = pp ? null : await ExpertParallel.forRun(model, comm, c);
  const dp = comm && !pp && !tensorPar && !expertPar ? new DataParallel(model, ctxPar ? ctxPar.gradComm : comm, { zero: c.zero, bucketBytes: c.bucketMb * 2 ** 20, adamw, ...(ctxPar ? { microBatch: ctxPar.microBatch } : {}) }) : null;
  const opt = dp ? null : pp ? pp.opt : tensorPar ? tensorPar.optimizer(adamw) : expertPar ? expertPar.optimizer(adamw) : new AdamW(model.params, adamw);
  return { pp, tensorPar, ctxPar, expertPar, dp, opt };
}

/** One optimizer step of `accum` micro-batches through the runtime; null when `shouldStop` abandoned it (one process only). */
export async function runParallelStep(
  rt: ParallelRuntime,
  model: Transformer,
  loader: TokenLoader,
  accum: number,
  lr: number,
  stepOpts: StepOptions,
  shouldStop: () => boolean,
): Promise<StepResult | null> {
  if (rt.pp) return rt.pp.runStep(loader, accum, lr, stepOpts);
  if (rt.tensorPar) return rt.tensorPar.runStep(rt.opt!, loader, accum, lr);
  if (rt.expertPar) return rt.expertPar.runStep(rt.opt!, loader, accum, lr, stepOpts);
  if (rt.dp) return rt.dp.runStep(loader, accum, lr, stepOpts);
  return trainStep(model, rt.opt!, loader, accum, lr, shouldStop, stepOpts);
}
