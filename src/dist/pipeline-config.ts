// The pipeline layout of a training run (--pp, --vpp, --schedule) and its checks against the model,
// the batch and the job's ranks, made before anything is allocated, each a one-line error with the fix.
import { ConfigError } from '../nn/config.js';
import { gradAccumSteps, type TrainConfig } from '../train/train-config.js';
import { assertRanksFit } from './layout-ranks.js';
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

/** Refuses a pipeline layout that does not fit the job, the model or the batch. */
export function assertPipelineFits(c: TrainConfig, p: PipelineConfig, worldSize: number): void {
  if (c.dp > 1) throw new ConfigError(`--pp ${p.pp} with --dp ${c.dp}: pipeline and data parallelism together are not implemented yet; use --dp 1 (mpirun -np ${p.pp})`);
  if (c.model.moe) throw new ConfigError(`--pp ${p.pp}: pipeline parallelism does not run Mixture-of-Experts models yet; use --pp 1`);
  try {
    partitionChunks(c.model.layers, p.pp * p.vpp);
    checkScheduleShape(p.schedule, { pp: p.pp, vpp: p.vpp, microBatches: gradAccumSteps(c) });
  } catch (e) {
    throw new ConfigError((e as Error).message.replace(/^pipeline: /, `--pp ${p.pp} --vpp ${p.vpp}: `));
  }
  assertRanksFit('pp', p.pp, c.dp, worldSize);
}
