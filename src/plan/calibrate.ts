// Calibration of the few physical efficiencies on published runs: predicted vs published MFU, and a
// small derivative-free fit (coordinate search on a log scale) used for the defaults and for
// out-of-sample checks (fit on one paper, predict the other; leave-one-out).
import { balanceRel, chipGeneration, DEFAULT_EFFICIENCY, type Efficiency, FITTED_KEYS } from './efficiency.js';
import { estimateUnchecked } from './estimate.js';
import { PUBLISHED_RUNS, type PublishedRun, runChip, runLayout, runModel } from './published-runs.js';

export interface RunCheck {
  run: PublishedRun;
  predictedMfu: number;
  predictedStepS: number;
  /** (predicted - published) / published */
  relError: number;
  fits: boolean;
  memoryGiB: number;
}

export function checkRun(r: PublishedRun, e: Efficiency = DEFAULT_EFFICIENCY): RunCheck {
  const est = estimateUnchecked({ model: runModel(r), chip: runChip(r), chips: r.gpus, layout: runLayout(r), efficiency: e, stack: r.stack });
  return {
    run: r, predictedMfu: est.mfu, predictedStepS: est.stepTimeS, relError: (est.mfu - r.mfu) / r.mfu, fits: est.fits,
    memoryGiB: est.memory.total / 2 ** 30,
  };
}

export function checkRuns(runs: readonly PublishedRun[] = PUBLISHED_RUNS, e: Efficiency = DEFAULT_EFFICIENCY): RunCheck[] {
  return runs.map((r) => checkRun(r, e));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

export function errorStats(checks: RunCheck[]): { median: number; worst: number; rms: number } {
  const a = checks.map((c) => Math.abs(c.relError));
  return { median: median(a), worst: Math.max(...a), rms: Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length) };
}

/** Loss minimised by the fit: mean squared log error of MFU. */
function loss(runs: readonly PublishedRun[], e: Efficiency): number {
  let s = 0;
  for (const r of runs) {
    const c = checkRun(r, e);
    s += Math.log(c.predictedMfu / r.mfu) ** 2;
  }
  return s / runs.length;
}

const BOUNDS: Record<(typeof FITTED_KEYS)[number], [number, number]> = {
  gemmMax: [0.3, 0.95],
  gemmKappa: [0.05, 20],
  memEff: [0.1, 1],
  hopperRel: [0.5, 1.6],
  ascendRel: [0.4, 1.6],
  deepspeedRel: [0.4, 1.5],
  overlappedRel: [0.6, 1.6],
};

/** Fits the FITTED_KEYS efficiencies to `runs` (coordinate search, shrinking multiplicative steps). */
export function fitEfficiency(runs: readonly PublishedRun[], start: Efficiency = DEFAULT_EFFICIENCY, rounds = 40): Efficiency {
  let best = { ...start };
  // Ascend's factor is fitted only when Ascend runs are in the set (from the balance interpolation);
  // otherwise it stays null and Ascend chips are predicted from their balance
  const ascend = runs.some((r) => chipGeneration(runChip(r)) === 'ascend');
  if (!ascend) best.ascendRel = null;
  else if (best.ascendRel === null) best.ascendRel = balanceRel(runChip(runs.find((r) => chipGeneration(runChip(r)) === 'ascend')!), best);
  let bestLoss = loss(runs, best);
  let step = 0.3;
  for (let round = 0; round < rounds && step > 1e-3; round++) {
    let improved = false;
    for (const k of FITTED_KEYS) {
      const cur = best[k];
      if (cur === null) continue;
      for (const dir of [1, -1]) {
        const [lo, hi] = BOUNDS[k];
        const v = Math.min(hi, Math.max(lo, cur * Math.exp(dir * step)));
        if (v === cur) continue;
        const cand = { ...best, [k]: v };
        const l = loss(runs, cand);
        if (l < bestLoss) {
          best = cand;
          bestLoss = l;
          improved = true;
        }
      }
    }
    if (!improved) step /= 2;
  }
  return best;
}
