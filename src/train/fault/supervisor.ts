// `zili run`: supervises a training job the torchelastic way (Open MPI here has no ULFM, and mpirun
// ends the whole job when one rank dies): it launches the job under mpirun, srun (inside a Slurm
// allocation) or as one process, and when it fails restarts the whole job from the latest complete
// checkpoint with --resume, after a doubling backoff, up to --max-restarts times. Each failure is
// logged with its cause (rank, signal or exit status, step); the restarted ranks record a `restart`
// event in the metrics (ZILI_RESTART, ZILI_RESTART_CAUSE). The same failure twice at the same step
// stops the loop (a deterministic crash). Its own SIGINT/SIGTERM go to the launcher, which stops the
// ranks; it never exits while the launcher runs, so no rank outlives it. At the end it prints the
// goodput over all attempts and appends it to the metrics.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { latestCheckpoint, parseStepDirName } from '../checkpoint.js';
import { formatGoodput, goodputEvent, type GoodputSummary } from '../goodput.js';
import { readMetricEvents, readMetrics } from '../metrics.js';
import { describeFailure, type Failure, parseFailure, sameFailure } from './failure.js';

export type Launcher = 'mpirun' | 'srun' | 'none';

export interface SuperviseOptions {
  np: number;
  maxRestarts: number;
  /** first backoff (seconds); doubled after each restart, at most maxBackoffS */
  backoffS: number;
  maxBackoffS: number;
  launcher: Launcher;
  /** extra launcher arguments (e.g. --oversubscribe --bind-to none) */
  launcherArgs: string[];
  /** `zili train` arguments */
  trainArgs: string[];
  /** the run folder and metrics file the train arguments name */
  out: string;
  metrics: string;
  /** the zili entry script */
  zili: string;
  log: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

export function chooseLauncher(np: number, env: NodeJS.ProcessEnv): Launcher {
  if (env['SLURM_JOB_ID']) return 'srun';
  return np > 1 ? 'mpirun' : 'none';
}

/** The command line of one attempt. */
export function launchCommand(o: SuperviseOptions, trainArgs: string[], forward: string[]): string[] {
  const zili = [process.execPath, o.zili, 'train', ...trainArgs];
  if (o.launcher === 'mpirun') {
    const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
    return ['mpirun', ...root, '-np', String(o.np), ...forward.flatMap((k) => ['-x', k]), ...o.launcherArgs, ...zili];
  }
  if (o.launcher === 'srun') return ['srun', '--ntasks', String(o.np), '--kill-on-bad-exit=1', ...o.launcherArgs, ...zili];
  return zili;
}

interface Attempt {
  code: number | null;
  signal: string | null;
  tail: string;
}

const TAIL_BYTES = 64 * 1024;

function runAttempt(cmd: string[], env: NodeJS.ProcessEnv, stopping: { child: ReturnType<typeof spawn> | null }): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { env, stdio: ['inherit', 'pipe', 'pipe'] });
    stopping.child = child;
    let tail = '';
    const keep = (d: Buffer) => {
      tail = (tail + d.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stdout!.on('data', (d: Buffer) => {
      process.stdout.write(new Uint8Array(d));
      keep(d);
    });
    child.stderr!.on('data', (d: Buffer) => {
      process.stderr.write(new Uint8Array(d));
      keep(d);
    });
    child.on('error', (e) => reject(new Error(`cannot start ${cmd[0]}: ${e.message}${cmd[0] === 'mpirun' ? ' (install openmpi-bin, or run on one process with --np 1)' : ''}`)));
    child.on('close', (code, signal) => {
      stopping.child = null;
      resolve({ code, signal, tail });
    });
  });
}

/** The last step the metrics hold, and the steps (with their seconds) after `after`. */
function metricsAfter(file: string, after: number): { last: number; steps: number; seconds: number } {
  if (!fs.existsSync(file)) return { last: after, steps: 0, seconds: 0 };
  let last = 0, steps = 0, seconds = 0;
  for (const m of readMetrics(file)) {
    last = Math.max(last, m.step);
    if (m.step > after) {
      steps++;
      seconds += typeof m['stepS'] === 'number' ? m['stepS'] : 0;
    }
  }
  return { last, steps, seconds };
}

function checkpointStep(out: string): number {
  const dir = latestCheckpoint(out, { warn: () => {} });
  return dir ? (parseStepDirName(path.basename(dir)) ?? 0) : 0;
}

/** Goodput over all attempts: kept steps and stalls from the final metrics, lost work from each failure. */
function jobGoodput(metricsFile: string, wallS: number, restarts: number, recomputedSteps: number, recomputedS: number): GoodputSummary {
  let usefulS = 0, stallS = 0, skipped = 0;
  if (fs.existsSync(metricsFile)) {
    for (const m of readMetrics(metricsFile)) if (!m['skipped'] && typeof m['stepS'] === 'number') usefulS += m['stepS'];
    for (const e of readMetricEvents(metricsFile)) {
      if (e.event === 'checkpoint' && typeof e['stallS'] === 'number') stallS += e['stallS'];
      if (e.event === 'skip') skipped++;
    }
  }
  return {
    wallS,
    usefulS,
    checkpointStallS: stallS,
    recomputedSteps,
    recomputedS,
    otherS: Math.max(0, wallS - usefulS - stallS - recomputedS),
    restarts,
    skippedSteps: skipped,
    goodput: wallS > 0 ? Math.min(1, usefulS / wallS) : 0,
  };
}

const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

/** Runs the job to completion (0), or until it cannot be restarted (the last exit status, at least 1). */
export async function supervise(o: SuperviseOptions): Promise<number> {
  const t0 = performance.now();
  const env = { ...(o.env ?? process.env) };
  const stopping: { child: ReturnType<typeof spawn> | null; signal: NodeJS.Signals | null } = { child: null, signal: null };
  const onSignal = (sig: NodeJS.Signals) => {
    stopping.signal = sig;
    o.log(`zili run: ${sig}: stopping the job (the ranks save and exit)`);
    stopping.child?.kill(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let restarts = 0, recomputedSteps = 0, recomputedS = 0;
  let previous: Failure | null = null;
  try {
    for (;;) {
      const args = [...o.trainArgs];
      if (restarts > 0 && !args.includes('--resume') && latestCheckpoint(o.out, { warn: () => {} })) args.push('--resume');
      const forward = ['ZILI_FAULT', 'ZILI_RESTART', 'ZILI_RESTART_CAUSE', 'ZILI_THREADS', 'ZILI_COMM_TIMEOUT_S'].filter((k) => env[k] !== undefined);
      const cmd = launchCommand(o, args, forward);
      o.log(`zili run: attempt ${restarts + 1}: ${cmd.join(' ')}`);
      const a = await runAttempt(cmd, env, stopping);
      if (a.code === 0) break;
      if (stopping.signal) return a.code ?? 130;
      if (a.code === 2 || a.code === 130) return a.code; // a usage error, or Ctrl-C after saving: not a failure to retry
      const ckptStep = checkpointStep(o.out);
      const lost = metricsAfter(o.metrics, ckptStep);
      const f = parseFailure(a.tail, a.code, a.signal, lost.last);
      o.log(`zili run: attempt ${restarts + 1} failed: ${describeFailure(f)} (launcher exit ${a.code ?? a.signal})`);
      if (previous && sameFailure(previous, f)) {
        o.log(`zili run: the same failure happened twice at step ${f.step} (${describeFailure(f)}); not restarting: it is not transient. Fix its cause, then run again (it resumes from step ${ckptStep})`);
        return a.code || 1;
      }
      if (restarts >= o.maxRestarts) {
        o.log(`zili run: ${restarts} restart(s) used (--max-restarts ${o.maxRestarts}); giving up. Continue later with the same command (it resumes from step ${ckptStep})`);
        return a.code || 1;
      }
      previous = f;
      recomputedSteps += lost.steps;
      recomputedS += lost.seconds;
      const wait = Math.min(o.maxBackoffS, o.backoffS * 2 ** restarts);
      restarts++;
      env['ZILI_RESTART'] = String(restarts);
      env['ZILI_RESTART_CAUSE'] = describeFailure(f);
      o.log(`zili run: restart ${restarts}/${o.maxRestarts} in ${wait} s from the checkpoint of step ${ckptStep} (${lost.steps} step(s) to recompute)`);
      await sleep(wait);
      if (stopping.signal) return 130;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const g = jobGoodput(o.metrics, (performance.now() - t0) / 1000, restarts, recomputedSteps, recomputedS);
  o.log(`zili run: done after ${restarts} restart(s); ${formatGoodput(g)}`);
  if (fs.existsSync(o.metrics)) fs.appendFileSync(o.metrics, JSON.stringify({ ...goodputEvent(metricsAfter(o.metrics, 0).last, g), scope: 'job' }) + '\n');
  return 0;
}
