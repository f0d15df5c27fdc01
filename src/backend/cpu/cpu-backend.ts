// The cpu backend: host memory through the caching allocator, kernels from the native addon
// (OpenBLAS / oneDNN GEMM, hand-written fused kernels, both cores). Element-wise work runs in f32;
// bf16 is a storage and GEMM-input type (mixed precision), converted by `cast`.
import type { AdamWDesc, AttentionDesc, Backend, BinaryOp, DeviceBuffer, FusedRoutines, MatmulDesc, ReduceOp, UnaryOp } from '../contract.js';
import { HostBackend, hostBuffer } from '../host-backend.js';
import { type DType, bf16ToF32, f32ToBf16 } from '../../tensor/dtype.js';
import { DTypeError } from '../../tensor/errors.js';
import { contiguousStrides } from '../../tensor/shape.js';
import { randomHost } from '../../tensor/random.js';
import { type NativeKernels, loadNative } from './native.js';

const hb = (b: DeviceBuffer) => hostBuffer(b, 'cpu');
function f32(b: DeviceBuffer, op: string): Float32Array {
  const d = hb(b).data;
  if (!(d instanceof Float32Array)) throw new DTypeError(`cpu.${op}: needs f32 data, got ${b.dtype}; cast it to f32 first (the cpu backend computes element-wise in f32)`);
  return d;
}
function i32(b: DeviceBuffer, op: string): Int32Array {
  const d = hb(b).data;
  if (!(d instanceof Int32Array)) throw new DTypeError(`cpu.${op}: needs i32 ids, got ${b.dtype}`);
  return d;
}
function isContiguous(strides: readonly number[], shape: readonly number[]): boolean {
  const c = contiguousStrides(shape);
  return shape.every((d, i) => d === 1 || strides[i] === c[i]);
}

export interface CpuOptions {
  memoryLimitBytes?: number;
  threads?: number;
}

export class CpuBackend extends HostBackend implements Backend {
  readonly name = 'cpu';
  readonly dtypes: readonly DType[] = ['f32', 'bf16', 'i32'];
  readonly fused: FusedRoutines;
  readonly native: NativeKernels;

  constructor(opts: CpuOptions = {}) {
    super('cpu', opts.memoryLimitBytes);
    this.native = loadNative();
    if (opts.threads) this.native.setThreads(opts.threads);
    const n = this.native;
    this.fused = {
      rmsnormFwd: (x, w, eps, rows, dim, y, rstd) => n.rmsnormFwd(f32(x, 'rmsnorm'), f32(w, 'rmsnorm'), eps, rows, dim, f32(y, 'rmsnorm'), f32(rstd, 'rmsnorm')),
      rmsnormBwd: (dy, x, w, rstd, rows, dim, dx, dw) =>
        n.rmsnormBwd(f32(dy, 'rmsnorm'), f32(x, 'rmsnorm'), f32(w, 'rmsnorm'), f32(rstd, 'rmsnorm'), rows, dim, f32(dx, 'rmsnorm'), f32(dw, 'rmsnorm')),
      rope: (x, b, t, h, d, pos, theta, out, inverse) => n.ropeFwd(f32(x, 'rope'), b, t, h, d, pos, theta, f32(out, 'rope'), inverse),
      swigluFwd: (g, u, out) => n.swigluFwd(f32(g, 'swiglu'), f32(u, 'swiglu'), f32(out, 'swiglu')),
      swigluBwd: (g, u, dout, dg, du) => n.swigluBwd(f32(g, 'swiglu'), f32(u, 'swiglu'), f32(dout, 'swiglu'), f32(dg, 'swiglu'), f32(du, 'swiglu')),
      swigluPackedFwd: (gu, rows, hidden, out) => n.swigluPackedFwd(f32(gu, 'swigluPacked'), rows, hidden, f32(out, 'swigluPacked')),
      swigluPackedBwd: (gu, dout, rows, hidden, dgu) => n.swigluPackedBwd(f32(gu, 'swigluPacked'), f32(dout, 'swigluPacked'), rows, hidden, f32(dgu, 'swigluPacked')),
      attentionFwd: (q, k, v, d: AttentionDesc, out, lse) =>
        n.attentionFwd(f32(q, 'attention'), f32(k, 'attention'), f32(v, 'attention'), d.batch, d.seq, d.headsQ, d.headsKV, d.headDim, d.scale, d.causal, f32(out, 'attention'), f32(lse, 'attention')),
      attentionBwd: (q, k, v, out, lse, dout, d: AttentionDesc, dq, dk, dv) =>
        n.attentionBwd(
          f32(q, 'attention'), f32(k, 'attention'), f32(v, 'attention'), f32(out, 'attention'), f32(lse, 'attention'), f32(dout, 'attention'),
          d.batch, d.seq, d.headsQ, d.headsKV, d.headDim, d.scale, d.causal, f32(dq, 'attention'), f32(dk, 'attention'), f32(dv, 'attention'),
        ),
      crossEntropyFwd: (logits, targets, rows, vocab, losses, lse) =>
        n.crossEntropyFwd(f32(logits, 'crossEntropy'), i32(targets, 'crossEntropy'), rows, vocab, f32(losses, 'crossEntropy'), f32(lse, 'crossEntropy')),
      crossEntropyBwd: (logits, targets, lse, rows, vocab, scale, dlogits) =>
        n.crossEntropyBwd(f32(logits, 'crossEntropy'), i32(targets, 'crossEntropy'), f32(lse, 'crossEntropy'), rows, vocab, scale, f32(dlogits, 'crossEntropy')),
      adamw: (p, g, m, v, d: AdamWDesc) => n.adamw(f32(p, 'adamw'), f32(g, 'adamw'), f32(m, 'adamw'), f32(v, 'adamw'), d.lr, d.beta1, d.beta2, d.eps, d.weightDecay, d.step),
    };
  }

  fill(out: DeviceBuffer, value: number): void {
    const d = hb(out).data;
    d.fill(d instanceof Uint16Array ? f32ToBf16(value) : value);
  }
  random(out: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number): void {
    this.write(out, randomHost(dist, seed, offset, out.numel));
  }
  cast(x: DeviceBuffer, out: DeviceBuffer): void {
    const s = hb(x).data, d = hb(out).data;
    if (s instanceof Float32Array && d instanceof Uint16Array) this.native.castF32ToBf16(s, d);
    else if (s instanceof Uint16Array && d instanceof Float32Array) this.native.castBf16ToF32(s, d);
    else if (d instanceof Int32Array) for (let i = 0; i < s.length; i++) d[i] = Math.trunc(s instanceof Uint16Array ? bf16ToF32(s[i]!) : s[i]!);
    else if (d instanceof Uint16Array) for (let i = 0; i < s.length; i++) d[i] = f32ToBf16(s[i]!);
    else (d as Float32Array).set(s as Int32Array);
  }
  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer): void {
    this.native.unary(this.native.UNARY[op], f32(x, op), f32(out, op));
  }
  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void {
    this.native.unaryBackward(this.native.UNARY[op], f32(x, op), f32(y, op), f32(dy, op), f32(dx, op));
  }
  binary(op: BinaryOp, a: DeviceBuffer, aStrides: readonly number[], b: DeviceBuffer, bStrides: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    if (outShape.length > 8) throw new RangeError(`cpu.${op}: at most 8 dimensions, got ${outShape.length}`);
    this.native.binary(this.native.BINARY[op], f32(a, op), Int32Array.from(aStrides), f32(b, op), Int32Array.from(bStrides), f32(out, op), Int32Array.from(outShape));
  }
  reduce(op: ReduceOp, x: DeviceBuffer, outer: number, axis: number, inner: number, out: DeviceBuffer): void {
    this.native.reduce(this.native.REDUCE[op], f32(x, op), outer, axis, inner, f32(out, op));
  }
  copyStrided(src: DeviceBuffer, srcOffset: number, srcStrides: readonly number[], out: DeviceBuffer, outOffset: number, outStrides: readonly number[], shape: readonly number[]): void {
    const S = hb(src).data, O = hb(out).data;
    if (src.dtype !== out.dtype) throw new DTypeError(`cpu.copyStrided: dtype ${src.dtype} to ${out.dtype}; cast first`);
    let n = 1;
    for (const d of shape) n *= d;
    if (n === 0) return;
    if (isContiguous(outStrides, shape) && shape.length <= 8) {
      const eb = S.BYTES_PER_ELEMENT as 2 | 4;
      this.native.copyStrided(eb, S, srcOffset, Int32Array.from(srcStrides), O.subarray(outOffset, outOffset + n), Int32Array.from(shape));
      return;
    }
    const rank = shape.length;
    // a strided destination (column blocks: concat, splitColumns backward; permuted writes) in the
    // addon; the loop below only for what it does not take (over 8 dims, 8-byte elements, a
    // destination stride of 0 that writes an element more than once)
    if (rank <= 8 && (S.BYTES_PER_ELEMENT === 2 || S.BYTES_PER_ELEMENT === 4) && shape.every((d, i) => d <= 1 || outStrides[i] !== 0)) {
      this.native.copyStridedTo(S.BYTES_PER_ELEMENT as 2 | 4, S, srcOffset, Int32Array.from(srcStrides), O, outOffset, Int32Array.from(outStrides), Int32Array.from(shape));
      return;
    }
    // general strided write: plain loop
    const idx = new Array<number>(rank).fill(0);
    for (let i = 0; i < n; i++) {
      let si = srcOffset, oi = outOffset;
      for (let d = 0; d < rank; d++) {
        si += idx[d]! * srcStrides[d]!;
        oi += idx[d]! * outStrides[d]!;
      }
      O[oi] = S[si]!;
      for (let d = rank - 1; d >= 0; d--) {
        if (++idx[d]! < shape[d]!) break;
        idx[d] = 0;
      }
    }
  }
  matmul(a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, d: MatmulDesc): void {
    const A = hb(a).data, B = hb(b).data, C = f32(c, 'matmul');
    const lda = d.transA ? d.m : d.k, ldb = d.transB ? d.k : d.n, ldc = d.n;
    const n = this.native;
    if (A instanceof Float32Array && B instanceof Float32Array) {
      if (d.batch === 1) n.sgemm(d.transA, d.transB, d.m, d.n, d.k, d.alpha, A, lda, B, ldb, d.beta, C, ldc);
      else n.sgemmBatched(d.batch, d.transA, d.transB, d.m, d.n, d.k, d.alpha, A, d.strideA, lda, B, d.strideB, ldb, d.beta, C, d.m * d.n, ldc);
    } else if (A instanceof Uint16Array && B instanceof Uint16Array) {
      if (d.batch === 1) n.bgemm(d.transA, d.transB, d.m, d.n, d.k, d.alpha, A, lda, B, ldb, d.beta, C, ldc);
      else n.bgemmBatched(d.batch, d.transA, d.transB, d.m, d.n, d.k, d.alpha, A, d.strideA, lda, B, d.strideB, ldb, d.beta, C, d.m * d.n, ldc);
    } else throw new DTypeError(`cpu.matmul: operands must both be f32 or both bf16, got ${a.dtype} and ${b.dtype}`);
  }
  gatherRows(table: DeviceBuffer, ids: DeviceBuffer, dim: number, out: DeviceBuffer): void {
    const T = hb(table).data, I = i32(ids, 'gatherRows'), O = hb(out).data;
    if (T instanceof Float32Array && O instanceof Float32Array) {
      this.native.embeddingFwd(T, I, dim, O);
      return;
    }
    const rows = T.length / dim;
    for (let r = 0; r < I.length; r++) {
      const id = I[r]!;
      if (id < 0 || id >= rows) throw new RangeError(`gatherRows: id ${id} out of range [0, ${rows})`);
      O.set(T.subarray(id * dim, id * dim + dim) as never, r * dim);
    }
  }
  scatterAddRows(src: DeviceBuffer, ids: DeviceBuffer, dim: number, table: DeviceBuffer): void {
    this.native.embeddingBwd(f32(src, 'scatterAddRows'), i32(ids, 'scatterAddRows'), dim, f32(table, 'scatterAddRows'));
  }
}
