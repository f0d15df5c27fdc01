// Where a training step's time goes on a synchronous backend: wraps the backend's kernel entry
// points (primitives and fused routines) with timers for the duration of one `profile` call and
// sums them by category. "framework" is the rest of the step: JS autograd, tensor bookkeeping,
// allocation. Only for synchronous backends (on an asynchronous one a call returns before the work).
import type { Backend, FusedRoutines } from '../../backend/contract.js';

export const CATEGORIES = ['gemm', 'attention', 'norms', 'elementwise', 'loss', 'optimizer', 'copies', 'casts', 'embedding', 'alloc', 'framework'] as const;
export type Category = (typeof CATEGORIES)[number];

const PRIMITIVES: Record<string, Category> = {
  matmul: 'gemm', unary: 'elementwise', unaryBackward: 'elementwise', binary: 'elementwise', reduce: 'elementwise',
  fill: 'copies', copyStrided: 'copies', write: 'copies', readSync: 'copies', cast: 'casts', random: 'elementwise',
  gatherRows: 'embedding', scatterAddRows: 'embedding', alloc: 'alloc', free: 'alloc',
};
const FUSED: Record<keyof FusedRoutines, Category> = {
  rmsnormFwd: 'norms', rmsnormBwd: 'norms', rope: 'elementwise', swigluFwd: 'elementwise', swigluBwd: 'elementwise',
  swigluPackedFwd: 'elementwise', swigluPackedBwd: 'elementwise',
  attentionFwd: 'attention', attentionBwd: 'attention', crossEntropyFwd: 'loss', crossEntropyBwd: 'loss', adamw: 'optimizer',
};

export interface StepProfile {
  totalMs: number;
  ms: Record<Category, number>;
  calls: Record<Category, number>;
}

/**
 * Runs `step` once with every kernel call timed; returns milliseconds per category. clock 'cpu':
 * this process's CPU time instead of wall time (with one thread, what each kernel computed, little
 * changed by other load on the machine; with more it also counts spinning threads).
 */
export async function profileStep(backend: Backend, step: () => Promise<void>, clock: 'wall' | 'cpu' = 'wall'): Promise<StepProfile> {
  const now = clock === 'wall' ? () => performance.now() : () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  if (backend.asynchronous) throw new Error(`step profile: backend '${backend.name}' is asynchronous; its kernel calls cannot be timed from the host`);
  const ms = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  const calls = Object.fromEntries(CATEGORIES.map((c) => [c, 0])) as Record<Category, number>;
  const restore: (() => void)[] = [];
  const wrap = (obj: Record<string, unknown>, name: string, cat: Category) => {
    const fn = obj[name];
    if (typeof fn !== 'function') return;
    const had = Object.prototype.hasOwnProperty.call(obj, name);
    obj[name] = function (this: unknown, ...args: unknown[]) {
      const t0 = now();
      try {
        return (fn as (...a: unknown[]) => unknown).apply(this, args);
      } finally {
        ms[cat] += now() - t0;
        calls[cat]++;
      }
    };
    restore.push(() => (had ? (obj[name] = fn) : delete obj[name]));
  };
  for (const [name, cat] of Object.entries(PRIMITIVES)) wrap(backend as unknown as Record<string, unknown>, name, cat);
  for (const [name, cat] of Object.entries(FUSED)) wrap(backend.fused as unknown as Record<string, unknown>, name, cat);
  const t0 = now();
  try {
    await step();
  } finally {
    for (const r of restore.reverse()) r();
  }
  const totalMs = now() - t0;
  ms.framework = Math.max(0, totalMs - CATEGORIES.reduce((s, c) => s + (c === 'framework' ? 0 : ms[c]), 0));
  return { totalMs, ms, calls };
}

/** One line: "gemm 120 ms (45%), attention ..." in the categories' order, zero ones left out. */
export function formatProfile(p: StepProfile): string {
  return CATEGORIES.filter((c) => p.ms[c] >= 0.05)
    .map((c) => `${c} ${p.ms[c].toFixed(1)} ms (${((100 * p.ms[c]) / p.totalMs).toFixed(0)}%)`)
    .join(', ');
}
