// The pipeline layout of a training run (--pp, --vpp, --schedule) and its checks against the model,
// the batch and the job's ranks, made before anything is allocated, each a one-line error with the fix.
import { ConfigError } from '../nn/config.js';
import { gradAccumSteps, type TrainConfig } from '../train/train-config.js';
import { assertRanksFit } from './layout-ranks.js';
import { contextParallelInPipeline } from './context-parallel.js';
import { validateTensorParallel } from './tensor-parallel-plan.js';
import { partitionChunks } from './pipeline-partition.js';
import { checkScheduleShape, SCHEDULE_KINDS, type ScheduleKind } from './pipeline-schedule.js';

export interface PipelineConfig {
  /** pipeline stages (ranks) */
  pp: number;
  /** model chunks per stage (virtual pipeline) */
  vpp: number;
  schedule: ScheduleKind;
}

/** The schedule a run gets when --schedule is not given: interleaved with --vpp > 1, else 1F1B. */
export function defaultSchedule(vpp: number): ScheduleKind {
  return vpp > 1 ? 'interleaved' : '1f1b';
}

export function parseSchedule(s: string): ScheduleKind {
  if (!(SCHEDULE_KINDS as readonly string[]).includes(s)) throw new ConfigError(`--schedule must be one of ${SCHEDULE_KINDS.join(', ')}, got '${s}'`);
  return s as ScheduleKind;
}

/**
 * Refuses a pipeline layout (composed with --tp and --dp on the mesh) that does not fit the job, the
 * model or the batch.
 */
export function assertPipelineFits(c: TrainConfig, p: PipelineConfig, worldSize: number): void {
  const t = c.tensorParallel;
  const cp = c.contextParallel?.cp ?? 1; // each cp rank holds 1/cp of a micro-batch's tokens
  if (t) validateTensorParallel(c.model, t.tp, t.sp, (c.microBatch * c.seqLen) / cp);
  if (c.zero > 1) throw new ConfigError(`--pp ${p.pp} with --zero ${c.zero}: ZeRO-2/3 under pipeline parallelism are not implemented (gradients are reduced after the whole schedule); use --zero 1 or 0`);
  if (c.recompute !== 'none' && t && t.tp > 1) throw new ConfigError(`--tp ${t.tp}: activation recomputation under tensor parallelism is not implemented yet; use --recompute none`);
  try {
    partitionChunks(c.model.layers, p.pp * p.vpp);
    checkScheduleShape(p.schedule, { pp: p.pp, vpp: p.vpp, microBatches: gradAccumSteps(c) });
  } catch (e) {
    throw new ConfigError((e as Error).message.replace(/^pipeline: /, `--pp ${p.pp} --vpp ${p.vpp}: `));
  }
  assertRanksFit({ ...(t && t.tp > 1 ? { tp: t.tp } : {}), ...(cp > 1 ? { cp } : {}), ...(p.pp > 1 ? { pp: p.pp } : {}) }, c.dp, worldSize);
}

/**
 * The pipeline a run executes: its --pp > 1 layout, or one stage for tensor parallelism with ZeRO-1
 * (the pipeline executor is where AdamW moments are sharded over the replicas of tp shards), for an
 * MoE model under tensor parallelism, for expert parallelism with tp or ZeRO-1 (the executor runs
 * MoE layers over the ep group, expert-layers.ts), and for context parallelism under tp or pp, of an
 * MoE model or with ZeRO-1 (context-parallel-compute.ts); null when the run has none.
 */
export function pipelineOf(c: Pick<TrainConfig, 'pipeline' | 'tensorParallel' | 'zero' | 'model'> & Partial<Pick<TrainConfig, 'expertParallel' | 'contextParallel'>>): PipelineConfig | null {
  if (c.pipeline && c.pipeline.pp > 1) return c.pipeline;
  const tp = c.tensorParallel?.tp ?? 1, ep = c.expertParallel?.ep ?? 1;
  if (contextParallelInPipeline(c) || (tp > 1 && (c.zero === 1 || c.model.moe)) || (ep > 1 && c.zero === 1)) return { pp: 1, vpp: 1, schedule: '1f1b' };
  return null;
}

/**
 * The data-parallel replica a world rank reads for (the loader's rank) in the mesh's order (tp fastest,
 * then cp, then dp; experts fold inside dp): every tp rank, cp rank and pipeline stage of one replica
 * reads the same rows. Plain data parallelism: the rank itself.
 */
export function meshDataRank(c: Pick<TrainConfig, 'dp' | 'tensorParallel' | 'contextParallel'>, worldRank: number): number {
  return Math.floor(worldRank / ((c.tensorParallel?.tp ?? 1) * (c.contextParallel?.cp ?? 1))) % c.dp;
}
