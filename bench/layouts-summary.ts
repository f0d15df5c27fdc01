// The table of bench/layouts.sh: per layout, tokens/s, the step split into compute, exposed
// communication and pipeline bubble, and the measured peak memory per rank against the planner's
// prediction for the same layout and program (src/dist/memory-report.ts, src/plan/program-memory.ts).
//   node dist/bench/layouts-summary.js <preset> <global-batch> <micro-batch> <specs file>
// (one line per run: <label>=<run dir>=<train flags>).
// Each run dir holds the trainer's metrics.jsonl (rankStepS, rankWaitS, rankPeakBytes per step).
// A step is timed by its slowest rank; "best" is the fastest measured step (steps 2..N: this machine
// is shared, so the best step is the one least disturbed by other work). Per rank, compute = step
// seconds - seconds waited (idle event loop + blocking collectives, src/dist/step-wait.ts). Under
// pipeline parallelism the wait splits into the bubble the schedule implies for that compute (the
// simulated schedule's idle fraction phi: bubble = compute * phi / (1 - phi)) and the rest, exposed
// transfers; elsewhere every wait is exposed communication.
import { readFileSync } from 'node:fs';
import { plannedProgramMemory } from '../src/dist/memory-report.js';
import { buildSchedule, simulate } from '../src/dist/pipeline-schedule.js';
import { preset } from '../src/nn/presets.js';
import { makeTrainConfig } from '../src/train/train-config.js';

interface StepLine { step: number; stepS: number; rankStepS: number[]; rankWaitS?: number[]; rankPeakBytes?: number[]; tokensPerSec: number }

const [presetName, gbArg, mbArg, specsFile] = process.argv.slice(2);
const runs = readFileSync(specsFile!, 'utf8').trim().split('\n');
const G = Number(gbArg), MB = Number(mbArg);
const MiB = (b: number) => (b / 2 ** 20).toFixed(1);

function flag(flags: string[], name: string): string | undefined {
  const i = flags.indexOf(name);
  return i >= 0 ? flags[i + 1] : undefined;
}

const perf: string[] = [];
const mem: string[] = [];
for (const spec of runs) {
  const [label, dir, flagText = ''] = spec.split('=');
  const flags = flagText.split(/\s+/).filter(Boolean);
  let lines: StepLine[];
  try {
    lines = readFileSync(`${dir}/metrics.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => typeof r.stepS === 'number');
  } catch {
    perf.push(`| ${label} | (run failed: see ${dir}.log) | | | | | |`);
    continue;
  }
  const measured = lines.length > 1 ? lines.slice(1) : lines;
  const best = measured.reduce((a, b) => (b.stepS < a.stepS ? b : a));
  const tp = Number(flag(flags, '--tp') ?? 1), pp = Number(flag(flags, '--pp') ?? 1), vpp = Number(flag(flags, '--vpp') ?? 1);
  const cp = Number(flag(flags, '--cp') ?? 1), ep = Number(flag(flags, '--ep') ?? 1);
  const ranks = best.rankStepS.length;
  const dp = Number(flag(flags, '--dp') ?? ranks / (tp * cp * pp));
  const schedule = (flag(flags, '--schedule') ?? (vpp > 1 ? 'interleaved' : '1f1b')) as 'gpipe' | '1f1b' | 'interleaved';
  const slow = best.rankStepS.indexOf(best.stepS);
  const wait = best.rankWaitS?.[slow] ?? 0;
  const compute = best.stepS - wait;
  let bubble = 0;
  if (pp > 1) {
    const phi = simulate(buildSchedule(schedule, { pp, vpp, microBatches: G / (MB * dp) })).bubbleFraction;
    bubble = Math.min(wait, (compute * phi) / (1 - phi));
  }
  const pct = (x: number) => `${((100 * x) / best.stepS).toFixed(0)}%`;
  perf.push(
    `| ${label} | ${ranks} | ${Math.round(best.tokensPerSec)} (median ${Math.round(median(measured.map((l) => l.tokensPerSec)))}) | ${best.stepS.toFixed(2)} | ` +
      `${compute.toFixed(2)} (${pct(compute)}) | ${(wait - bubble).toFixed(2)} (${pct(wait - bubble)}) | ${pp > 1 ? `${bubble.toFixed(2)} (${pct(bubble)})` : '-'} |`,
  );
  if (ranks === 1 || !best.rankPeakBytes) continue;
  const c = makeTrainConfig(preset(flag(flags, '--preset') ?? presetName!), '/nonexistent', {
    globalBatch: G, microBatch: MB, dp, zero: Number(flag(flags, '--zero') ?? 0) as 0 | 1 | 2 | 3,
    ...(tp > 1 ? { tensorParallel: { tp, sp: flags.includes('--sp') } } : {}),
    ...(pp > 1 ? { pipeline: { pp, vpp, schedule } } : {}),
    ...(cp > 1 ? { contextParallel: { cp } } : {}),
    ...(ep > 1 ? { expertParallel: { ep } } : {}),
  });
  const stages = plannedProgramMemory(c, true);
  // Megatron rank order tp-cp-dp-pp: rank r is on stage floor(r / (tp cp dp))
  const rows = best.rankPeakBytes.map((b, r) => ({ r, b, p: stages[Math.floor(r / (tp * cp * dp))]! }));
  const shown = pp > 1 ? rows.filter((x, i) => rows.findIndex((y) => y.p.stage === x.p.stage) === i) : [rows.reduce((a, x) => (x.b > a.b ? x : a))];
  for (const { r, b, p } of shown)
    mem.push(
      `| ${label} | ${pp > 1 ? `stage ${p.stage} (rank ${r})` : `max of ${ranks} ranks`} | ${MiB(p.weights)} + ${MiB(p.optimizer)} + ${MiB(p.grads)} + ${MiB(p.activations)}${p.gathered ? ` + ${MiB(p.gathered)}` : ''} | ` +
        `${MiB(p.peak)} (${p.peakPhase}) | ${MiB(b)} | **${(b / p.peak).toFixed(3)}** |`,
    );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

console.log('| layout | ranks | tokens/s, best step | step s | compute | exposed communication | pipeline bubble |');
console.log('|---|---|---|---|---|---|---|');
for (const l of perf) console.log(l);
console.log('');
console.log('| layout | rank | planner: weights + optimizer + grads + activations (+ gathered), MiB | planner peak, MiB (phase) | measured peak, MiB | measured / planner |');
console.log('|---|---|---|---|---|---|');
for (const l of mem) console.log(l);
