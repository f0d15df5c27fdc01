// Elementwise, reduction, copy and fused kernels of the native addon against float64 JS references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative } from '../src/backend/cpu/native.js';
import { assertClose, randArray, rng } from './native-helpers.js';

const N = loadNative();
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const GC = Math.sqrt(2 / Math.PI);

const UNARY_REF: Record<string, [(x: number) => number, (x: number) => number, number, number]> = {
  // f, f', lo, hi (input range)
  neg: [(x) => -x, () => -1, -3, 3],
  exp: [Math.exp, Math.exp, -3, 3],
  log: [Math.log, (x) => 1 / x, 0.1, 5],
  sqrt: [Math.sqrt, (x) => 0.5 / Math.sqrt(x), 0.1, 5],
  rsqrt: [(x) => 1 / Math.sqrt(x), (x) => -0.5 * x ** -1.5, 0.1, 5],
  sin: [Math.sin, Math.cos, -4, 4],
  cos: [Math.cos, (x) => -Math.sin(x), -4, 4],
  tanh: [Math.tanh, (x) => 1 - Math.tanh(x) ** 2, -3, 3],
  sigmoid: [sig, (x) => sig(x) * (1 - sig(x)), -6, 6],
  relu: [(x) => Math.max(0, x), (x) => (x > 0 ? 1 : 0), -3, 3],
  silu: [(x) => x * sig(x), (x) => sig(x) * (1 + x * (1 - sig(x))), -6, 6],
  gelu: [
    (x) => 0.5 * x * (1 + Math.tanh(GC * (x + 0.044715 * x ** 3))),
    (x) => {
      const t = Math.tanh(GC * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GC * (1 + 3 * 0.044715 * x * x);
    },
    -4, 4,
  ],
  abs: [Math.abs, (x) => Math.sign(x), -3, 3],
  recip: [(x) => 1 / x, (x) => -1 / (x * x), 0.2, 4],
  square: [(x) => x * x, (x) => 2 * x, -3, 3],
};

test('unary and unaryBackward: every op, with and without y', () => {
  const r = rng(10);
  assert.deepEqual(Object.keys(N.UNARY).sort(), Object.keys(UNARY_REF).sort());
  for (const [name, [f, df, lo, hi]] of Object.entries(UNARY_REF)) {
    const op = N.UNARY[name as keyof typeof N.UNARY];
    for (const n of [1, 7, 100003]) {
      const x = randArray(n, r, lo, hi), y = new Float32Array(n), dy = randArray(n, r), dx = new Float32Array(n);
      N.unary(op, x, y);
      assertClose(y, Array.from(x, f), 2e-6, 1e-6, `unary ${name}`);
      N.unaryBackward(op, x, y, dy, dx);
      const want = Array.from(x, (v, i) => dy[i]! * df(v));
      assertClose(dx, want, 2e-5, 1e-6, `unaryBackward ${name}`);
      const dx2 = new Float32Array(n);
      N.unaryBackward(op, x, new Float32Array(0), dy, dx2);
      assertClose(dx2, want, 2e-5, 1e-6, `unaryBackward ${name} (y recomputed)`);
    }
  }
  assert.throws(() => N.unary(99, new Float32Array(1), new Float32Array(1)), /unary: unknown op code 99/);
  assert.throws(() => N.unary(0, new Float32Array(2), new Float32Array(1)), (e: Error) => e instanceof TypeError && /unary: out has 1 elements, expected 2/.test(e.message));
});

function contiguousStrides(shape: number[]): number[] {
  const s = new Array(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

const BINARY_REF: Record<string, (a: number, b: number) => number> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b,
  max: Math.max, min: Math.min, pow: Math.pow,
  eq: (a, b) => (a === b ? 1 : 0), lt: (a, b) => (a < b ? 1 : 0), gt: (a, b) => (a > b ? 1 : 0),
};

test('binary: every op with broadcasting, transposed views and offsets', () => {
  const r = rng(11);
  const cases: { shape: number[]; aShape: number[]; bShape: number[]; permA?: boolean }[] = [
    { shape: [5], aShape: [5], bShape: [5] },
    { shape: [3, 4], aShape: [3, 4], bShape: [1, 4] },
    { shape: [3, 4], aShape: [3, 1], bShape: [1, 4] },
    { shape: [2, 3, 5, 7], aShape: [2, 3, 5, 7], bShape: [1, 3, 1, 7] },
    { shape: [2, 1, 3, 1, 2, 2, 1, 3], aShape: [2, 1, 3, 1, 2, 2, 1, 3], bShape: [1, 1, 3, 1, 1, 2, 1, 1] },
    { shape: [4, 6], aShape: [6, 4], bShape: [4, 6], permA: true },
    { shape: [70000], aShape: [70000], bShape: [1] },
  ];
  for (const cs of cases)
    for (const [name, f] of Object.entries(BINARY_REF)) {
      const op = N.BINARY[name as keyof typeof N.BINARY];
      const na = cs.aShape.reduce((x, y) => x * y, 1), nb = cs.bShape.reduce((x, y) => x * y, 1);
      const a = randArray(na, r, 0.5, 2), b = randArray(nb, r, 0.5, 2);
      if (name === 'eq') for (let i = 0; i < Math.min(na, nb); i += 2) a[i] = b[i]!;
      let as: number[];
      if (cs.permA) { const c = contiguousStrides(cs.aShape); as = [c[1]!, c[0]!]; }
      else as = contiguousStrides(cs.aShape).map((s, i) => (cs.aShape[i] === 1 ? 0 : s));
      const bs = contiguousStrides(cs.bShape).map((s, i) => (cs.bShape[i] === 1 ? 0 : s));
      const total = cs.shape.reduce((x, y) => x * y, 1);
      const out = new Float32Array(total);
      N.binary(op, a, Int32Array.from(as), b, Int32Array.from(bs), out, Int32Array.from(cs.shape));
      const want = new Float64Array(total);
      const idx = new Array(cs.shape.length).fill(0);
      for (let i = 0; i < total; i++) {
        let rem = i, oa = 0, ob = 0;
        for (let d = cs.shape.length - 1; d >= 0; d--) { idx[d] = rem % cs.shape[d]!; rem = Math.floor(rem / cs.shape[d]!); oa += idx[d] * as[d]!; ob += idx[d] * bs[d]!; }
        want[i] = f(a[oa]!, b[ob]!);
      }
      assertClose(out, want, 2e-6, 1e-7, `binary ${name} ${JSON.stringify(cs.shape)}`);
    }
  assert.throws(() => N.binary(0, new Float32Array(3), Int32Array.from([1]), new Float32Array(4), Int32Array.from([1]), new Float32Array(4), Int32Array.from([4])), /binary: a has 3 elements, the view reaches offset 3/);
  assert.throws(() => N.binary(0, new Float32Array(4), Int32Array.from([1]), new Float32Array(4), Int32Array.from([1]), new Float32Array(5), Int32Array.from([4])), /binary: out has 5 elements, expected 4/);
  const mx = new Float32Array(2);
  N.binary(N.BINARY.max, Float32Array.from([NaN, 1]), Int32Array.from([1]), Float32Array.from([1, NaN]), Int32Array.from([1]), mx, Int32Array.from([2]));
  assert.ok(Number.isNaN(mx[0]) && Number.isNaN(mx[1]), 'max propagates NaN like Math.max');
});

test('reduce: sum (double accumulation) and max over [outer, axis, inner]', () => {
  const r = rng(12);
  for (const [outer, axis, inner] of [[1, 1, 1], [3, 5, 1], [4, 7, 3], [2, 1000, 300], [1, 100001, 1], [5, 0, 2]] as const) {
    const x = randArray(outer * axis * inner, r, -2, 2);
    for (const op of ['sum', 'max'] as const) {
      if (op === 'max' && axis === 0) continue;
      const out = new Float32Array(outer * inner);
      N.reduce(N.REDUCE[op], x, outer, axis, inner, out);
      const want = new Float64Array(outer * inner);
      for (let o = 0; o < outer; o++)
        for (let j = 0; j < inner; j++) {
          let s = op === 'sum' ? 0 : -Infinity;
          for (let i = 0; i < axis; i++) { const v = x[(o * axis + i) * inner + j]!; s = op === 'sum' ? s + v : Math.max(s, v); }
          want[o * inner + j] = s;
        }
      assertClose(out, want, 1e-6, 1e-6, `reduce ${op} ${outer}x${axis}x${inner}`);
    }
  }
  assert.throws(() => N.reduce(0, new Float32Array(6), 2, 2, 2, new Float32Array(4)), /reduce: x has 6 elements, expected 8 \(outer=2 axis=2 inner=2\)/);
});

test('copyStrided: permute, slice with offset, expand, f32 and bf16, up to 8 dims', () => {
  const r = rng(13);
  // permute [2,3,4] -> [4,2,3]
  const src = randArray(24, r);
  const dst = new Float32Array(24);
  N.copyStrided(4, src, 0, Int32Array.from([1, 12, 4]), dst, Int32Array.from([4, 2, 3]));
  for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) for (let k = 0; k < 3; k++) assert.equal(dst[(i * 2 + j) * 3 + k], src[j * 12 + k * 4 + i]);
  // slice rows 1..2, cols 2..4 of a 4x5, from a subarray view
  const big = randArray(3 + 20, r), m = big.subarray(3), sl = new Float32Array(6);
  N.copyStrided(4, m, 7, Int32Array.from([5, 1]), sl, Int32Array.from([2, 3]));
  assert.deepEqual([...sl], [m[7], m[8], m[9], m[12], m[13], m[14]]);
  // expand [3] -> [2,3] and bf16 transpose
  const e = new Float32Array(6);
  N.copyStrided(4, Float32Array.from([1, 2, 3]), 0, Int32Array.from([0, 1]), e, Int32Array.from([2, 3]));
  assert.deepEqual([...e], [1, 2, 3, 1, 2, 3]);
  const u = Uint16Array.from([1, 2, 3, 4, 5, 6]), ut = new Uint16Array(6);
  N.copyStrided(2, u, 0, Int32Array.from([1, 3]), ut, Int32Array.from([3, 2]));
  assert.deepEqual([...ut], [1, 4, 2, 5, 3, 6]);
  // 8 dims, reversed
  const shape = [2, 1, 2, 3, 1, 2, 2, 1];
  const n = shape.reduce((a, b) => a * b, 1), s8 = randArray(n, r), d8 = new Float32Array(n);
  const st = contiguousStrides(shape.slice().reverse()).reverse();
  N.copyStrided(4, s8, 0, Int32Array.from(st), d8, Int32Array.from(shape));
  let i = 0;
  const it = (d: number, off: number): void => { if (d === 8) { assert.equal(d8[i++], s8[off]); return; } for (let j = 0; j < shape[d]!; j++) it(d + 1, off + j * st[d]!); };
  it(0, 0);
  assert.throws(() => N.copyStrided(4, src, 20, Int32Array.from([1]), new Float32Array(5), Int32Array.from([5])), /copyStrided: src has 24 elements, the view spans offsets 20..24/);
  assert.throws(() => N.copyStrided(2, src, 0, Int32Array.from([1]), new Float32Array(5), Int32Array.from([5])), /copyStrided: src and dst must have 2-byte elements/);
});

test('copyStridedTo: column blocks, permuted and bf16 destinations (one thread and several), bounds and self-overlap errors', () => {
  const r = rng(15);
  // [R, n] into columns [col, col + n) of [R, C]: small, and large enough for the threaded path
  for (const [R, C, n, col] of [[3, 7, 2, 5], [300, 2048, 1024, 1024], [1001, 1152, 384, 383]] as const) {
    const src = randArray(R * n, r), dst = randArray(R * C + 3, r), before = dst.slice();
    N.copyStridedTo(4, src, 0, Int32Array.from([n, 1]), dst, 3 + col, Int32Array.from([C, 1]), Int32Array.from([R, n]));
    for (let i = 0; i < R; i++)
      for (let j = 0; j < C; j++) {
        const at = 3 + i * C + j, inBlock = j >= col && j < col + n;
        if (dst[at] !== (inBlock ? src[i * n + j - col] : before[at])) assert.fail(`[${R},${C}] block at ${col}: element (${i},${j}) is ${dst[at]}`);
      }
    assert.deepEqual([...dst.subarray(0, 3)], [...before.subarray(0, 3)]);
  }
  // permuted destination: dst[k][j][i] = src[i][j][k] for [2,3,4], from a strided source
  const s3 = randArray(24, r), d3 = new Float32Array(24);
  N.copyStridedTo(4, s3, 0, Int32Array.from([12, 4, 1]), d3, 0, Int32Array.from([1, 2, 6]), Int32Array.from([2, 3, 4]));
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) assert.equal(d3[k * 6 + j * 2 + i], s3[i * 12 + j * 4 + k]);
  // bf16 transpose into a view
  const u = Uint16Array.from([1, 2, 3, 4, 5, 6]), ut = new Uint16Array(8);
  N.copyStridedTo(2, u, 0, Int32Array.from([3, 1]), ut, 1, Int32Array.from([1, 2]), Int32Array.from([2, 3]));
  assert.deepEqual([...ut], [0, 1, 4, 2, 5, 3, 6, 0]);
  assert.throws(() => N.copyStridedTo(4, s3, 0, Int32Array.from([1]), new Float32Array(5), 2, Int32Array.from([1]), Int32Array.from([4])), /copyStridedTo: dst has 5 elements, the view spans offsets 2..5/);
  assert.throws(() => N.copyStridedTo(4, s3, 0, Int32Array.from([1, 1]), new Float32Array(5), 0, Int32Array.from([0, 1]), Int32Array.from([2, 2])), /copyStridedTo: dstStrides may not be 0/);
});

test('rmsnormFwd and rmsnormBwd against a double reference (odd dim), deterministic dw', () => {
  const r = rng(14);
  for (const [rows, dim] of [[1, 1], [3, 7], [37, 384], [300, 129]] as const) {
    const x = randArray(rows * dim, r, -2, 2), w = randArray(dim, r, 0.5, 1.5), dy = randArray(rows * dim, r);
    const eps = 1e-5, y = new Float32Array(rows * dim), rstd = new Float32Array(rows);
    N.rmsnormFwd(x, w, eps, rows, dim, y, rstd);
    const wy = new Float64Array(rows * dim), wr = new Float64Array(rows), wdx = new Float64Array(rows * dim), wdw = new Float64Array(dim);
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += x[i * dim + j]! ** 2;
      const rs = 1 / Math.sqrt(s / dim + eps);
      wr[i] = rs;
      let g = 0;
      for (let j = 0; j < dim; j++) { wy[i * dim + j] = x[i * dim + j]! * rs * w[j]!; g += dy[i * dim + j]! * w[j]! * x[i * dim + j]!; }
      for (let j = 0; j < dim; j++) {
        wdx[i * dim + j] = rs * w[j]! * dy[i * dim + j]! - (x[i * dim + j]! * rs ** 3 * g) / dim;
        wdw[j] += dy[i * dim + j]! * x[i * dim + j]! * rs;
      }
    }
    assertClose(rstd, wr, 1e-5, 1e-6, 'rstd');
    assertClose(y, wy, 1e-5, 1e-6, 'rmsnorm y');
    const dx = new Float32Array(rows * dim), dw = new Float32Array(dim).fill(7);
    N.rmsnormBwd(dy, x, w, rstd, rows, dim, dx, dw);
    assertClose(dx, wdx, 1e-4, 1e-5, 'rmsnorm dx');
    assertClose(dw, wdw, 1e-4, 1e-5, 'rmsnorm dw');
    const dw2 = new Float32Array(dim);
    N.rmsnormBwd(dy, x, w, rstd, rows, dim, dx, dw2);
    assert.deepEqual(dw2, dw, 'dw deterministic');
  }
  assert.throws(() => N.rmsnormFwd(new Float32Array(6), new Float32Array(2), 1e-5, 2, 3, new Float32Array(6), new Float32Array(2)), /rmsnormFwd: w has 2 elements, expected 3 \(rows=2 dim=3\)/);
});

function ropeWant(x: Float32Array, B: number, T: number, H: number, D: number, pos0: number, theta: number): Float64Array {
  const want = new Float64Array(x.length), half = D / 2;
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
    const o = ((b * T + t) * H + h) * D;
    for (let i = 0; i < half; i++) {
      const a = (pos0 + t) * theta ** (-2 * i / D), c = Math.cos(a), s = Math.sin(a);
      want[o + i] = x[o + i]! * c - x[o + i + half]! * s;
      want[o + i + half] = x[o + i + half]! * c + x[o + i]! * s;
    }
  }
  return want;
}

test('ropeFwd: rotate-half with position offset; inverse undoes it', () => {
  const r = rng(15);
  const [B, T, H, D, pos0, theta] = [2, 5, 3, 8, 3, 10000];
  const x = randArray(B * T * H * D, r), out = new Float32Array(x.length);
  N.ropeFwd(x, B, T, H, D, pos0, theta, out, false);
  const want = ropeWant(x, B, T, H, D, pos0, theta);
  assertClose(out, want, 1e-5, 1e-6, 'rope');
  // the cos/sin table is kept between calls: each parameter it depends on changes it
  for (const [t2, d2, p2, th2] of [[5, 8, 3, 500], [5, 8, 4, 500], [7, 8, 4, 500], [7, 6, 4, 500], [5, 8, 3, 10000]] as const) {
    const x2 = randArray(B * t2 * H * d2, r), o2 = new Float32Array(x2.length);
    N.ropeFwd(x2, B, t2, H, d2, p2, th2, o2, false);
    assertClose(o2, ropeWant(x2, B, t2, H, d2, p2, th2), 1e-5, 1e-6, `rope T=${t2} D=${d2} pos0=${p2} theta=${th2}`);
  }
  const back = new Float32Array(x.length);
  N.ropeFwd(out, B, T, H, D, pos0, theta, back, true);
  assertClose(back, x, 1e-5, 1e-6, 'rope inverse');
  N.ropeFwd(x, B, T, H, D, pos0, theta, x, false); // in place
  assertClose(x, want, 1e-5, 1e-6, 'rope in place');
  assert.throws(() => N.ropeFwd(x, B, T, H, 7, 0, theta, out, false), /ropeFwd: headDim must be even/);
});

test('swigluFwd and swigluBwd', () => {
  const r = rng(16);
  const n = 70001, g = randArray(n, r, -6, 6), u = randArray(n, r), d = randArray(n, r);
  const out = new Float32Array(n), dg = new Float32Array(n), du = new Float32Array(n);
  N.swigluFwd(g, u, out);
  N.swigluBwd(g, u, d, dg, du);
  assertClose(out, Array.from(g, (x, i) => x * sig(x) * u[i]!), 1e-5, 1e-7, 'swiglu');
  assertClose(du, Array.from(g, (x, i) => d[i]! * x * sig(x)), 1e-5, 1e-7, 'swiglu dup');
  assertClose(dg, Array.from(g, (x, i) => d[i]! * u[i]! * sig(x) * (1 + x * (1 - sig(x)))), 1e-5, 1e-7, 'swiglu dgate');
  assert.throws(() => N.swigluFwd(g, u, new Float32Array(3)), /swigluFwd: out has 3 elements, expected 70001/);
});

test('swigluPackedFwd and swigluPackedBwd read and write [gate | up] rows (odd hidden; one thread and several)', () => {
  const r = rng(18);
  for (const [rows, h] of [[1, 1], [3, 7], [41, 1001]] as const) {
    const gu = randArray(rows * 2 * h, r, -6, 6), d = randArray(rows * h, r);
    const out = new Float32Array(rows * h), dgu = new Float32Array(rows * 2 * h).fill(9);
    N.swigluPackedFwd(gu, rows, h, out);
    N.swigluPackedBwd(gu, d, rows, h, dgu);
    const g = (i: number, j: number) => gu[i * 2 * h + j]!, u = (i: number, j: number) => gu[i * 2 * h + h + j]!;
    const want = new Float64Array(rows * h), wdgu = new Float64Array(rows * 2 * h);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < h; j++) {
        const x = g(i, j), dd = d[i * h + j]!;
        want[i * h + j] = x * sig(x) * u(i, j);
        wdgu[i * 2 * h + j] = dd * u(i, j) * sig(x) * (1 + x * (1 - sig(x)));
        wdgu[i * 2 * h + h + j] = dd * x * sig(x);
      }
    assertClose(out, want, 1e-5, 1e-7, `swigluPacked ${rows}x${h}`);
    assertClose(dgu, wdgu, 1e-5, 1e-7, `swigluPacked backward ${rows}x${h}`);
  }
  assert.throws(() => N.swigluPackedFwd(new Float32Array(12), 2, 3, new Float32Array(5)), /swigluPackedFwd: out has 5 elements, expected 6 \(rows=2 hidden=3\)/);
});

test('crossEntropyFwd and crossEntropyBwd with ignored targets', () => {
  const r = rng(17);
  for (const [rows, vocab] of [[1, 1], [5, 13], [64, 1000]] as const) {
    const logits = randArray(rows * vocab, r, -8, 8);
    const targets = Int32Array.from({ length: rows }, (_, i) => (i % 4 === 3 ? -100 : Math.floor(r() * vocab)));
    const losses = new Float32Array(rows), lse = new Float32Array(rows), dl = new Float32Array(rows * vocab).fill(9);
    N.crossEntropyFwd(logits, targets, rows, vocab, losses, lse);
    const scale = 1 / rows;
    N.crossEntropyBwd(logits, targets, lse, rows, vocab, scale, dl);
    const wl = new Float64Array(rows), wlse = new Float64Array(rows), wd = new Float64Array(rows * vocab);
    for (let i = 0; i < rows; i++) {
      let m = -Infinity;
      for (let j = 0; j < vocab; j++) m = Math.max(m, logits[i * vocab + j]!);
      let s = 0;
      for (let j = 0; j < vocab; j++) s += Math.exp(logits[i * vocab + j]! - m);
      wlse[i] = m + Math.log(s);
      const t = targets[i]!;
      wl[i] = t < 0 ? 0 : wlse[i]! - logits[i * vocab + t]!;
      for (let j = 0; j < vocab; j++) wd[i * vocab + j] = t < 0 ? 0 : (Math.exp(logits[i * vocab + j]! - wlse[i]!) - (j === t ? 1 : 0)) * scale;
    }
    assertClose(lse, wlse, 1e-6, 1e-6, 'ce lse');
    assertClose(losses, wl, 1e-5, 1e-5, 'ce loss');
    assertClose(dl, wd, 1e-5, 1e-7, 'ce dlogits');
  }
  assert.throws(() => N.crossEntropyFwd(new Float32Array(6), Int32Array.from([1, 3]), 2, 3, new Float32Array(2), new Float32Array(2)), /crossEntropyFwd: targets\[1\] = 3 is out of range for vocab=3/);
});

test('adamw: decoupled weight decay and bias correction', () => {
  const r = rng(18);
  const n = 50001, p = randArray(n, r), g = randArray(n, r), m = randArray(n, r, -0.1, 0.1), v = randArray(n, r, 0, 0.01);
  const [lr, b1, b2, eps, wd, step] = [1e-3, 0.9, 0.95, 1e-8, 0.1, 7];
  const wp = new Float64Array(n), wm = new Float64Array(n), wv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    wm[i] = b1 * m[i]! + (1 - b1) * g[i]!;
    wv[i] = b2 * v[i]! + (1 - b2) * g[i]! ** 2;
    const mh = wm[i]! / (1 - b1 ** step), vh = wv[i]! / (1 - b2 ** step);
    wp[i] = p[i]! * (1 - lr * wd) - (lr * mh) / (Math.sqrt(vh) + eps);
  }
  N.adamw(p, g, m, v, lr, b1, b2, eps, wd, step);
  assertClose(m, wm, 1e-5, 1e-7, 'adamw m');
  assertClose(v, wv, 1e-5, 1e-9, 'adamw v');
  assertClose(p, wp, 1e-5, 1e-6, 'adamw param');
  assert.throws(() => N.adamw(p, g, m, new Float32Array(2), lr, b1, b2, eps, wd, 1), /adamw: v has 2 elements, expected 50001/);
  assert.throws(() => N.adamw(p, g, m, v, lr, b1, b2, eps, wd, 0), /adamw: step is 1-based/);
});

test('embeddingFwd and embeddingBwd (scatter-add, repeated ids, deterministic)', () => {
  const r = rng(19);
  const [rows, dim, n] = [11, 130, 500];
  const table = randArray(rows * dim, r), ids = Int32Array.from({ length: n }, () => Math.floor(r() * rows));
  const out = new Float32Array(n * dim);
  N.embeddingFwd(table, ids, dim, out);
  for (let i = 0; i < n; i++) assert.deepEqual(out.subarray(i * dim, (i + 1) * dim), table.subarray(ids[i]! * dim, (ids[i]! + 1) * dim));
  const dout = randArray(n * dim, r), dt = randArray(rows * dim, r), dt0 = Float32Array.from(dt);
  N.embeddingBwd(dout, ids, dim, dt);
  const want = Float64Array.from(dt0);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) want[ids[i]! * dim + j] += dout[i * dim + j]!;
  assertClose(dt, want, 1e-5, 1e-5, 'embedding bwd');
  const dt2 = Float32Array.from(dt0);
  N.embeddingBwd(dout, ids, dim, dt2);
  assert.deepEqual(dt2, dt, 'deterministic');
  assert.throws(() => N.embeddingFwd(table, Int32Array.from([11]), dim, new Float32Array(dim)), /embeddingFwd: ids\[0\] = 11 is out of range for a table of 11 rows/);
});

test('sumSquares, scaleInPlace, axpy', () => {
  const r = rng(20);
  const x = randArray(100003, r), y = randArray(100003, r);
  let s = 0;
  for (const v of x) s += v * v;
  assert.ok(Math.abs(N.sumSquares(x) - s) < 1e-9 * s);
  const y0 = Float64Array.from(y);
  N.axpy(0.25, x, y);
  assertClose(y, Array.from(y0, (v, i) => v + 0.25 * x[i]!), 1e-6, 1e-7, 'axpy');
  const x0 = Float64Array.from(x);
  N.scaleInPlace(x.subarray(10), 3);
  assert.equal(x[9], x0[9]);
  assertClose(x.subarray(10), Array.from(x0.subarray(10), (v) => v * 3), 1e-7, 0, 'scale');
  assert.throws(() => N.axpy(1, x, new Float32Array(2)), /axpy: y has 2 elements, expected 100003/);
});
