// Typed loader for the native CPU addon (native/build/Release/zili_native.node, built by
// `node-gyp rebuild -C native` during `npm ci` or `scripts/setup`). Every kernel the addon exports
// is described here; all arrays are row-major TypedArrays (subarray views are fine), bf16 data is
// stored as Uint16Array. Sizes are checked by the addon: a mismatch throws a TypeError naming the
// function and the sizes.
import { createRequire } from 'node:module';
import { repoRoot } from '../../util/paths.js';
import { type GemmTuning, USER_CORETYPE_VAR, gemmTuning } from './gemm-tune.js';
import { BF16_ENGINES, F32_ENGINES, GEMM_CLASSES, classIndex } from './gemm-engines.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

// op names: src/backend/contract.ts (TypeScript) and native/ops.def (C++), checked against each other by test/native-ops.test.ts
import type { BinaryOp, ReduceOp, UnaryOp } from '../contract.js';

type Gemm<E> = (
  transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
  a: E, lda: number, b: E, ldb: number, beta: number, c: Float32Array, ldc: number,
) => void;
type GemmBatched<E> = (
  batch: number, transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
  a: E, strideA: number, lda: number, b: E, strideB: number, ldb: number,
  beta: number, c: Float32Array, strideC: number, ldc: number,
) => void;

export interface NativeKernels {
  /** C = alpha*op(A)*op(B) + beta*C, f32. Engine per shape: see sgemmEngine (oneDNN or OpenBLAS). */
  sgemm: Gemm<Float32Array>;
  /** Batched sgemm; a stride of 0 broadcasts that operand over the batch. */
  sgemmBatched: GemmBatched<Float32Array>;
  /** bf16 x bf16 -> f32 GEMM on the CPU's bf16 instructions (oneDNN matmul, AVX512-BF16 / AMX). */
  bgemm: Gemm<Uint16Array>;
  bgemmBatched: GemmBatched<Uint16Array>;
  /** Plain OpenBLAS cblas_sgemm: the baseline for `bench gemm`. */
  cblasSgemm: Gemm<Float32Array>;
  /** Plain oneDNN dnnl_sgemm (for benchmarks). */
  dnnlSgemm: Gemm<Float32Array>;
  /** Which engine sgemm uses for this shape: 'openblas' | 'onednn'. */
  sgemmEngine(transA: boolean, transB: boolean, m: number, n: number, k: number): string;
  /** What a 2D bgemm of this shape runs: oneDNN's implementation name (e.g. 'brg:avx512_core_amx_bf16') or 'f32-widen:<f32 engine>'. */
  bgemmImpl(transA: boolean, transB: boolean, m: number, n: number, k: number): string;
  /** The shape class the engine choice is made for: 'small' | 'thin' | 'large'. */
  gemmClass(m: number, n: number, k: number): string;
  /** Engine for a shape class (index into GEMM_CLASSES): f32 F32_ENGINES code, bf16 BF16_ENGINES code. */
  setGemmChoice(bf16: boolean, shapeClass: number, engine: number): void;
  /** The kernel family OpenBLAS loaded with (its detection, or OPENBLAS_CORETYPE). */
  openblasCore(): string;
  /** True when oneDNN has a bf16 matmul on this CPU (within ONEDNN_MAX_CPU_ISA). */
  onednnBf16(): boolean;

  /** Round to nearest even; NaN stays NaN, +-inf and -0 preserved. */
  castF32ToBf16(src: Float32Array, dst: Uint16Array): void;
  castBf16ToF32(src: Uint16Array, dst: Float32Array): void;

  unary(op: number, x: Float32Array, out: Float32Array): void;
  /** dx = dy * f'(x); y = f(x) may be an empty array, then it is recomputed. */
  unaryBackward(op: number, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /** out[outShape] (contiguous) = a op b with element strides (0 = broadcast), up to 8 dims. */
  binary(op: number, a: Float32Array, aStrides: Int32Array, b: Float32Array, bStrides: Int32Array, out: Float32Array, outShape: Int32Array): void;
  /** x viewed as [outer, axis, inner] -> out [outer, inner]; sum accumulates in double. */
  reduce(op: number, x: Float32Array, outer: number, axis: number, inner: number, out: Float32Array): void;
  /** dst (contiguous, shape) = src viewed at srcOffset with srcStrides (elements), up to 8 dims. */
  copyStrided(elemBytes: 2 | 4, src: ArrayBufferView, srcOffset: number, srcStrides: Int32Array, dst: ArrayBufferView, shape: Int32Array): void;
  /** The same into a strided view of dst (dstOffset, dstStrides in elements; a stride of 0 over a dimension above 1 throws). */
  copyStridedTo(elemBytes: 2 | 4, src: ArrayBufferView, srcOffset: number, srcStrides: Int32Array, dst: ArrayBufferView, dstOffset: number, dstStrides: Int32Array, shape: Int32Array): void;

  rmsnormFwd(x: Float32Array, w: Float32Array, eps: number, rows: number, dim: number, y: Float32Array, rstd: Float32Array): void;
  /** dw is overwritten with the sum over rows. */
  rmsnormBwd(dy: Float32Array, x: Float32Array, w: Float32Array, rstd: Float32Array, rows: number, dim: number, dx: Float32Array, dw: Float32Array): void;
  /** x, out [B,T,H,D]; rotate-half pairs (i, i+D/2), freq_i = theta^(-2i/D), pos = posOffset + t. inverse = backward. */
  ropeFwd(x: Float32Array, batch: number, seq: number, heads: number, headDim: number, posOffset: number, theta: number, out: Float32Array, inverse: boolean): void;
  swigluFwd(gate: Float32Array, up: Float32Array, out: Float32Array): void;
  swigluBwd(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array): void;
  /** gu [rows, 2·hidden] = [gate | up] (the fused gate/up GEMM's output) → out [rows, hidden]. */
  swigluPackedFwd(gu: Float32Array, rows: number, hidden: number, out: Float32Array): void;
  /** dgu in gu's packed layout (gate half, up half), overwritten. */
  swigluPackedBwd(gu: Float32Array, dout: Float32Array, rows: number, hidden: number, dgu: Float32Array): void;
  /** q, out [B,T,Hq,D]; k, v [B,T,Hkv,D]; lse [B,Hq,T]. Flash-style, no TxT matrix. */
  attentionFwd(q: Float32Array, k: Float32Array, v: Float32Array, batch: number, seq: number, hq: number, hkv: number, headDim: number, scale: number, causal: boolean, out: Float32Array, lse: Float32Array): void;
  /** dq, dk, dv overwritten. */
  attentionBwd(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, dout: Float32Array, batch: number, seq: number, hq: number, hkv: number, headDim: number, scale: number, causal: boolean, dq: Float32Array, dk: Float32Array, dv: Float32Array): void;
  /** Bytes of scratch one attention call allocates (per-thread tiles plus packed copies of q/k/v/dout, linear in seq). */
  attentionScratchBytes(batch: number, seq: number, hq: number, hkv: number, headDim: number, backward: boolean): number;
  /** The attention kernel in use ("avx512", "avx2" or "portable"); with a name, switches to it first (throws when this CPU lacks it). */
  attentionKernel(name?: string): string;
  /** The attention kernels this CPU runs, widest (the default) first. */
  attentionKernels(): string[];
  /** target < 0: ignored (loss 0). */
  crossEntropyFwd(logits: Float32Array, targets: Int32Array, rows: number, vocab: number, losses: Float32Array, lse: Float32Array): void;
  /** dlogits = (softmax - onehot) * scale; zero rows for ignored targets. */
  crossEntropyBwd(logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, vocab: number, scale: number, dlogits: Float32Array): void;
  /** In place; decoupled weight decay; bias correction with 1-based step. */
  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  embeddingFwd(table: Float32Array, ids: Int32Array, dim: number, out: Float32Array): void;
  /** dtable += scatter-add of dout rows (deterministic). */
  embeddingBwd(dout: Float32Array, ids: Int32Array, dim: number, dtable: Float32Array): void;
  /** Sum of squares accumulated in double. */
  sumSquares(x: Float32Array): number;
  scaleInPlace(x: Float32Array, s: number): void;
  /** y += alpha * x */
  axpy(alpha: number, x: Float32Array, y: Float32Array): void;
  threads(): number;
  setThreads(n: number): void;
  /** Measured peak GFLOP/s on `threads` threads of one unit (PEAK_UNITS index); 0 where the CPU or build lacks it. */
  measurePeakGflops(unit: number, threads?: number): number;

  readonly UNARY: Readonly<Record<UnaryOp, number>>;
  readonly BINARY: Readonly<Record<BinaryOp, number>>;
  readonly REDUCE: Readonly<Record<ReduceOp, number>>;
}

/** Compute units with a peak kernel in native/peak.cc, in the addon's order. */
export const PEAK_UNITS = ['f32-fma', 'avx512-bf16', 'amx-bf16'] as const;
export type PeakUnit = (typeof PEAK_UNITS)[number];

let cached: NativeKernels | undefined;
let tuned: GemmTuning | undefined;

/** Threads the addon starts with: ZILI_THREADS, or 2. */
function startThreads(): number {
  const n = Number(process.env['ZILI_THREADS']);
  return Number.isInteger(n) && n > 0 ? n : 2;
}

/** The GEMM engine decision this process runs with (undefined when tuning is off: ZILI_GEMM_TUNE=off). */
export function gemmChoice(): GemmTuning | undefined {
  loadNative();
  return tuned;
}

/**
 * Loads the addon once. Unless ZILI_GEMM_TUNE=off, first fetches (or measures, once per machine) the
 * GEMM engine choice (gemm-tune.ts): sets the OpenBLAS core type it chose before OpenBLAS loads
 * and hands the per-class engines to the addon. Throws a user-facing error when it is not built.
 */
export function loadNative(): NativeKernels {
  if (cached) return cached;
  const root = repoRoot();
  const path = join(root, 'native', 'build', 'Release', 'zili_native.node');
  if (!existsSync(path)) {
    const err = new Error(`the native CPU addon is not built (${path} is missing): run scripts/setup (or npm run build:native)`);
    (err as { userFacing?: boolean }).userFacing = true;
    throw err;
  }
  const require = createRequire(join(root, 'package.json'));
  // OpenMP threads that spin while waiting steal the cores from the GEMM library's threads (and from
  // anything else running): measured here, ten RMSNorm calls took 50-60 ms spinning under load vs
  // 2.7 ms with passive waiting. libgomp reads this when the addon loads; a user setting wins.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  // Debian's OpenBLAS is the pthreads build: after each GEMM its worker thread spins (sched_yield)
  // for 2^28 TSC ticks (~0.1 s) before it sleeps, so it ran beside our OpenMP threads through most
  // of the step (attention, norms, SwiGLU). 2^20 ticks (~0.3 ms) keeps it awake across back-to-back
  // GEMMs only: measured here, ten 50 ms pauses after a GEMM cost 123-134 ms of CPU before, 5 after.
  process.env.OPENBLAS_THREAD_TIMEOUT ??= '20';
  let tuning: GemmTuning | undefined;
  if (process.env['ZILI_GEMM_TUNE'] !== 'off') {
    try {
      tuning = gemmTuning(startThreads(), { log: (s) => console.error(s) });
    } catch (e) {
      // a failed measurement costs speed, not the run: the library defaults stay
      console.error(`zili: ${(e as Error).message}; using OpenBLAS for f32 and oneDNN bf16 where it exists`);
    }
  }
  if (tuning?.openblasCore && process.env['OPENBLAS_CORETYPE'] !== tuning.openblasCore) {
    process.env[USER_CORETYPE_VAR] ??= process.env['OPENBLAS_CORETYPE'] ?? '';
    process.env['OPENBLAS_CORETYPE'] = tuning.openblasCore;
  }
  let n: NativeKernels;
  try {
    n = require(path) as NativeKernels;
  } catch (e) {
    const err = new Error(`cannot load the native CPU addon ${path}: ${(e as Error).message}. Rebuild it: run scripts/setup`);
    (err as { userFacing?: boolean }).userFacing = true;
    throw err;
  }
  if (tuning) {
    for (const c of GEMM_CLASSES) {
      n.setGemmChoice(false, classIndex(c), F32_ENGINES[tuning.f32[c].engine]);
      if (n.onednnBf16()) n.setGemmChoice(true, classIndex(c), BF16_ENGINES[tuning.bf16[c].engine]);
    }
  }
  tuned = tuning;
  cached = n;
  return cached;
}

/** True when the addon is built (for tests and backends that can fall back). */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}
