// The training loop's fault handling, in one place so the loop only calls it: checkpoint saves
// (synchronous or in the background, with `--save-every auto` from Young/Daly), fault injection
// (ZILI_FAULT), skipping updates with a non-finite loss or gradient, rolling back to the last good
// checkpoint on a loss spike (the spike's batches then skipped on every later pass), restart and
// skip events in the metrics and TensorBoard, and the goodput ledger printed at the end.
import { daly } from '../../plan/reliability.js';
import { DEFAULT_CLUSTER } from '../../plan/cluster.js';
import type { RunEvent } from '../../observe/run-record.js';
import type { Communicator } from '../../dist/communicator.js';
import type { DataParallel } from '../../dist/data-parallel.js';
import type { DistCheckpointInput } from '../../dist/dist-checkpoint.js';
import type { Transformer } from '../../nn/transformer.js';
import type { AdamW } from '../../optim/adamw.js';
import { UserError } from '../../util/errors.js';
import { Checkpointer } from '../async-checkpoint.js';
import { type Checkpoint, latestCheckpoint, loadCheckpoint } from '../checkpoint.js';
import { formatDuration } from '../format.js';
import { formatGoodput, GoodputLedger, goodputEvent, type GoodputSummary } from '../goodput.js';
import { MetricsWriter } from '../metrics.js';
import type { StepOptions } from '../step.js';
import type { TrainConfig } from '../train-config.js';
import { modelTensors, optimizerState } from '../train-state.js';
import { DEFAULT_FAULT_TOLERANCE, type FaultToleranceConfig } from './config.js';
import { FaultPlan, SPIKE_FACTOR } from './inject.js';
import { SkipList } from './skip-list.js';
import { SpikeGuard } from './spike-guard.js';
import { weightsFinite } from './weights-finite.js';

const HOURS_PER_YEAR = 8766;

/** The MTBF of a job on `chips` chips at the planner's default failure rate (hours). */
export function defaultMtbfHours(chips: number): number {
  return HOURS_PER_YEAR / (Math.max(1, chips) * DEFAULT_CLUSTER.failuresPerChipYear);
}

/** Steps between checkpoints: Daly's optimal interval for this write time and MTBF, in steps of this length. */
export function autoSaveEvery(writeS: number, mtbfHours: number, stepS: number): number {
  return Math.max(1, Math.round(daly(writeS, mtbfHours * 3600) / Math.max(stepS, 1e-9)));
}

export interface FaultDeps {
  comm: Communicator | null;
  dp: DataParallel | null;
  model: Transformer;
  opt: AdamW | null;
  log: (line: string) => void;
  rank0: boolean;
  startStep: number;
  /** the metrics JSON of the checkpoint the run resumed from (the spike window is there) */
  resumedMetrics: Record<string, unknown> | null;
  /** loads a checkpoint's whole tensors into this rank's layout (src/train/runtime-restore.ts) */
  restore: (ck: Checkpoint) => void;
}

export class FaultRuntime {
  readonly cfg: FaultToleranceConfig;
  private readonly faults: FaultPlan;
  private readonly skipList: SkipList;
  private spikes: SpikeGuard;
  private readonly ckpt: Checkpointer;
  private readonly ledger = new GoodputLedger();
  private readonly t0 = performance.now();
  private metrics: MetricsWriter | null = null;
  private onEvent: ((e: RunEvent) => void) | undefined;
  private log: (line: string) => void;
  private consecutiveSkips = 0;
  private rollbacks = 0;
  private reported = 0;
  private pendingEvents: RunEvent[] = [];
  /** checkpoint interval in steps (0: only at the end); `--save-every auto` sets it after the first write */
  saveEvery: number;
  summary: GoodputSummary | null = null;

  constructor(
    private readonly c: TrainConfig,
    private readonly d: FaultDeps,
  ) {
    this.cfg = c.fault ?? DEFAULT_FAULT_TOLERANCE;
    this.log = d.log;
    this.faults = FaultPlan.fromEnv(c.out, d.comm?.rank ?? 0);
    this.skipList = SkipList.open(c.out);
    this.spikes = new SpikeGuard(this.cfg.spike, d.resumedMetrics?.['spikeWindow'] ?? null);
    this.saveEvery = c.saveEvery;
    const { model, opt } = d;
    this.ckpt = new Checkpointer({
      out: c.out,
      keep: c.keepCheckpoints,
      mode: this.cfg.saveMode,
      log: (l) => this.log(l),
      snapshot: async () => ({ tensors: await modelTensors(model), optimizer: await optimizerState(opt!, model) }),
      dp: d.dp,
      comm: d.comm,
      killInSave: (step) => this.faults.killInSave(step),
    });
  }

  get lastSaved(): string | null {
    return this.ckpt.lastSaved;
  }

  /** Connects the metrics file, the event hook and the progress-aware log; records a supervised restart. */
  attach(metrics: MetricsWriter | null, onEvent: ((e: RunEvent) => void) | undefined, log: (line: string) => void): void {
    this.metrics = metrics;
    this.onEvent = onEvent;
    this.log = this.d.rank0 ? log : () => {};
    const restart = process.env['ZILI_RESTART'];
    if (restart) {
      this.ledger.restarts = Number(restart);
      this.event({ event: 'restart', step: this.d.startStep, count: Number(restart), cause: process.env['ZILI_RESTART_CAUSE'] ?? 'unknown' });
    }
  }

  /** An event line in the metrics; `hook`: also to the event hook (TensorBoard) — restarts, skips, rollbacks. */
  private event(e: RunEvent, hook = true): void {
    if (!this.d.rank0) return;
    this.metrics?.event(e);
    if (hook) this.onEvent?.(e);
  }

  stepOptions(step: number): StepOptions {
    return { skipNonFinite: this.cfg.skipNonFinite, poisonLoss: this.faults.poisonLoss(step) };
  }

  /** The loss the step reports (an injected spike multiplies it). */
  reportedLoss(step: number, loss: number): number {
    return this.faults.spike(step) ? loss * SPIKE_FACTOR : loss;
  }

  skips(step: number): boolean {
    return this.skipList.has(step);
  }

  /** A skipped step: its micro-batches are read (the data position moves on as if it ran) and dropped. */
  skipBatches(step: number, next: () => unknown, accum: number): void {
    for (let i = 0; i < accum; i++) next();
    this.ledger.skippedSteps++;
    this.log(`train: step ${step}: skipped (its batches caused a loss spike that was rolled back; ${this.c.out}/skip-steps.json)`);
    this.event({ event: 'skip', step, reason: 'spike' });
  }

  /** A step whose update was skipped (non-finite loss or gradient); stops the run when skipping cannot help. */
  async nonFiniteSkipped(step: number, loss: number, gradNorm: number): Promise<void> {
    // ZeRO 0-2: every rank holds the same full weights, so all decide alike (ZeRO-3 ranks hold different chunks: not checked)
    if (!(this.d.dp && this.d.dp.zero === 3) && !(await weightsFinite(this.d.model)))
      throw new UserError(`the loss became ${loss} at step ${step} and the weights are no longer finite; lower --lr (now ${this.c.lr}) or raise --warmup`);
    this.consecutiveSkips++;
    this.ledger.skippedSteps++;
    this.log(`train: step ${step}: loss ${loss}, gradient norm ${gradNorm}: update skipped (${this.consecutiveSkips} in a row)`);
    this.event({ event: 'skip', step, reason: 'non-finite', loss: String(loss), gradNorm: String(gradNorm) });
    if (this.consecutiveSkips > this.cfg.maxConsecutiveSkips)
      throw new UserError(
        `the loss became ${loss} at step ${step}; lower --lr (now ${this.c.lr}) or raise --warmup (${this.consecutiveSkips} steps in a row were non-finite: the weights, unchanged since the first, fail on different batches)`,
      );
  }

  stepDone(step: number, seconds: number): void {
    this.consecutiveSkips = 0;
    this.ledger.step(step, seconds);
  }

  /**
   * A spike: flushes any background write, adds the spike's steps to the skip list, restores the
   * latest checkpoint's weights and optimizer (the caller reopens the data and RNG from `ckpt`).
   * Null when the loss is no spike, or when there is no checkpoint to go back to (logged).
   */
  async checkSpike(step: number, loss: number): Promise<{ step: number; ckpt: Checkpoint } | null> {
    const threshold = this.spikes.threshold();
    if (!this.spikes.check(loss)) return null;
    await this.flushCheckpoints();
    const dir = latestCheckpoint(this.c.out, { warn: () => {} });
    const ck = dir ? loadCheckpoint(dir) : null;
    if (!ck || ck.step < this.d.startStep) {
      this.log(`train: step ${step}: loss ${loss.toFixed(4)} is a spike (threshold ${threshold.toFixed(4)}) but there is no checkpoint of this run to roll back to; continuing`);
      this.event({ event: 'spike', step, loss, threshold, rolledBack: false });
      return null;
    }
    if (++this.rollbacks > this.cfg.maxRollbacks)
      throw new UserError(`the loss spiked again at step ${step} (${loss.toFixed(4)}, threshold ${threshold.toFixed(4)}) after ${this.cfg.maxRollbacks} rollbacks; lower --lr (now ${this.c.lr}), or raise --spike-z, then continue with --resume`);
    const skipped: number[] = [];
    for (let s = Math.max(ck.step + 1, step - this.cfg.spike.skip + 1); s <= step; s++) skipped.push(s);
    this.skipList.add(skipped, this.d.rank0);
    this.ledger.rollbackTo(ck.step);
    this.d.restore(ck);
    this.spikes = new SpikeGuard(this.cfg.spike, (ck.manifest.metrics as Record<string, unknown>)['spikeWindow'] ?? null);
    this.log(`train: step ${step}: loss ${loss.toFixed(4)} is a spike (threshold ${threshold.toFixed(4)}): rolled back to ${ck.dir}, skipping step(s) ${skipped.join(', ')}`);
    this.pendingEvents.push({ event: 'rollback', step: ck.step, spikeStep: step, loss, threshold, skipped });
    return { step: ck.step, ckpt: ck };
  }

  /** After a rollback: the metrics lose the lines after `step` (each step once), then get the rollback event. */
  reopenMetrics(step: number): MetricsWriter | null {
    if (this.metrics) {
      const file = this.metrics.file;
      this.metrics.close();
      this.metrics = new MetricsWriter(file, { resumeStep: step });
    }
    for (const e of this.pendingEvents.splice(0)) this.event(e);
    return this.metrics;
  }

  /** End of a completed step: an injected kill fires here. */
  afterStep(step: number): void {
    this.faults.killAfterStep(step);
  }

  async save(meta: DistCheckpointInput): Promise<void> {
    const stall = await this.ckpt.save({ ...meta, metrics: { ...(meta.metrics ?? {}), spikeWindow: this.spikes.state() } });
    this.ledger.checkpointStallS += stall;
    await this.report();
  }

  /** At each step boundary: commits a finished background write (collective under data parallelism). */
  async poll(): Promise<void> {
    await this.ckpt.poll();
    await this.report();
  }

  private async flushCheckpoints(): Promise<void> {
    await this.ckpt.flush();
    await this.report();
  }

  async flush(): Promise<void> {
    await this.flushCheckpoints();
  }

  /**
   * Events for newly committed checkpoints; `--save-every auto` picks its interval after the first
   * (rank 0's choice, broadcast: every rank reaches the first commit at the same call).
   */
  private async report(): Promise<void> {
    for (const t of this.ckpt.timings.slice(this.reported)) {
      this.event({ event: 'checkpoint', step: t.step, stallS: t.stallS, writeS: t.writeS, mode: this.cfg.saveMode }, false);
      if (this.cfg.autoSaveMtbfHours !== null && this.reported === 0) {
        const stepS = this.ledger.summary(0).usefulS / Math.max(1, this.ledger.keptSteps);
        const chosen = Int32Array.of(autoSaveEvery(t.writeS, this.cfg.autoSaveMtbfHours, stepS));
        if (this.d.comm) await this.d.comm.broadcast(chosen, 0);
        const every = chosen[0]!;
        this.log(
          `train: --save-every auto: checkpoint write ${t.writeS.toFixed(2)} s, MTBF ${this.cfg.autoSaveMtbfHours.toPrecision(3)} h, ${stepS.toFixed(3)} s per step -> ` +
            `every ${every} steps (Young/Daly interval ${formatDuration(every * stepS)})`,
        );
        this.saveEvery = every;
        this.event({ event: 'save-interval', step: t.step, every, writeS: t.writeS, stepS, mtbfHours: this.cfg.autoSaveMtbfHours }, false);
      }
      this.reported++;
    }
  }

  /** The run's goodput, printed and written as an event at `step`. */
  finish(step: number): GoodputSummary {
    const g = this.ledger.summary((performance.now() - this.t0) / 1000);
    this.summary = g;
    this.log(`train: ${formatGoodput(g)}`);
    this.event(goodputEvent(step, g), false);
    return g;
  }

  async close(): Promise<void> {
    await this.ckpt.close();
  }
}
