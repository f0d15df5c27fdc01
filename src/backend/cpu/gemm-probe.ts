// Child process side of the GEMM engine tuner (gemm-tune.ts): with the native addon loaded under
// the environment the parent chose (OPENBLAS_CORETYPE is read only when OpenBLAS loads, so each
// core type needs its own process), times the engines asked for at each shape class's sample
// shapes and returns GFLOP/s per engine (gemm-probe-main.ts is the process entry point).
import type { NativeKernels } from './native.js';
import { BF16_ENGINES, F32_ENGINES, GEMM_CLASSES, type F32Engine, type GemmClass, SAMPLE_SHAPES, type SampleShape, classIndex } from './gemm-engines.js';

export interface ProbeRequest {
  threads: number;
  f32: boolean;
  bf16: boolean;
  /** f32 engine per class to set before timing the bf16 candidates (widening runs the f32 GEMM) */
  f32Choice?: Partial<Record<GemmClass, F32Engine>>;
  /** timed runs per shape (best is kept) */
  repeat: number;
}
type ProbeShape = SampleShape;
export interface ProbeResult {
  openblasCore: string;
  onednnBf16: boolean;
  /** GFLOP/s per class per engine */
  f32: Record<string, Record<string, number>>;
  bf16: Record<string, Record<string, number>>;
  /** oneDNN's implementation name for a bf16 matmul of each class's first shape */
  bf16Impl: Record<string, string>;
}

/** n pseudo-random values in [-1, 1) from an LCG (GEMM benchmark operands). */
export function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

/** GFLOP/s of a class: its shapes' total FLOPs over the sum of each shape's best time. */
function timeClass(shapes: ProbeShape[], repeat: number, run: (s: ProbeShape, a: Float32Array, b: Float32Array, c: Float32Array) => void): number {
  let flops = 0, seconds = 0;
  for (const s of shapes) {
    const a = filled(s.m * s.k, 1), b = filled(s.k * s.n, 2), c = new Float32Array(s.m * s.n);
    run(s, a, b, c);
    let best = Infinity;
    for (let r = 0; r < repeat; r++) {
      const t0 = process.hrtime.bigint();
      run(s, a, b, c);
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    flops += 2 * s.m * s.n * s.k;
    seconds += best;
  }
  return flops / seconds / 1e9;
}

export function probe(N: NativeKernels, req: ProbeRequest): ProbeResult {
  N.setThreads(req.threads);
  const out: ProbeResult = { openblasCore: N.openblasCore(), onednnBf16: N.onednnBf16(), f32: {}, bf16: {}, bf16Impl: {} };
  const lds = (s: ProbeShape) => ({ lda: s.ta ? s.m : s.k, ldb: s.tb ? s.k : s.n });
  for (const cls of GEMM_CLASSES) {
    const shapes = SAMPLE_SHAPES[cls];
    if (req.f32) {
      const r: Record<string, number> = {};
      r['openblas'] = timeClass(shapes, req.repeat, (s, a, b, c) => N.cblasSgemm(s.ta, s.tb, s.m, s.n, s.k, 1, a, lds(s).lda, b, lds(s).ldb, 0, c, s.n));
      r['onednn'] = timeClass(shapes, req.repeat, (s, a, b, c) => N.dnnlSgemm(s.ta, s.tb, s.m, s.n, s.k, 1, a, lds(s).lda, b, lds(s).ldb, 0, c, s.n));
      out.f32[cls] = r;
    }
    if (req.bf16) {
      const choice = req.f32Choice?.[cls];
      if (choice) N.setGemmChoice(false, classIndex(cls), F32_ENGINES[choice]);
      const r: Record<string, number> = {};
      const bf = (x: Float32Array) => {
        const u = new Uint16Array(x.length);
        N.castF32ToBf16(x, u);
        return u;
      };
      const engines = out.onednnBf16 ? (['onednn', 'widen'] as const) : (['widen'] as const);
      for (const e of engines) {
        N.setGemmChoice(true, classIndex(cls), BF16_ENGINES[e]);
        const cache = new Map<Float32Array, Uint16Array>();
        const u = (x: Float32Array) => cache.get(x) ?? (cache.set(x, bf(x)), cache.get(x)!);
        r[e] = timeClass(shapes, req.repeat, (s, a, b, c) => N.bgemm(s.ta, s.tb, s.m, s.n, s.k, 1, u(a), lds(s).lda, u(b), lds(s).ldb, 0, c, s.n));
      }
      const s0 = shapes[0]!;
      N.setGemmChoice(true, classIndex(cls), BF16_ENGINES[out.onednnBf16 ? 'onednn' : 'widen']);
      out.bf16Impl[cls] = N.bgemmImpl(s0.ta, s0.tb, s0.m, s0.n, s0.k);
      out.bf16[cls] = r;
    }
  }
  return out;
}

