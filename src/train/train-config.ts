// The typed, validated configuration of a training run (what `zili train` flags resolve to, and what
// tests build directly): the model, the run's length, batch geometry, optimizer and schedule,
// checkpointing, evaluation and where data comes from. Stored in every checkpoint's manifest.
import type { PipelineConfig } from '../dist/pipeline-config.js';
import type { TensorParallelConfig } from '../dist/tensor-parallel-plan.js';
import type { ContextParallelConfig } from '../dist/context-parallel.js';
import { ConfigError, type ModelConfig, validateModelConfig } from '../nn/config.js';
import type { FaultToleranceConfig } from './fault/config.js';

export type TrainDtype = 'f32' | 'bf16';
export type TrainRecompute = 'none' | 'full';

export interface TrainConfig {
  /** the model (a preset's config, possibly with fields overridden by a test) */
  model: ModelConfig;
  /** the run's total optimizer steps: the LR schedule spans them, --resume continues up to them */
  steps: number;
  /** stop after this step with a checkpoint, as an interruption would (null: run to `steps`) */
  exitAfter: number | null;
  /** checkpoint every K steps (0: only at the end, at --exit-after and on Ctrl-C) */
  saveEvery: number;
  /** step folders kept in `out` (older ones are pruned) */
  keepCheckpoints: number;
  seed: number;
  /** run folder: checkpoints, tokenizer.json copy, default metrics file */
  out: string;
  resume: boolean;
  /** JSON-lines metrics file (appended); null: none */
  metrics: string | null;
  /** sequences per optimizer step */
  globalBatch: number;
  /** sequences per forward/backward; globalBatch / microBatch micro-batches are accumulated */
  microBatch: number;
  /** tokens per sequence (at most the model's context) */
  seqLen: number;
  /** peak learning rate, reached after `warmup` steps, then cosine decay to minLr at `steps` */
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  /** global gradient-norm clipping threshold (0: off) */
  clipNorm: number;
  beta1: number;
  beta2: number;
  dtype: TrainDtype;
  recompute: TrainRecompute;
  backend: string;
  /** a prepared dataset's manifest.json; null: the built-in corpus */
  data: string | null;
  /** validation loss every K steps and at the end (0: never) */
  evalEvery: number;
  /** validation batches (of microBatch sequences) per evaluation */
  evalBatches: number;
  /** CPU threads for the native kernels (null: the backend's default) */
  threads: number | null;
  /** data-parallel ranks (the job's world size); microBatch is per rank */
  dp: number;
  /** ZeRO stage over the data-parallel ranks: 1 shards AdamW state, 2 also gradients, 3 also weights */
  zero: 0 | 1 | 2 | 3;
  /** data-parallel gradient bucket size (MiB) */
  bucketMb: number;
  /** start a new run from this checkpoint's weights (fine-tuning, continued pre-training); unset: random init */
  init?: string | null;
  /** checkpoint mode, non-finite and loss-spike handling (unset: DEFAULT_FAULT_TOLERANCE) */
  fault?: FaultToleranceConfig;
  /** pipeline parallelism (--pp, --vpp, --schedule); unset or pp 1: none (checked by src/dist/pipeline-config.ts) */
  pipeline?: PipelineConfig | null;
  /** tensor (and sequence) parallelism (--tp, --sp); unset or tp 1: none (checked by src/dist/tensor-parallel-plan.ts) */
  tensorParallel?: TensorParallelConfig | null;
  /** context parallelism (--cp): ring attention over load-balanced sequence chunks; unset or cp 1: none (checked by src/dist/context-parallel.ts) */
  contextParallel?: ContextParallelConfig | null;
  /** expert parallelism (--ep) inside the dp ranks; unset or ep 1: none (checked by src/dist/expert-parallel.ts) */
  expertParallel?: { ep: number } | null;
}

/** Optimizer steps' micro-batches per rank: globalBatch / (microBatch · dp). */
export function gradAccumSteps(c: TrainConfig): number {
  return c.globalBatch / (c.microBatch * c.dp);
}

/** Tokens per optimizer step. */
export function tokensPerStep(c: TrainConfig): number {
  return c.globalBatch * c.seqLen;
}

/** Default peak learning rate for a model: small models take large steps. */
export function defaultLr(model: ModelConfig): number {
  if (model.dModel <= 256) return 3e-3;
  if (model.dModel <= 512) return 1e-3;
  if (model.dModel <= 1024) return 6e-4;
  return 3e-4;
}

/** Default warmup: a tenth of the run, at most 100 steps, at least 1. */
export function defaultWarmup(steps: number): number {
  return Math.max(1, Math.min(100, Math.floor(steps / 10)));
}

/** A full config from the model, the output folder and any overrides; validated. */
export function makeTrainConfig(model: ModelConfig, out: string, over: Partial<TrainConfig> = {}): TrainConfig {
  const steps = over.steps ?? 300;
  const lr = over.lr ?? defaultLr(model);
  const globalBatch = over.globalBatch ?? 16;
  const c: TrainConfig = {
    model,
    steps,
    exitAfter: null,
    saveEvery: 100,
    keepCheckpoints: 3,
    seed: 1,
    out,
    resume: false,
    metrics: null,
    globalBatch,
    microBatch: Math.min(globalBatch, 8),
    seqLen: model.seqLen,
    lr,
    minLr: lr / 10,
    warmup: defaultWarmup(steps),
    weightDecay: 0.1,
    clipNorm: 1.0,
    beta1: 0.9,
    beta2: 0.95,
    dtype: 'f32',
    recompute: 'none',
    backend: 'cpu',
    data: null,
    evalEvery: 100,
    evalBatches: 4,
    threads: null,
    dp: 1,
    zero: 0,
    bucketMb: 25,
    ...over,
  };
  return validateTrainConfig(c);
}

/** Throws ConfigError naming the bad setting (as its command-line flag) and the fix. */
export function validateTrainConfig(c: TrainConfig): TrainConfig {
  validateModelConfig(c.model);
  const int = (flag: string, v: number, min: number) => {
    if (!Number.isSafeInteger(v) || v < min) throw new ConfigError(`--${flag} must be a whole number >= ${min}, got ${v}`);
  };
  const num = (flag: string, v: number, ok: (x: number) => boolean, what: string) => {
    if (!Number.isFinite(v) || !ok(v)) throw new ConfigError(`--${flag} must be ${what}, got ${v}`);
  };
  int('steps', c.steps, 1);
  if (c.exitAfter !== null) {
    int('exit-after', c.exitAfter, 1);
    if (c.exitAfter > c.steps) throw new ConfigError(`--exit-after ${c.exitAfter} is past the run's end (--steps ${c.steps}); it must be at most --steps`);
  }
  int('save-every', c.saveEvery, 0);
  int('keep-checkpoints', c.keepCheckpoints, 1);
  int('seed', c.seed, 0);
  int('global-batch', c.globalBatch, 1);
  int('micro-batch', c.microBatch, 1);
  int('dp', c.dp, 1);
  if (![0, 1, 2, 3].includes(c.zero)) throw new ConfigError(`--zero must be 0, 1, 2 or 3, got ${c.zero}`);
  if (c.zero > 0 && c.dp === 1) throw new ConfigError(`--zero ${c.zero} shards state over data-parallel ranks; with --dp 1 use --zero 0, or launch N ranks (mpirun -np N) with --dp N`);
  num('bucket-mb', c.bucketMb, (x) => x > 0, 'a positive number of MiB');
  if (c.globalBatch % (c.microBatch * c.dp) !== 0) {
    const unit = c.microBatch * c.dp;
    throw new ConfigError(
      c.dp === 1
        ? `--global-batch ${c.globalBatch} is not a multiple of --micro-batch ${c.microBatch}; gradients are accumulated over whole micro-batches`
        : `--global-batch ${c.globalBatch} is not a multiple of --micro-batch ${c.microBatch} x --dp ${c.dp} = ${unit} (each rank takes whole micro-batches); use --global-batch ${Math.max(unit, Math.round(c.globalBatch / unit) * unit)}` +
            (c.globalBatch % c.dp === 0 ? ` or a --micro-batch dividing ${c.globalBatch / c.dp}` : ''),
    );
  }
  int('seq', c.seqLen, 1);
  if (c.seqLen > c.model.seqLen) throw new ConfigError(`--seq ${c.seqLen} exceeds the model's context of ${c.model.seqLen} tokens; use --seq ${c.model.seqLen} or less`);
  num('lr', c.lr, (x) => x > 0, 'a positive number');
  num('min-lr', c.minLr, (x) => x >= 0 && x <= c.lr, `between 0 and --lr (${c.lr})`);
  int('warmup', c.warmup, 0);
  if (c.warmup > c.steps) throw new ConfigError(`--warmup ${c.warmup} exceeds --steps ${c.steps}; lower the warmup or raise --steps`);
  num('weight-decay', c.weightDecay, (x) => x >= 0, 'a number >= 0');
  num('clip', c.clipNorm, (x) => x >= 0, 'a number >= 0 (0 turns clipping off)');
  num('beta1', c.beta1, (x) => x >= 0 && x < 1, 'in [0, 1)');
  num('beta2', c.beta2, (x) => x >= 0 && x < 1, 'in [0, 1)');
  if (c.dtype !== 'f32' && c.dtype !== 'bf16') throw new ConfigError(`--dtype must be f32 or bf16, got '${c.dtype}'`);
  if (c.recompute !== 'none' && c.recompute !== 'full') throw new ConfigError(`--recompute must be none or full, got '${c.recompute}'`);
  int('eval-every', c.evalEvery, 0);
  int('eval-batches', c.evalBatches, 1);
  if (c.threads !== null) int('threads', c.threads, 1);
  if (!c.out) throw new ConfigError('name the run folder with --out DIR');
  return c;
}

/** The JSON saved in checkpoints (all of the config; the model is saved separately as modelConfig). */
export function trainConfigJson(c: TrainConfig): Record<string, unknown> {
  const { model, ...rest } = c;
  return { ...rest, preset: model.name };
}
