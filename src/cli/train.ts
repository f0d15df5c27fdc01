// `zili train`: flags (DESIGN.md's CLI contract) to a validated TrainConfig, then the training loop.
// Exit codes: 0 done (or stopped by --exit-after), 130 when Ctrl-C stopped it after saving.
import * as os from 'node:os';
import * as path from 'node:path';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { preset, presetNames } from '../nn/presets.js';
import { defaultLr, defaultWarmup, makeTrainConfig, type TrainDtype, type TrainRecompute } from '../train/train-config.js';
import { trainRun } from '../train/trainer.js';
import { launchedWorldSize, openWorld } from '../dist/world.js';
import { initModelConfig } from '../train/init-weights.js';
import { TensorBoardSink } from '../observe/tensorboard-sink.js';
import { MAX_THREADS, oversubscriptionWarning } from '../util/threads.js';
import { applyShapeFlags, SHAPE_FLAGS } from './model-shape-flags.js';
import { FAULT_FLAGS, faultConfig, parseSaveEvery } from './fault-flags.js';
import { defaultSchedule, parseSchedule } from '../dist/pipeline-config.js';
import { dryRunCommand } from './train-dry-run.js';

const FLAGS = {
  preset: { kind: 'string', help: `model preset (${presetNames().join(', ')})` },
  ...SHAPE_FLAGS,
  steps: { kind: 'int', help: "the run's total optimizer steps (the LR schedule spans them)", default: 300, min: 1 },
  'exit-after': { kind: 'int', help: 'stop after this step with a checkpoint (continue later with --resume)', min: 1 },
  'save-every': { kind: 'string', help: 'checkpoint every K steps (0: only at the end), or auto (Young/Daly from the measured write time and --mtbf-hours)', default: '100' },
  'keep-checkpoints': { kind: 'int', help: 'checkpoints kept in --out', default: 3, min: 1 },
  seed: { kind: 'int', help: 'seed of the initial weights and the data order', default: 1, min: 0 },
  out: { kind: 'string', help: 'run folder: checkpoints, tokenizer.json, metrics.jsonl (default runs/<preset>)' },
  resume: { kind: 'bool', help: 'continue from the latest checkpoint in --out up to --steps' },
  init: { kind: 'string', help: 'start from the weights of this checkpoint or run folder (e.g. from zili import): fine-tune or continue pre-training' },
  metrics: { kind: 'string', help: 'append one JSON line per step to this file (default <out>/metrics.jsonl)' },
  tensorboard: { kind: 'string', help: 'also write TensorBoard event files (scalars) to this folder' },
  'global-batch': { kind: 'int', help: 'sequences per optimizer step', default: 16, min: 1 },
  'micro-batch': { kind: 'int', help: 'sequences per forward/backward (gradients accumulate; default: the global batch, at most 8)', min: 1 },
  seq: { kind: 'int', help: "tokens per sequence (default: the model's context)", min: 1 },
  lr: { kind: 'number', help: 'peak learning rate (default: 3e-3 for d_model <= 256, less for larger models)' },
  'min-lr': { kind: 'number', help: 'final learning rate of the cosine decay (default lr/10)' },
  warmup: { kind: 'int', help: 'warmup steps (default: a tenth of --steps, at most 100)', min: 0 },
  'weight-decay': { kind: 'number', help: 'AdamW weight decay (not on norms)', default: 0.1, min: 0 },
  clip: { kind: 'number', help: 'clip the global gradient norm to this (0: off)', default: 1.0, min: 0 },
  dtype: { kind: 'string', help: 'GEMM precision: f32, or bf16 with fp32 master weights', default: 'f32' },
  recompute: { kind: 'string', help: 'activation recomputation: none or full', default: 'none' },
  backend: { kind: 'string', help: 'compute backend (cpu, reference, ...)', default: 'cpu' },
  data: { kind: 'string', help: 'a prepared dataset (manifest.json from zili prepare; default: the built-in corpus)' },
  'eval-every': { kind: 'int', help: 'validation loss every K steps and at the end (0: never)', default: 100, min: 0 },
  'eval-batches': { kind: 'int', help: 'validation batches per evaluation', default: 4, min: 1 },
  threads: { kind: 'int', help: 'CPU threads (default: ZILI_THREADS or 2)', min: 1, max: MAX_THREADS },
  dp: { kind: 'int', help: "data-parallel ranks (default: the job's ranks / (tp x pp), mpirun -np N; --micro-batch is per rank)", min: 1 },
  tp: { kind: 'int', help: 'tensor-parallel ranks (Megatron column/row-parallel layers, vocab-parallel embedding and loss)', default: 1, min: 1 },
  sp: { kind: 'bool', help: 'sequence parallel with --tp: norms and residuals split over the tp ranks (all-gather/reduce-scatter)' },
  pp: { kind: 'int', help: 'pipeline stages; the job runs tp x pp x dp ranks (any product, with --zero 0 or 1)', default: 1, min: 1 },
  cp: { kind: 'int', help: 'context-parallel ranks: each sequence split over them (ring attention, causal load balancing); the job runs cp x dp ranks', default: 1, min: 1 },
  vpp: { kind: 'int', help: 'model chunks per pipeline stage (interleaved schedule)', default: 1, min: 1 },
  schedule: { kind: 'string', help: 'pipeline schedule: gpipe, 1f1b or interleaved (default: 1f1b, interleaved with --vpp > 1)' },
  ep: { kind: 'int', help: 'expert-parallel ranks inside the dp ranks: each holds experts/ep of every MoE layer (all-to-all token dispatch)', default: 1, min: 1 },
  zero: { kind: 'int', help: 'ZeRO stage over the dp ranks: 1 shards AdamW state, 2 also gradients, 3 also weights (with --tp or --pp: 0 or 1)', default: 0 },
  'bucket-mb': { kind: 'number', help: 'data-parallel gradient bucket size in MiB', default: 25 },
  ...FAULT_FLAGS,
  'dry-run-rank': { kind: 'int', help: 'dry run: rank R of the layout on --backend meta with a shape-only communicator; prints its peak memory, FLOPs and bytes sent per step (docs/distributed.md)', min: 0 },
  json: { kind: 'bool', help: 'with --dry-run-rank: end with one JSON line' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'train');
  if (a.help) {
    console.log(formatHelp('train', FLAGS, '--preset NAME [options]'));
    return 0;
  }
  if (a._.length) throw new UsageError(`unexpected argument '${a._[0]}' (options start with --)`);
  if (!a.preset && !a.init) throw new UsageError(`name the model with --preset NAME (${presetNames().join(', ')}) or start from a checkpoint with --init DIR`);
  if (a.dtype !== 'f32' && a.dtype !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got '${a.dtype}'`);
  if (a.recompute !== 'none' && a.recompute !== 'full') throw new UsageError(`--recompute must be none or full, got '${a.recompute}'`);

  const oversubscribed = a.threads === undefined ? null : oversubscriptionWarning(a.threads);
  if (oversubscribed) console.error(`zili train: ${oversubscribed}`);
  const model = applyShapeFlags(a.init ? initModelConfig(a.init) : preset(a.preset!), a);
  const out = a.out ?? path.join('runs', a.preset ?? model.name);
  const steps = a.steps!;
  const lr = a.lr ?? defaultLr(model);
  const globalBatch = a['global-batch']!;
  const pipeline = { pp: a.pp!, vpp: a.vpp!, schedule: a.schedule ? parseSchedule(a.schedule) : defaultSchedule(a.vpp!) };
  const tensorParallel = { tp: a.tp!, sp: a.sp ?? false };
  const dp = a.dp ?? Math.max(1, Math.floor(launchedWorldSize() / (pipeline.pp * tensorParallel.tp * a.cp!)));
  const saveEvery = parseSaveEvery(a['save-every']!);
  const config = makeTrainConfig(model, out, {
    steps,
    exitAfter: a['exit-after'] ?? null,
    saveEvery: saveEvery.every,
    keepCheckpoints: a['keep-checkpoints']!,
    seed: a.seed!,
    resume: a.resume ?? false,
    metrics: a.metrics ?? path.join(out, 'metrics.jsonl'),
    globalBatch,
    microBatch: a['micro-batch'] ?? Math.max(1, Math.min(Math.floor(globalBatch / dp), 8)),
    seqLen: a.seq ?? model.seqLen,
    lr,
    minLr: a['min-lr'] ?? lr / 10,
    warmup: a.warmup ?? defaultWarmup(steps),
    weightDecay: a['weight-decay']!,
    clipNorm: a.clip!,
    dtype: a.dtype as TrainDtype,
    recompute: a.recompute as TrainRecompute,
    backend: a.backend!,
    data: a.data ?? null,
    evalEvery: a['eval-every']!,
    evalBatches: a['eval-batches']!,
    threads: a.threads ?? null,
    dp,
    zero: a.zero as 0 | 1 | 2 | 3,
    bucketMb: a['bucket-mb']!,
    init: a.init ?? null,
    fault: faultConfig(a, saveEvery.auto, dp),
    ...(pipeline.pp > 1 ? { pipeline } : {}),
    ...(tensorParallel.tp > 1 || tensorParallel.sp ? { tensorParallel } : {}),
    ...(a.cp! > 1 ? { contextParallel: { cp: a.cp! } } : {}),
    ...(a.ep! > 1 ? { expertParallel: { ep: a.ep! } } : {}),
  });
  if (a['dry-run-rank'] !== undefined) return dryRunCommand(config, a['dry-run-rank'], { json: a.json ?? false });
  if (a.json) throw new UsageError('--json goes with --dry-run-rank (a training run writes its metrics to --metrics)');
  const world = await openWorld();
  const tb = a.tensorboard && world.rank === 0 ? new TensorBoardSink(a.tensorboard) : null;
  // ranks launched on this machine share its memory (Open MPI and PMIx name how many)
  const localRanks = Number(process.env['OMPI_COMM_WORLD_LOCAL_SIZE'] ?? process.env['PMIX_LOCAL_SIZE'] ?? 1) || 1;
  const hooks = { comm: world, memoryAvailable: os.freemem() / localRanks };
  const r = await trainRun(config, tb ? { ...hooks, onStep: (m: Parameters<TensorBoardSink['step']>[0]) => tb.step(m), onEvent: (e: Parameters<TensorBoardSink['event']>[0]) => tb.event(e) } : hooks).finally(() => tb?.close());
  await world.finalize();
  return r.status === 'interrupted' ? 130 : 0;
}
