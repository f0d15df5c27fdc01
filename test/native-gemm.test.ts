// GEMM entry points of the native addon (sgemm, sgemmBatched, bgemm, bgemmBatched, cblasSgemm) and
// the bf16 casts, against float64 JS references.
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNative } from '../src/backend/cpu/native.js';
import { assertClose, randArray, rng } from './native-helpers.js';

const N = loadNative();

function refGemm(ta: boolean, tb: boolean, m: number, n: number, k: number, alpha: number, a: ArrayLike<number>, lda: number,
  b: ArrayLike<number>, ldb: number, beta: number, c: Float32Array, ldc: number, aOff = 0, bOff = 0, cOff = 0): Float64Array {
  const out = Float64Array.from(c);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const av = ta ? a[aOff + p * lda + i]! : a[aOff + i * lda + p]!;
        const bv = tb ? b[bOff + j * ldb + p]! : b[bOff + p * ldb + j]!;
        s += av * bv;
      }
      const idx = cOff + i * ldc + j;
      out[idx] = alpha * s + (beta === 0 ? 0 : beta * c[idx]!);
    }
  return out;
}

const bf16ToF32 = (u: Uint16Array) => { const f = new Float32Array(u.length); N.castBf16ToF32(u, f); return f; };
const f32ToBf16 = (f: Float32Array) => { const u = new Uint16Array(f.length); N.castF32ToBf16(f, u); return u; };

test('sgemm, cblasSgemm, dnnlSgemm: all transposes, odd sizes, padded leading dims, alpha/beta', () => {
  const r = rng(1);
  for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [17, 33, 9], [64, 48, 130], [100, 3, 257]] as const)
    for (const ta of [false, true])
      for (const tb of [false, true])
        for (const [alpha, beta] of [[1, 0], [0.5, 1.5]] as const) {
          const lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
          const a = randArray((ta ? k : m) * lda, r), b = randArray((tb ? n : k) * ldb, r);
          const c0 = randArray(m * ldc, r);
          c0[0] = beta === 0 ? NaN : c0[0]!; // beta = 0 must overwrite, even NaN
          const want = refGemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc);
          for (const f of [N.sgemm, N.cblasSgemm, N.dnnlSgemm]) {
            const c = Float32Array.from(c0);
            f(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            for (let i = 0; i < m; i++) // untouched padding columns must stay as they were
              for (let j = n; j < ldc && i * ldc + j < c.length; j++) assert.equal(c[i * ldc + j], c0[i * ldc + j]);
            assertClose(c, want, 1e-4, 1e-4 * Math.sqrt(k), `${f.name} m=${m} n=${n} k=${k} ta=${ta} tb=${tb}`);
          }
        }
});

test('sgemm honours subarray views (byteOffset) and k = 0', () => {
  const r = rng(2);
  const bigA = randArray(5 + 6 * 4, r), bigB = randArray(3 + 4 * 2, r), bigC = new Float32Array(7 + 6 * 2);
  const a = bigA.subarray(5), b = bigB.subarray(3), c = bigC.subarray(7);
  N.sgemm(false, false, 6, 2, 4, 1, a, 4, b, 2, 0, c, 2);
  assertClose(c, refGemm(false, false, 6, 2, 4, 1, a, 4, b, 2, 0, new Float32Array(12), 2), 1e-5, 1e-5, 'views');
  assert.ok(bigC.subarray(0, 7).every((x) => x === 0));
  const c2 = new Float32Array([1, 2, 3, 4]);
  N.sgemm(false, false, 2, 2, 0, 1, new Float32Array(0), 1, new Float32Array(0), 2, 2, c2, 2);
  assert.deepEqual([...c2], [2, 4, 6, 8]);
});

test('sgemmBatched: strides, broadcast (stride 0), many small and few large items', () => {
  const r = rng(3);
  for (const [batch, m, n, k] of [[5, 7, 9, 11], [12, 16, 16, 8], [2, 300, 280, 260]] as const)
    for (const [ta, tb] of [[false, false], [false, true], [true, false]] as const)
      for (const bcast of [0, 1, 2]) {
        const sa = bcast === 1 ? 0 : m * k + 3, sb = bcast === 2 ? 0 : k * n + 1, sc = m * n;
        const lda = ta ? m : k, ldb = tb ? k : n;
        const a = randArray(Math.max(1, (batch - 1) * sa + m * k), r), b = randArray(Math.max(1, (batch - 1) * sb + k * n), r);
        const c = new Float32Array(batch * sc);
        N.sgemmBatched(batch, ta, tb, m, n, k, 1, a, sa, lda, b, sb, ldb, 0, c, sc, n);
        for (let i = 0; i < batch; i++) {
          const want = refGemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, new Float32Array(m * n), n, i * sa, i * sb, 0);
          assertClose(c.subarray(i * sc, (i + 1) * sc), want, 1e-4, 1e-4 * Math.sqrt(k), `batch item ${i} (${batch},${m},${n},${k},bcast ${bcast})`);
        }
      }
});

test('bgemm and bgemmBatched: bf16 in, f32 out, exact products of bf16 values', () => {
  const r = rng(4);
  for (const [m, n, k] of [[1, 1, 1], [5, 7, 3], [33, 17, 65], [128, 96, 200]] as const)
    for (const ta of [false, true])
      for (const tb of [false, true])
        for (const [alpha, beta] of [[1, 0], [2, 0.5]] as const) {
          const lda = ta ? m : k, ldb = tb ? k : n;
          const a = f32ToBf16(randArray(m * k, r)), b = f32ToBf16(randArray(k * n, r));
          const c0 = randArray(m * n, r);
          const want = refGemm(ta, tb, m, n, k, alpha, bf16ToF32(a), lda, bf16ToF32(b), ldb, beta, c0, n);
          const c = Float32Array.from(c0);
          N.bgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, n);
          assertClose(c, want, 1e-4, 1e-4 * Math.sqrt(k), `bgemm m=${m} n=${n} k=${k} ta=${ta} tb=${tb} alpha=${alpha}`);
        }
  for (const bcast of [0, 1, 2, 3]) {
    const [batch, m, n, k] = [4, 9, 10, 11];
    const sa = bcast & 1 ? 0 : m * k, sb = bcast & 2 ? 0 : k * n;
    const a = f32ToBf16(randArray(Math.max(m * k, (batch - 1) * sa + m * k), r)), b = f32ToBf16(randArray(Math.max(k * n, (batch - 1) * sb + k * n), r));
    const c = new Float32Array(batch * m * n);
    N.bgemmBatched(batch, false, true, m, n, k, 1, a, sa, k, b, sb, k, 0, c, m * n, n);
    for (let i = 0; i < batch; i++) {
      const want = refGemm(false, true, m, n, k, 1, bf16ToF32(a), k, bf16ToF32(b), k, 0, new Float32Array(m * n), n, i * sa, i * sb);
      assertClose(c.subarray(i * m * n, (i + 1) * m * n), want, 1e-4, 1e-4, `bgemmBatched item ${i} bcast ${bcast}`);
    }
  }
});

test('bgemm dispatches to a bf16 kernel of oneDNN where the CPU has AVX-512, else widens to the f32 GEMM', () => {
  const impl = N.bgemmImpl(false, false, 256, 256, 256);
  const cpuinfo = process.platform === 'linux' ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  if (/\bavx512f\b/.test(cpuinfo)) assert.match(impl, /bf16|amx/, `oneDNN picked ${impl}`);
  else if (cpuinfo) assert.match(impl, /^f32-widen:/, `without AVX-512 bgemm should widen to f32, got ${impl}`);
});

test('castF32ToBf16: round to nearest even, NaN, inf, signed zero; castBf16ToF32 exact', () => {
  const f = new Float32Array([1.0, 1.00390625, 1.01171875, 1.0039063692092896, -1.00390625, 0, -0, Infinity, -Infinity, NaN, 3.4028234663852886e38, 1e-40, -2.5]);
  const u = new Uint16Array(f.length);
  N.castF32ToBf16(f, u);
  // 1.00390625 = 1 + 2^-8 is exactly halfway between bf16 1.0 (0x3f80) and 1.0078125 (0x3f81): ties to even 0x3f80.
  // 1.01171875 = 1 + 3*2^-8 is halfway between 0x3f81 and 0x3f82: ties to even 0x3f82.
  // 3.4028e38 (the largest f32) is above the bf16 max + half an ulp: rounds up to inf (0x7f80).
  const want = [0x3f80, 0x3f80, 0x3f82, 0x3f81, 0xbf80, 0x0000, 0x8000, 0x7f80, 0xff80, -1, 0x7f80, -2, 0xc020];
  for (let i = 0; i < f.length; i++) {
    if (want[i] === -1) assert.ok((u[i]! & 0x7f80) === 0x7f80 && (u[i]! & 0x7f) !== 0, `NaN stays NaN, got ${u[i]!.toString(16)}`);
    else if (want[i] === -2) assert.equal(u[i], 0x0001, 'denormal 1e-40 -> 0x0001'); // 1e-40 = 0x000116c2 -> 0x0001
    else assert.equal(u[i], want[i], `cast ${f[i]} -> 0x${u[i]!.toString(16)}, want 0x${want[i]!.toString(16)}`);
  }
  const back = new Float32Array(u.length);
  N.castBf16ToF32(u, back);
  assert.equal(back[0], 1);
  assert.ok(Object.is(back[6], -0));
  assert.equal(back[7], Infinity);
  assert.ok(Number.isNaN(back[9]));
  // views
  const big = new Float32Array([9, 9, 1.5, 2.5]);
  const out = new Uint16Array(3);
  N.castF32ToBf16(big.subarray(2), out.subarray(1));
  assert.deepEqual([...out], [0, 0x3fc0, 0x4020]);
});

test('GEMM size errors name the function and the sizes', () => {
  const a = new Float32Array(6), b = new Float32Array(6), c = new Float32Array(3);
  assert.throws(() => N.sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2), (e: Error) => e instanceof TypeError && /sgemm: c has 3 elements, needs at least 4 \(m=2 n=2 k=3/.test(e.message));
  assert.throws(() => N.bgemm(false, false, 2, 2, 3, 1, new Uint16Array(5), 3, new Uint16Array(6), 2, 0, new Float32Array(4), 2), (e: Error) => e instanceof TypeError && /bgemm: a has 5 elements/.test(e.message));
  assert.throws(() => N.bgemm(false, false, 1, 1, 1, 1, a as unknown as Uint16Array, 1, new Uint16Array(1), 1, 0, c, 1), /bgemm: argument 'a' must be a Uint16Array, got a Float32Array/);
  assert.throws(() => N.sgemmBatched(3, false, false, 2, 2, 2, 1, new Float32Array(8), 4, 2, new Float32Array(4), 0, 2, 0, new Float32Array(12), 4, 2), /sgemmBatched: a has 8 elements, needs at least 12/);
  assert.throws(() => N.castF32ToBf16(new Float32Array(3), new Uint16Array(2)), /castF32ToBf16: dst has 2 elements, expected 3/);
});

test('threads and setThreads', () => {
  const t = N.threads();
  assert.ok(t >= 1);
  N.setThreads(1);
  assert.equal(N.threads(), 1);
  const a = randArray(64 * 64, rng(5)), c1 = new Float32Array(64 * 64), c2 = new Float32Array(64 * 64);
  N.sgemm(false, false, 64, 64, 64, 1, a, 64, a, 64, 0, c1, 64);
  N.setThreads(t);
  N.sgemm(false, false, 64, 64, 64, 1, a, 64, a, 64, 0, c2, 64);
  assertClose(c1, c2, 1e-5, 1e-5, 'same result on 1 and N threads');
  assert.throws(() => N.setThreads(0), /setThreads: thread count/);
});
