// The device contract: what a chip's backend implements for zili to train on it.
//
// A backend owns opaque device buffers and runs kernels on them. Every kernel call only ENQUEUES
// work (a synchronous CPU backend simply runs it at once); the only way data comes back to the host
// is the asynchronous `read`. So an asynchronous device (a command queue, async read-back, buffer
// size limits) fits without changing callers. The set is small: primitives every backend must have,
// plus optional fused routines; when a backend lacks a routine, src/tensor/ops.ts composes it from
// primitives (and autograd differentiates the composition).
import type { DType, HostArray } from '../tensor/dtype.js';

/** An opaque device allocation of `numel` elements of `dtype`, owned by one backend. */
export interface DeviceBuffer {
  readonly backend: string;
  readonly dtype: DType;
  readonly numel: number;
  readonly bytes: number;
}

export interface MemoryStats {
  /** bytes in buffers handed out and not yet freed */
  allocatedBytes: number;
  /** high-water mark of allocatedBytes since the last resetPeak */
  peakBytes: number;
  /** bytes held in the caching allocator's free lists, ready for reuse */
  cachedBytes: number;
  /** buffers handed out and not yet freed (the leak counter) */
  liveBuffers: number;
}

export const UNARY_OPS = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'abs', 'recip', 'square'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'eq', 'lt', 'gt'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];
export const REDUCE_OPS = ['sum', 'max'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

/** Batched row-major GEMM: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]. */
export interface MatmulDesc {
  batch: number;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** element strides between batch entries; 0 broadcasts one matrix over the batch */
  strideA: number;
  strideB: number;
  alpha: number;
  /** 0 overwrites C, 1 accumulates into it */
  beta: number;
}

export interface AttentionDesc {
  batch: number;
  seq: number;
  headsQ: number;
  headsKV: number;
  headDim: number;
  scale: number;
  causal: boolean;
}

export interface AdamWDesc {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step for bias correction */
  step: number;
}

/**
 * Optional fused routines. Shapes: attention q/out [B,T,Hq,D], k/v [B,T,Hkv,D], lse [B,Hq,T];
 * rope x [B,T,H,D] (rotate-half pairs i, i+D/2); rows-major [rows, dim] for norms and losses.
 * All f32.
 */
export interface FusedRoutines {
  rmsnormFwd?(x: DeviceBuffer, w: DeviceBuffer, eps: number, rows: number, dim: number, y: DeviceBuffer, rstd: DeviceBuffer): void;
  rmsnormBwd?(dy: DeviceBuffer, x: DeviceBuffer, w: DeviceBuffer, rstd: DeviceBuffer, rows: number, dim: number, dx: DeviceBuffer, dw: DeviceBuffer): void;
  rope?(x: DeviceBuffer, batch: number, seq: number, heads: number, headDim: number, posOffset: number, theta: number, out: DeviceBuffer, inverse: boolean): void;
  swigluFwd?(gate: DeviceBuffer, up: DeviceBuffer, out: DeviceBuffer): void;
  swigluBwd?(gate: DeviceBuffer, up: DeviceBuffer, dout: DeviceBuffer, dgate: DeviceBuffer, dup: DeviceBuffer): void;
  /** SwiGLU on the packed gate/up GEMM output gu [rows, 2·hidden] = [gate | up] → out [rows, hidden]. */
  swigluPackedFwd?(gu: DeviceBuffer, rows: number, hidden: number, out: DeviceBuffer): void;
  /** dgu [rows, 2·hidden] in gu's packed layout. */
  swigluPackedBwd?(gu: DeviceBuffer, dout: DeviceBuffer, rows: number, hidden: number, dgu: DeviceBuffer): void;
  attentionFwd?(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, d: AttentionDesc, out: DeviceBuffer, lse: DeviceBuffer): void;
  attentionBwd?(q: DeviceBuffer, k: DeviceBuffer, v: DeviceBuffer, out: DeviceBuffer, lse: DeviceBuffer, dout: DeviceBuffer, d: AttentionDesc, dq: DeviceBuffer, dk: DeviceBuffer, dv: DeviceBuffer): void;
  crossEntropyFwd?(logits: DeviceBuffer, targets: DeviceBuffer, rows: number, vocab: number, losses: DeviceBuffer, lse: DeviceBuffer): void;
  crossEntropyBwd?(logits: DeviceBuffer, targets: DeviceBuffer, lse: DeviceBuffer, rows: number, vocab: number, scale: number, dlogits: DeviceBuffer): void;
  adamw?(param: DeviceBuffer, grad: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, d: AdamWDesc): void;
}

export interface Backend {
  readonly name: string;
  /** dtypes this backend stores and computes with */
  readonly dtypes: readonly DType[];
  /** true when kernels run later than they are enqueued (reads must be awaited) */
  readonly asynchronous: boolean;
  readonly fused: FusedRoutines;

  alloc(dtype: DType, numel: number): DeviceBuffer;
  free(buf: DeviceBuffer): void;
  /** host → device; the host array may be reused by the caller as soon as this returns */
  write(buf: DeviceBuffer, data: HostArray): void;
  /** device → host, after all enqueued work that writes `buf` */
  read(buf: DeviceBuffer): Promise<HostArray>;
  /** synchronous read, only on backends with asynchronous = false */
  readSync?(buf: DeviceBuffer): HostArray;
  memory(): MemoryStats;
  resetPeak(): void;
  /** release cached free buffers to the system */
  emptyCache(): void;

  // ---- primitives: every backend implements all of these ----
  fill(out: DeviceBuffer, value: number): void;
  /** seeded counter-based random numbers (Philox4x32-10), identical on every backend */
  random(out: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number): void;
  /** element-wise conversion between any two dtypes (bf16: round to nearest even) */
  cast(x: DeviceBuffer, out: DeviceBuffer): void;
  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer): void;
  /** dx = dy * f'(x); y = f(x) is passed for ops whose derivative is cheaper from it */
  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void;
  /** out[i] = a[i·aStrides] op b[i·bStrides] over outShape (stride 0 broadcasts) */
  binary(op: BinaryOp, a: DeviceBuffer, aStrides: readonly number[], b: DeviceBuffer, bStrides: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void;
  /** x viewed as [outer, axis, inner] reduced over axis into out [outer, inner] */
  reduce(op: ReduceOp, x: DeviceBuffer, outer: number, axis: number, inner: number, out: DeviceBuffer): void;
  /**
   * out[outOffset + Σ idx·outStrides] = src[srcOffset + Σ idx·srcStrides] for every idx in shape:
   * permute, slice, expand (stride 0), concat and strided writes such as a KV-cache append.
   */
  copyStrided(src: DeviceBuffer, srcOffset: number, srcStrides: readonly number[], out: DeviceBuffer, outOffset: number, outStrides: readonly number[], shape: readonly number[]): void;
  matmul(a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, d: MatmulDesc): void;
  /** out[i, :] = table[ids[i], :] */
  gatherRows(table: DeviceBuffer, ids: DeviceBuffer, dim: number, out: DeviceBuffer): void;
  /** table[ids[i], :] += src[i, :], deterministic */
  scatterAddRows(src: DeviceBuffer, ids: DeviceBuffer, dim: number, table: DeviceBuffer): void;
}
