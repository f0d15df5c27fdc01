// The training loop (`zili train`, and tests through `trainRun`): data, model, AdamW with a warmup +
// cosine schedule over the run's total steps, gradient accumulation over micro-batches, clipping,
// MoE bias balancing, per-step metrics, a progress bar, periodic validation, atomic checkpoints
// (every --save-every, at the end, at --exit-after and on Ctrl-C) and bit-exact --resume: weights,
// AdamW moments and step, data position, RNG state and routing biases all come back from the
// checkpoint, so a resumed run computes exactly what the uninterrupted one would have.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backend/contract.js';
import { getBackend } from '../backend/registry.js';
import { ensureBuiltinData } from '../data/builtin.js';
import { TokenLoader } from '../data/loader.js';
import { assertVocabMatches, type LoadedManifest, manifestFile, readManifest, type SplitName, tokenizerPathOf } from '../data/manifest.js';
import { ShardReader } from '../data/shard.js';
import type { LoaderState } from '../data/loader.js';
import { countParams } from '../nn/param-count.js';
import { Transformer } from '../nn/transformer.js';
import { type CosineSchedule, lrAt, validateSchedule } from '../optim/schedule.js';
import { assertCompatible, type Checkpoint, CheckpointError, latestCheckpoint, loadCheckpoint } from './checkpoint.js';
import { validationLoss } from './evaluate.js';
import { formatDuration, formatPercent } from './format.js';
import { assertFitsInMemory } from './memory-check.js';
import { type StepMetrics, MetricsWriter } from './metrics.js';
import { mfu, peakFlops } from './mfu.js';
import { Progress, type ProgressStream } from './progress.js';
import { Rng, type RngState } from './rng-state.js';
import { installInterruptHandler, interrupted } from './signals.js';
import { acquireRunLock } from './run-lock.js';
import { moveAsideStaleMetrics } from './metrics-file.js';
import { UserError } from '../util/errors.js';
import { gradAccumSteps, type TrainConfig, trainConfigJson, tokensPerStep, validateTrainConfig } from './train-config.js';
import { assertLayoutRuns, openParallelRuntime, runParallelStep } from './parallel-runtime.js';
import { initWeights } from './init-weights.js';
import { ensureChatTemplate } from '../serve/chat-template.js';
import { restoreRuntime } from './runtime-restore.js';
import type { Communicator } from '../dist/communicator.js';
import { memoryReport } from '../dist/memory-report.js';
import { StepWaitClock } from '../dist/step-wait.js';
import { anyRank, gatherRankStats, meanOverRanks } from '../dist/rank-agreement.js';
import type { RunEvent } from '../observe/run-record.js';
import { FaultRuntime } from './fault/runtime.js';
import { saveShardedCheckpoint } from '../dist/dist-checkpoint.js';
import { meshDataRank, pipelineOf } from '../dist/pipeline-config.js';

/** Name of the tokenizer copy in a run folder (zili generate reads it). */
export const RUN_TOKENIZER_FILE = 'tokenizer.json';

export interface TrainHooks {
  /** information lines (default: stderr) */
  log?: (line: string) => void;
  /** where the progress bar goes (default: stderr) */
  progressStream?: ProgressStream;
  /** install SIGINT/SIGTERM handlers (default true) */
  handleSignals?: boolean;
  /** bytes of memory available, for the fit check (default: the OS's available memory) */
  memoryAvailable?: number;
  /** called after each step's metrics are computed */
  onStep?: (m: StepMetrics) => void;
  /** the data-parallel ranks (the job's world) when --dp > 1; rank 0 alone logs, shows progress and writes metrics */
  comm?: Communicator;
  /** called (on rank 0) for each event also written to the metrics: restart, skip, rollback, checkpoint, goodput */
  onEvent?: (e: RunEvent) => void;
}

export type TrainStatus = 'completed' | 'exited' | 'interrupted' | 'nothing-to-do';

export interface TrainResult {
  status: TrainStatus;
  /** optimizer steps completed */
  step: number;
  /** the last checkpoint written (null when none was) */
  checkpoint: string | null;
  /** the training loss of each step this call ran */
  losses: number[];
  /** the last validation loss measured (null when none) */
  valLoss: number | null;
  seconds: number;
}

interface DataSource {
  manifest: LoadedManifest;
  tokenizerPath: string;
}

async function resolveData(c: TrainConfig, log: (l: string) => void): Promise<DataSource> {
  if (c.data) {
    const manifest = readManifest(c.data);
    return { manifest, tokenizerPath: tokenizerPathOf(manifest) };
  }
  const d = await ensureBuiltinData({ vocab: c.model.vocab, log });
  return { manifest: readManifest(d.manifestPath), tokenizerPath: d.tokenizerPath };
}

/**
 * Opens every shard of the splits the run reads (header, checksum of the header, exact size), so a
 * missing or damaged shard is reported before the model is allocated; blocks are checked as read.
 */
function checkShards(m: LoadedManifest, splits: SplitName[]): void {
  for (const split of splits) for (const s of m.splits[split].shards) ShardReader.open(manifestFile(m, s.file)).close();
}

/** Copies the data's tokenizer into the run folder (when it exists and differs), so generate finds it. */
function copyTokenizer(src: string, out: string, log: (l: string) => void): void {
  const dst = path.join(out, RUN_TOKENIZER_FILE);
  if (!fs.existsSync(src)) {
    log(`train: note: tokenizer ${src} not found; zili generate will need it next to the checkpoints`);
    return;
  }
  const text = fs.readFileSync(src, 'utf8');
  if (fs.existsSync(dst) && fs.readFileSync(dst, 'utf8') === text) return;
  const tmp = `${dst}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, dst);
}

/** Settings that change the numbers of a run; a resume with different ones is not bit-exact. */
const EXACTNESS_KEYS = ['steps', 'seed', 'globalBatch', 'microBatch', 'seqLen', 'lr', 'minLr', 'warmup', 'weightDecay', 'clipNorm', 'beta1', 'beta2', 'dtype', 'data'] as const;

function threadsOf(be: Backend, c: TrainConfig): number {
  const native = (be as { native?: { threads(): number; setThreads(n: number): void } }).native;
  if (!native) return 1;
  if (c.threads !== null) native.setThreads(c.threads);
  return native.threads();
}

/** Runs (or resumes) a training run to `steps` (or `exitAfter`), holding the run folder's lock meanwhile. */
export async function trainRun(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const c = validateTrainConfig(config);
  if (c.backend === 'meta')
    throw new UserError(`--backend meta computes shapes and bytes, not values: it cannot train. Train on cpu, webgpu or reference; trace a large model with zili bench train --backend meta or zili plan, or dry-run one rank of a layout with --dry-run-rank R`);
  const comm = hooks.comm && hooks.comm.size > 1 ? hooks.comm : null;
  assertLayoutRuns(c, hooks.comm?.size ?? 1);
  const rank0 = !comm || comm.rank === 0;
  const log = !rank0 ? () => {} : hooks.log ?? ((l: string) => process.stderr.write(l + '\n'));
  // Rank 0 owns the run folder (one lock for the whole job); a refusal there ends the job.
  if (!rank0) return trainRunLocked(c, hooks, log, comm, rank0);
  const created = !fs.existsSync(c.out);
  const lock = acquireRunLock(c.out);
  if (lock.replaced) log(`train: note: removed the lock of process ${lock.replaced.pid}, which is no longer running`);
  try {
    return await trainRunLocked(c, hooks, log, comm, rank0);
  } finally {
    lock.release();
    if (created && fs.readdirSync(c.out).length === 0) fs.rmdirSync(c.out); // a run refused before writing anything
  }
}

async function trainRunLocked(c: TrainConfig, hooks: TrainHooks, log: (l: string) => void, comm: Communicator | null, rank0: boolean): Promise<TrainResult> {
  // seconds each rank waits per step (collectives, transfers, bubble): rankWaitS in the metrics
  const waitClock = comm ? new StepWaitClock().watch(comm) : null;
  const startTime = performance.now();
  const quiet = { warn: () => {} };

  // ---- everything that can be wrong is checked before any tensor is allocated ----
  const existing = latestCheckpoint(c.out, c.resume ? {} : quiet);
  if (c.resume && !existing)
    throw new CheckpointError(`--resume: no complete checkpoint in ${c.out} (expected step-NNNNNNNN folders); run without --resume to start a new run there`);
  if (!c.resume && existing)
    throw new CheckpointError(`${c.out} already holds a run (checkpoint ${path.basename(existing)}); pass --resume to continue it, or choose a fresh --out`);
  const schedule: CosineSchedule = { maxLr: c.lr, minLr: c.minLr, warmupSteps: c.warmup, totalSteps: c.steps };
  validateSchedule(schedule);
  if (c.backend !== 'meta') assertFitsInMemory(c, hooks.memoryAvailable);
  const data = await resolveData(c, log);
  assertVocabMatches(data.manifest, c.model.vocab);
  checkShards(data.manifest, c.evalEvery > 0 ? ['train', 'val'] : ['train']);
  let ckpt: Checkpoint | null = null;
  if (c.resume) {
    ckpt = loadCheckpoint(existing!);
    assertCompatible(ckpt.modelConfig, c.model, c.out);
    const saved = (ckpt.trainConfig ?? {}) as Record<string, unknown>;
    const now = trainConfigJson(c);
    // another data-parallel layout splits the same global micro-batches differently: not a change of numbers
    const layout = (t: Record<string, unknown>) => ({ dp: (t['dp'] as number | undefined) ?? 1, zero: (t['zero'] as number | undefined) ?? 0, micro: t['microBatch'] as number });
    const [was, is] = [layout(saved), layout(now)];
    const relaid = was.dp !== is.dp && was.micro * was.dp === is.micro * is.dp;
    if (relaid || was.zero !== is.zero)
      log(`train: note: resuming dp${was.dp} ZeRO-${was.zero} as dp${is.dp} ZeRO-${is.zero}: the losses follow the uninterrupted run's within float rounding (reductions run in another order), not bit for bit`);
    const diff = EXACTNESS_KEYS.filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(now[k]) && !(relaid && k === 'microBatch'));
    if (diff.length) log(`train: note: resuming with different ${diff.map((k) => `${k} (${JSON.stringify(saved[k])} -> ${JSON.stringify(now[k])})`).join(', ')}; the run will not match an uninterrupted one`);
  }
  const startStep = ckpt?.step ?? 0;
  const stopAt = c.exitAfter ?? c.steps;
  const pc = countParams(c.model);
  log(`train: model '${c.model.name}': ${pc.total.toLocaleString('en-US')} parameters (${pc.active.toLocaleString('en-US')} active per token)`);
  if (startStep >= stopAt) {
    log(`train: ${ckpt!.dir} is at step ${startStep}; nothing to do up to step ${stopAt} (raise --steps to train further)`);
    return { status: 'nothing-to-do', step: startStep, checkpoint: ckpt!.dir, losses: [], valLoss: null, seconds: 0 };
  }

  fs.mkdirSync(c.out, { recursive: true });
  copyTokenizer(data.tokenizerPath, c.out, log);
  ensureChatTemplate(c.out);
  const be = await getBackend(c.backend);
  const threads = threadsOf(be, c);
  const peak = peakFlops(be, c.dtype, threads);
  const accum = gradAccumSteps(c);
  // the data-parallel replica this rank reads for: pipeline stages, and the ranks of one tensor- or
  // context-parallel group, all read the same batches
  const pipelined = !!pipelineOf(c);
  const dataRank = meshDataRank(c, comm?.rank ?? 0);
  const openTrain = (state: LoaderState | undefined) =>
    TokenLoader.open(data.manifest, { split: 'train', batch: c.microBatch, seqLen: c.seqLen, seed: c.seed, state, rank: dataRank, worldSize: c.dp });
  let loader = openTrain(ckpt?.data as LoaderState | undefined);
  // plain data parallelism splits the validation batches over the ranks (their mean is taken); pipeline
  // and tensor parallelism evaluate the same batches on every replica
  const valSliced = !pipelined && !c.tensorParallel;
  const openVal = () => TokenLoader.open(data.manifest, { split: 'val', batch: c.microBatch, seqLen: c.seqLen, shuffle: false, ...(valSliced ? { rank: dataRank, worldSize: c.dp } : {}) });
  if (c.evalEvery > 0) openVal().close(); // a validation split too small fails now, not at the first evaluation
  const model = new Transformer(c.model, be, { seed: c.seed, dtype: c.dtype, recompute: c.recompute });
  const adamw = { beta1: c.beta1, beta2: c.beta2, eps: 1e-8, weightDecay: c.weightDecay, clipNorm: c.clipNorm };
  // the same construction the dry run drives (src/train/parallel-runtime.ts)
  const runtime = await openParallelRuntime(model, comm, c, adamw);
  const { pp, tensorPar, ctxPar, expertPar, dp, opt } = runtime;
  let metrics: MetricsWriter | null = null;
  let removeHandler = () => {};
  const losses: number[] = [];
  let valLoss: number | null = null;
  let status: TrainStatus = 'completed';
  let shardedSaved: string | null = null; // the newest pipeline / tensor-parallel checkpoint
  const ft = new FaultRuntime(c, {
    comm, dp, model, opt, log, rank0, startStep, resumedMetrics: ckpt?.manifest.metrics ?? null,
    // a spike rolls back through the same restore as a resume: each layout loads its own part
    restore: (ck: Checkpoint) => restoreRuntime(runtime, model, ck),
  });
  try {
    // Reserved for stochastic parts of training (dropout, sampling-based data mixing): saved and restored
    // with every checkpoint so that adding one keeps resume exact.
    let rng = new Rng(c.seed, 1);
    if (ckpt) {
      restoreRuntime(runtime, model, ckpt);
      if (ckpt.rng) rng = Rng.fromState(ckpt.rng as RngState);
      log(`train: resumed from ${ckpt.dir} at step ${startStep}`);
    } else if (c.init) initWeights(model, c.init, c.out, data.tokenizerPath, log);
    ckpt = null; // its host copies are no longer needed

    const setAside = c.metrics && !c.resume && rank0 ? moveAsideStaleMetrics(c.metrics) : null;
    if (setAside) log(`train: note: moved the metrics of an earlier run in ${c.out} to ${setAside}`);
    metrics = c.metrics && rank0 ? new MetricsWriter(c.metrics, c.resume ? { resumeStep: startStep } : {}) : null;
    if (hooks.handleSignals !== false) removeHandler = installInterruptHandler();
    const progress = new Progress({ total: stopAt, label: 'train', stream: rank0 ? hooks.progressStream : { write: () => true } });
    log(
      `train: steps ${startStep + 1}..${stopAt} of ${c.steps}, ${c.globalBatch} x ${c.seqLen} tokens per step` +
        (accum > 1 ? ` (${accum} micro-batches of ${c.microBatch})` : '') +
        `, lr ${+c.lr.toPrecision(4)} (warmup ${c.warmup}, cosine to ${+c.minLr.toPrecision(4)}), ${c.dtype}, backend ${be.name}, ${threads} thread(s), out ${c.out}`,
    );

    ft.attach(metrics, hooks.onEvent, (l) => progress.log(l));
    const save = async (step: number, extra: Record<string, unknown>, data = loader.state()) => {
      const input = { modelConfig: c.model, step, trainConfig: trainConfigJson(c), data, rng: rng.state(), metrics: extra };
      if (pp || tensorPar || expertPar) {
        // pipeline stages (under tp × dp too), tensor-parallel and expert shards are written synchronously (not through the background writer yet)
        const writers = expertPar ? expertPar.mesh.world : comm!;
        shardedSaved = await saveShardedCheckpoint(c.out, pp ? pp.shards() : tensorPar ? tensorPar.shards(opt!) : expertPar!.shards(opt!), writers, input, c.keepCheckpoints);
        progress.log(`train: saved checkpoint ${shardedSaved} (${writers.size} ranks' shards)`);
        return;
      }
      await ft.save(input);
    };

    for (let step = startStep + 1; step <= stopAt; step++) {
      await ft.poll();
      if (ft.skips(step)) {
        // a step a loss spike was rolled back at: its batches are read and dropped, no update
        ft.skipBatches(step, () => loader.next(), accum);
        losses.push(NaN);
        if (step === stopAt || (ft.saveEvery > 0 && step % ft.saveEvery === 0)) await save(step, { loss: losses[losses.length - 1], valLoss });
        continue;
      }
      const t0 = performance.now();
      const lr = lrAt(step, schedule);
      waitClock?.start();
      comm?.setStep(step);
      const dataBefore = loader.state();
      // Ctrl-C is honoured between micro-batches on one process; a data-parallel step runs to its end
      // (every rank must take part in its collectives)
      const stepOpts = ft.stepOptions(step);
      const done = await runParallelStep(runtime, model, loader, accum, lr, stepOpts, interrupted);
      if (!done) {
        // Ctrl-C inside the step: its partial gradients are dropped; save the last complete step
        const last = step - 1;
        if (last > startStep) await save(last, { loss: losses[losses.length - 1], valLoss }, dataBefore);
        status = 'interrupted';
        break;
      }
      const { aux, gradNorm } = done;
      const loss = ft.reportedLoss(step, done.loss);
      // every rank's step time (and peak memory): the slowest rank sets the pace
      const ranks = comm ? await gatherRankStats(comm, (performance.now() - t0) / 1000, be.memory().peakBytes, waitClock!.waitedS()) : null;
      const stepS = ranks ? Math.max(...ranks.stepS) : (performance.now() - t0) / 1000;
      if (ranks && step === startStep + 1) log(memoryReport(c, ranks.peakBytes, dp?.stateBytes()));
      const tokensPerSec = tokensPerStep(c) / stepS;
      const util = mfu(tokensPerSec, c.model, c.seqLen, peak);
      losses.push(loss);
      if (c.evalEvery > 0 && (step % c.evalEvery === 0 || step === c.steps)) {
        valLoss = pp
          ? await pp.validationLoss(openVal, c.evalBatches)
          : tensorPar
            ? await tensorPar.validationLoss(openVal, c.evalBatches)
            : expertPar
              ? await expertPar.validationLoss(openVal, c.evalBatches)
              : dp
              ? await dp.withFullParams(async () => meanOverRanks(comm!, await validationLoss(model, openVal, c.evalBatches)))
              : await validationLoss(model, openVal, c.evalBatches);
        progress.log(`train: step ${step}: validation loss ${valLoss.toFixed(4)} (train ${loss.toFixed(4)})`);
      }
      const record: StepMetrics = {
        step,
        loss,
        lr,
        tokensPerSec,
        gradNorm,
        mfu: util,
        elapsedS: (performance.now() - startTime) / 1000,
        tokens: step * tokensPerStep(c),
        rssBytes: process.memoryUsage.rss(),
        ...(c.model.moe ? { aux } : {}),
        stepS,
        rankStepS: ranks ? ranks.stepS : [stepS],
        ...(ranks ? { rankWaitS: ranks.waitS, rankPeakBytes: ranks.peakBytes } : {}),
        // data parallel: seconds rank 0 spent blocked on collectives in the step (exposed communication)
        ...('commWaitS' in done ? { commWaitS: done.commWaitS } : {}),
        ...(done.skipped ? { skipped: 'non-finite' } : {}),
        ...(c.evalEvery > 0 && (step % c.evalEvery === 0 || step === c.steps) ? { valLoss } : {}),
      };
      metrics?.write(record);
      hooks.onStep?.(record);
      progress.update(step, { loss, 'tok/s': Math.round(tokensPerSec), MFU: formatPercent(util) });
      if (done.skipped) await ft.nonFiniteSkipped(step, loss, gradNorm);
      else if (!Number.isFinite(loss)) throw new UserError(`the loss became ${loss} at step ${step}; lower --lr (now ${c.lr}) or raise --warmup`);
      else ft.stepDone(step, stepS);
      const back = done.skipped ? null : await ft.checkSpike(step, loss);
      if (back) {
        // rolled back to the checkpoint of step back.step: state, data position and RNG as saved there
        loader.close();
        loader = openTrain(back.ckpt.data as LoaderState);
        if (back.ckpt.rng) rng = Rng.fromState(back.ckpt.rng as RngState);
        losses.length = Math.max(0, back.step - startStep);
        metrics = ft.reopenMetrics(back.step);
        step = back.step;
        continue;
      }
      ft.afterStep(step);

      await new Promise((r) => setImmediate(r)); // lets a Ctrl-C be seen
      const stop = comm ? await anyRank(comm, interrupted()) : interrupted(); // ranks stop (and save) together
      if (stop || step === stopAt || (ft.saveEvery > 0 && step % ft.saveEvery === 0)) await save(step, { loss, valLoss });
      if (stop) {
        status = 'interrupted';
        break;
      }
      if (step === stopAt && stopAt < c.steps) status = 'exited';
    }
    await ft.flush();
    ft.finish(startStep + losses.length);
    progress.finish();
  } finally {
    await ft.close();
    removeHandler();
    metrics?.close();
    loader.close();
    if (!pp) opt?.dispose();
    dp?.dispose();
    pp?.dispose();
    model.dispose();
  }
  const seconds = (performance.now() - startTime) / 1000;
  const last = losses.length ? losses[losses.length - 1]! : NaN;
  log(
    `train: ${status === 'interrupted' ? 'interrupted' : status === 'exited' ? 'stopped (--exit-after)' : 'done'} at step ${startStep + losses.length}: ` +
      `loss ${last.toFixed(4)} (first ${losses[0]?.toFixed(4)})${valLoss !== null ? `, validation ${valLoss.toFixed(4)}` : ''}, ${formatDuration(seconds)}`,
  );
  return { status, step: startStep + losses.length, checkpoint: shardedSaved ?? ft.lastSaved, losses, valLoss, seconds };
}
