// The reference backend: plain TypeScript loops with float64 arithmetic, exact and slow. It defines
// the semantics every other backend is checked against (conformance kit, gradcheck in f64).
import type { AdamWDesc, AttentionDesc, Backend, BinaryOp, DeviceBuffer, FusedRoutines, MatmulDesc, ReduceOp, UnaryOp } from '../contract.js';
import { HostBackend, hostBuffer } from '../host-backend.js';
import { type DType, DTYPES, f32ToBf16, readElement } from '../../tensor/dtype.js';
import { binaryScalar, unaryDerivative, unaryScalar } from './math.js';
import { randomHost } from '../../tensor/random.js';

const hb = (b: DeviceBuffer) => hostBuffer(b, 'reference');

/** Reads a buffer as float64 values. */
export function load(b: DeviceBuffer): Float64Array {
  const d = hb(b).data;
  if (d instanceof Float64Array) return d;
  const out = new Float64Array(d.length);
  for (let i = 0; i < d.length; i++) out[i] = readElement(d, i);
  return out;
}

/** Writes float64 values into a buffer, rounding to its dtype. */
export function store(b: DeviceBuffer, v: ArrayLike<number>): void {
  const d = hb(b).data;
  if (d.length !== v.length) throw new Error(`store: ${v.length} values into a buffer of ${d.length}`);
  if (d instanceof Uint16Array) for (let i = 0; i < v.length; i++) d[i] = f32ToBf16(v[i]!);
  else if (d instanceof Int32Array) for (let i = 0; i < v.length; i++) d[i] = Math.trunc(v[i]!);
  else d.set(v);
}

function* indices(shape: readonly number[]): Generator<number[]> {
  const n = shape.reduce((a, b) => a * b, 1);
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    yield idx;
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
  }
}

function dot(idx: number[], strides: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < idx.length; i++) s += idx[i]! * strides[i]!;
  return s;
}

function referenceFused(): FusedRoutines {
  return {
    rmsnormFwd(x, w, eps, rows, dim, y, rstd) {
      const X = load(x), W = load(w), Y = new Float64Array(rows * dim), R = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        let ss = 0;
        for (let j = 0; j < dim; j++) ss += X[r * dim + j]! ** 2;
        const s = 1 / Math.sqrt(ss / dim + eps);
        R[r] = s;
        for (let j = 0; j < dim; j++) Y[r * dim + j] = X[r * dim + j]! * s * W[j]!;
      }
      store(y, Y);
      store(rstd, R);
    },
    rmsnormBwd(dy, x, w, rstd, rows, dim, dx, dw) {
      const DY = load(dy), X = load(x), W = load(w), R = load(rstd);
      const DX = new Float64Array(rows * dim), DW = new Float64Array(dim);
      for (let r = 0; r < rows; r++) {
        const s = R[r]!;
        let dot = 0;
        for (let j = 0; j < dim; j++) dot += DY[r * dim + j]! * W[j]! * X[r * dim + j]!;
        for (let j = 0; j < dim; j++) {
          const i = r * dim + j;
          DX[i] = s * DY[i]! * W[j]! - (s * s * s * X[i]! * dot) / dim;
          DW[j] = DW[j]! + DY[i]! * X[i]! * s;
        }
      }
      store(dx, DX);
      store(dw, DW);
    },
    rope(x, batch, seq, heads, headDim, posOffset, theta, out, inverse) {
      const X = load(x), Y = new Float64Array(X.length), half = headDim / 2;
      for (let b = 0; b < batch; b++)
        for (let t = 0; t < seq; t++)
          for (let h = 0; h < heads; h++) {
            const base = ((b * seq + t) * heads + h) * headDim;
            for (let i = 0; i < half; i++) {
              const ang = (posOffset + t) * Math.pow(theta, (-2 * i) / headDim);
              const c = Math.cos(ang), s = inverse ? -Math.sin(ang) : Math.sin(ang);
              const x1 = X[base + i]!, x2 = X[base + i + half]!;
              Y[base + i] = x1 * c - x2 * s;
              Y[base + i + half] = x2 * c + x1 * s;
            }
          }
      store(out, Y);
    },
    swigluFwd(gate, up, out) {
      const G = load(gate), U = load(up);
      store(out, G.map((g, i) => (g / (1 + Math.exp(-g))) * U[i]!));
    },
    swigluBwd(gate, up, dout, dgate, dup) {
      const G = load(gate), U = load(up), D = load(dout);
      store(dup, G.map((g, i) => (g / (1 + Math.exp(-g))) * D[i]!));
      store(dgate, G.map((g, i) => D[i]! * U[i]! * unaryDerivative('silu', g, 0)));
    },
    attentionFwd(q, k, v, d, out, lse) {
      const Q = load(q), K = load(k), V = load(v);
      const { batch: B, seq: T, headsQ: H, headsKV: HK, headDim: D } = d;
      const O = new Float64Array(Q.length), L = new Float64Array(B * H * T), g = H / HK;
      const s = new Float64Array(T);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++) {
          const hk = Math.floor(h / g);
          for (let i = 0; i < T; i++) {
            const qo = ((b * T + i) * H + h) * D;
            const last = d.causal ? i : T - 1;
            let mx = -Infinity;
            for (let j = 0; j <= last; j++) {
              const ko = ((b * T + j) * HK + hk) * D;
              let acc = 0;
              for (let e = 0; e < D; e++) acc += Q[qo + e]! * K[ko + e]!;
              s[j] = acc * d.scale;
              if (s[j]! > mx) mx = s[j]!;
            }
            let z = 0;
            for (let j = 0; j <= last; j++) z += Math.exp(s[j]! - mx);
            for (let j = 0; j <= last; j++) {
              const p = Math.exp(s[j]! - mx) / z;
              const vo = ((b * T + j) * HK + hk) * D;
              for (let e = 0; e < D; e++) O[qo + e] = O[qo + e]! + p * V[vo + e]!;
            }
            L[(b * H + h) * T + i] = mx + Math.log(z);
          }
        }
      store(out, O);
      store(lse, L);
    },
    attentionBwd(q, k, v, out, lse, dout, d, dq, dk, dv) {
      const Q = load(q), K = load(k), V = load(v), O = load(out), L = load(lse), DO = load(dout);
      const { batch: B, seq: T, headsQ: H, headsKV: HK, headDim: D } = d;
      const DQ = new Float64Array(Q.length), DK = new Float64Array(K.length), DV = new Float64Array(V.length), g = H / HK;
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++) {
          const hk = Math.floor(h / g);
          for (let i = 0; i < T; i++) {
            const qo = ((b * T + i) * H + h) * D;
            let Di = 0;
            for (let e = 0; e < D; e++) Di += DO[qo + e]! * O[qo + e]!;
            const last = d.causal ? i : T - 1;
            for (let j = 0; j <= last; j++) {
              const ko = ((b * T + j) * HK + hk) * D;
              let sc = 0, dp = 0;
              for (let e = 0; e < D; e++) {
                sc += Q[qo + e]! * K[ko + e]!;
                dp += DO[qo + e]! * V[ko + e]!;
              }
              const p = Math.exp(sc * d.scale - L[(b * H + h) * T + i]!);
              const ds = p * (dp - Di) * d.scale;
              for (let e = 0; e < D; e++) {
                DV[ko + e] = DV[ko + e]! + p * DO[qo + e]!;
                DQ[qo + e] = DQ[qo + e]! + ds * K[ko + e]!;
                DK[ko + e] = DK[ko + e]! + ds * Q[qo + e]!;
              }
            }
          }
        }
      store(dq, DQ);
      store(dk, DK);
      store(dv, DV);
    },
    crossEntropyFwd(logits, targets, rows, vocab, losses, lse) {
      const X = load(logits), Tg = load(targets), Lo = new Float64Array(rows), Ls = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        let mx = -Infinity;
        for (let j = 0; j < vocab; j++) mx = Math.max(mx, X[r * vocab + j]!);
        let z = 0;
        for (let j = 0; j < vocab; j++) z += Math.exp(X[r * vocab + j]! - mx);
        Ls[r] = mx + Math.log(z);
        const t = Tg[r]!;
        Lo[r] = t < 0 ? 0 : Ls[r]! - X[r * vocab + t]!;
      }
      store(losses, Lo);
      store(lse, Ls);
    },
    crossEntropyBwd(logits, targets, lse, rows, vocab, scale, dlogits) {
      const X = load(logits), Tg = load(targets), Ls = load(lse), G = new Float64Array(rows * vocab);
      for (let r = 0; r < rows; r++) {
        const t = Tg[r]!;
        if (t < 0) continue;
        for (let j = 0; j < vocab; j++) G[r * vocab + j] = (Math.exp(X[r * vocab + j]! - Ls[r]!) - (j === t ? 1 : 0)) * scale;
      }
      store(dlogits, G);
    },
    adamw(param, grad, m, v, d: AdamWDesc) {
      const P = load(param), G = load(grad), M = load(m), Vv = load(v);
      const bc1 = 1 - Math.pow(d.beta1, d.step), bc2 = 1 - Math.pow(d.beta2, d.step);
      for (let i = 0; i < P.length; i++) {
        M[i] = d.beta1 * M[i]! + (1 - d.beta1) * G[i]!;
        Vv[i] = d.beta2 * Vv[i]! + (1 - d.beta2) * G[i]! * G[i]!;
        P[i] = P[i]! - d.lr * d.weightDecay * P[i]! - (d.lr * (M[i]! / bc1)) / (Math.sqrt(Vv[i]! / bc2) + d.eps);
      }
      store(param, P);
      store(m, M);
      store(v, Vv);
    },
  };
}

export interface ReferenceOptions {
  /** provide the fused routines (true) or leave them to the compositions in ops.ts (false) */
  fused?: boolean;
  memoryLimitBytes?: number;
}

export class ReferenceBackend extends HostBackend implements Backend {
  readonly name: string;
  readonly dtypes: readonly DType[] = DTYPES;
  readonly fused: FusedRoutines;

  constructor(opts: ReferenceOptions = {}) {
    const name = opts.fused === false ? 'reference-unfused' : 'reference';
    super(name, opts.memoryLimitBytes);
    this.name = name;
    this.fused = opts.fused === false ? {} : referenceFused();
  }

  fill(out: DeviceBuffer, value: number): void {
    store(out, new Float64Array(out.numel).fill(value));
  }
  random(out: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number): void {
    store(out, randomHost(dist, seed, offset, out.numel));
  }
  cast(x: DeviceBuffer, out: DeviceBuffer): void {
    store(out, load(x));
  }
  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer): void {
    store(out, load(x).map((v) => unaryScalar(op, v)));
  }
  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void {
    const X = load(x), Y = load(y), DY = load(dy);
    store(dx, X.map((v, i) => DY[i]! * unaryDerivative(op, v, Y[i]!)));
  }
  binary(op: BinaryOp, a: DeviceBuffer, aStrides: readonly number[], b: DeviceBuffer, bStrides: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    const A = load(a), B = load(b), O = new Float64Array(out.numel);
    let i = 0;
    for (const idx of indices(outShape)) O[i++] = binaryScalar(op, A[dot(idx, aStrides)]!, B[dot(idx, bStrides)]!);
    store(out, O);
  }
  reduce(op: ReduceOp, x: DeviceBuffer, outer: number, axis: number, inner: number, out: DeviceBuffer): void {
    const X = load(x), O = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++)
      for (let n = 0; n < inner; n++) {
        let acc = op === 'sum' ? 0 : -Infinity;
        for (let a = 0; a < axis; a++) {
          const v = X[(o * axis + a) * inner + n]!;
          acc = op === 'sum' ? acc + v : v > acc ? v : acc;
        }
        O[o * inner + n] = acc;
      }
    store(out, O);
  }
  copyStrided(src: DeviceBuffer, srcOffset: number, srcStrides: readonly number[], out: DeviceBuffer, outOffset: number, outStrides: readonly number[], shape: readonly number[]): void {
    const S = hb(src).data, O = hb(out).data;
    if (src.dtype !== out.dtype) throw new Error(`${this.name}.copyStrided: dtype ${src.dtype} to ${out.dtype}; cast first`);
    for (const idx of indices(shape)) O[outOffset + dot(idx, outStrides)] = S[srcOffset + dot(idx, srcStrides)]!;
  }
  matmul(a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, d: MatmulDesc): void {
    const A = load(a), B = load(b), C = d.beta === 0 ? new Float64Array(c.numel) : load(c);
    const { m, n, k } = d;
    for (let p = 0; p < d.batch; p++) {
      const ao = p * d.strideA, bo = p * d.strideB, co = p * m * n;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let l = 0; l < k; l++) {
            const av = A[ao + (d.transA ? l * m + i : i * k + l)]!;
            const bv = B[bo + (d.transB ? j * k + l : l * n + j)]!;
            acc += av * bv;
          }
          C[co + i * n + j] = d.alpha * acc + d.beta * C[co + i * n + j]!;
        }
    }
    store(c, C);
  }
  gatherRows(table: DeviceBuffer, ids: DeviceBuffer, dim: number, out: DeviceBuffer): void {
    const T = hb(table).data, I = hb(ids).data, O = hb(out).data;
    const rows = T.length / dim;
    for (let r = 0; r < I.length; r++) {
      const id = I[r]!;
      if (id < 0 || id >= rows) throw new RangeError(`gatherRows: id ${id} out of range [0, ${rows})`);
      for (let j = 0; j < dim; j++) O[r * dim + j] = T[id * dim + j]!;
    }
  }
  scatterAddRows(src: DeviceBuffer, ids: DeviceBuffer, dim: number, table: DeviceBuffer): void {
    const S = load(src), I = hb(ids).data, T = load(table);
    const rows = T.length / dim;
    for (let r = 0; r < I.length; r++) {
      const id = I[r]!;
      if (id < 0 || id >= rows) throw new RangeError(`scatterAddRows: id ${id} out of range [0, ${rows})`);
      for (let j = 0; j < dim; j++) T[id * dim + j] = T[id * dim + j]! + S[r * dim + j]!;
    }
    store(table, T);
  }
}
