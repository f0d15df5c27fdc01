// Flash-style attention of the native addon: forward and backward against a float64 JS reference
// (GQA 4:2, 4:1 and 6:2, causal and not, sequence lengths that do and do not fill the 64-row tiles,
// S = 1 and S = 1024, head dims that are not multiples of 16), on every kernel this CPU runs
// (avx512 / avx2 / portable: each is a separate build of the kernel, chosen by CPUID), and the
// backward against finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { loadNative } from '../src/backend/cpu/native.js';
import { assertCloseScaled, randArray, rng } from './native-helpers.js';
import { UnfusedAttention } from '../src/cli/bench/kernels.js';

const N = loadNative();

interface Ref { out: Float64Array; lse: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array }

function refAttention(q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, B: number, T: number, Hq: number, Hkv: number, D: number, scale: number, causal: boolean): Ref {
  const out = new Float64Array(q.length), lse = new Float64Array(B * Hq * T);
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  const G = Hq / Hkv;
  const qi = (b: number, t: number, h: number) => ((b * T + t) * Hq + h) * D;
  const ki = (b: number, t: number, h: number) => ((b * T + t) * Hkv + h) * D;
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) {
    const hk = Math.floor(h / G);
    for (let i = 0; i < T; i++) {
      const n = causal ? i + 1 : T, s = new Float64Array(n);
      let m = -Infinity;
      for (let j = 0; j < n; j++) {
        let d = 0;
        for (let c = 0; c < D; c++) d += q[qi(b, i, h) + c]! * k[ki(b, j, hk) + c]!;
        s[j] = d * scale;
        m = Math.max(m, s[j]!);
      }
      let sum = 0;
      for (let j = 0; j < n; j++) sum += Math.exp(s[j]! - m);
      const l = m + Math.log(sum);
      lse[(b * Hq + h) * T + i] = l;
      const p = s.map((x) => Math.exp(x - l));
      for (let j = 0; j < n; j++) for (let c = 0; c < D; c++) out[qi(b, i, h) + c] += p[j]! * v[ki(b, j, hk) + c]!;
      // backward
      const dp = new Float64Array(n);
      let Di = 0;
      for (let j = 0; j < n; j++) {
        for (let c = 0; c < D; c++) dp[j] += dout[qi(b, i, h) + c]! * v[ki(b, j, hk) + c]!;
        Di += p[j]! * dp[j]!;
      }
      for (let j = 0; j < n; j++) {
        const ds = p[j]! * (dp[j]! - Di);
        for (let c = 0; c < D; c++) {
          dv[ki(b, j, hk) + c] += p[j]! * dout[qi(b, i, h) + c]!;
          dq[qi(b, i, h) + c] += scale * ds * k[ki(b, j, hk) + c]!;
          dk[ki(b, j, hk) + c] += scale * ds * q[qi(b, i, h) + c]!;
        }
      }
    }
  }
  return { out, lse, dq, dk, dv };
}

/** Runs f with the given attention kernel selected, restoring the default after. */
function withKernel<T>(kernel: string, f: () => T): T {
  const before = N.attentionKernel();
  N.attentionKernel(kernel);
  try {
    return f();
  } finally {
    N.attentionKernel(before);
  }
}

function run(B: number, T: number, Hq: number, Hkv: number, D: number, causal: boolean, seed: number) {
  const r = rng(seed);
  const q = randArray(B * T * Hq * D, r, -1.5, 1.5), k = randArray(B * T * Hkv * D, r, -1.5, 1.5), v = randArray(B * T * Hkv * D, r);
  const dout = randArray(q.length, r);
  const scale = 1 / Math.sqrt(D);
  const out = new Float32Array(q.length), lse = new Float32Array(B * Hq * T);
  N.attentionFwd(q, k, v, B, T, Hq, Hkv, D, scale, causal, out, lse);
  const dq = new Float32Array(q.length).fill(NaN), dk = new Float32Array(k.length).fill(NaN), dv = new Float32Array(v.length).fill(NaN);
  N.attentionBwd(q, k, v, out, lse, dout, B, T, Hq, Hkv, D, scale, causal, dq, dk, dv);
  return { q, k, v, dout, scale, out, lse, dq, dk, dv };
}

const SHAPES = [
  [1, 1, 1, 1, 4], [2, 5, 4, 2, 8], [1, 70, 4, 1, 12], [2, 130, 4, 2, 16], [1, 64, 2, 2, 5], [1, 200, 4, 4, 64],
  [2, 1, 4, 2, 64], [2, 67, 6, 2, 64], [1, 129, 2, 1, 24], [1, 1024, 2, 1, 16],
] as const;
for (const kernel of N.attentionKernels())
  for (const [B, T, Hq, Hkv, D] of SHAPES)
    for (const causal of [true, false])
      test(`attention fwd+bwd vs float64 reference (${kernel}): B=${B} T=${T} Hq=${Hq} Hkv=${Hkv} D=${D} causal=${causal}`, () => {
        const x = withKernel(kernel, () => run(B, T, Hq, Hkv, D, causal, B * 1000 + T * 10 + D + (causal ? 1 : 0)));
        const ref = refAttention(x.q, x.k, x.v, x.dout, B, T, Hq, Hkv, D, x.scale, causal);
        assertCloseScaled(x.out, ref.out, 2e-5, 'out');
        assertCloseScaled(x.lse, ref.lse, 2e-6, 'lse');
        assertCloseScaled(x.dq, ref.dq, 5e-5, 'dq');
        assertCloseScaled(x.dk, ref.dk, 5e-5, 'dk');
        assertCloseScaled(x.dv, ref.dv, 5e-5, 'dv');
      });

test('attention kernels: the widest one this CPU has is the default, the others can be forced', () => {
  const kernels = N.attentionKernels();
  assert.equal(kernels.at(-1), 'portable', `the portable kernel runs everywhere: ${kernels}`);
  assert.equal(N.attentionKernel(), kernels[0], 'the default is the widest kernel');
  if (process.arch === 'x64' && existsSync('/proc/cpuinfo')) {
    const flags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));
    const want = [...(flags.has('avx512f') ? ['avx512'] : []), ...(flags.has('avx2') && flags.has('fma') ? ['avx2'] : []), 'portable'];
    assert.deepEqual(kernels, want, `kernels for CPU flags avx512f=${flags.has('avx512f')} avx2=${flags.has('avx2')} fma=${flags.has('fma')}`);
  }
  assert.throws(() => N.attentionKernel('sve2'), /attentionKernel: attention kernel 'sve2' is not available on this CPU \(available: .*portable\)/);
  assert.equal(N.attentionKernel(), kernels[0], 'a failed switch keeps the kernel');
});

test('attention backward agrees with finite differences of the forward', () => {
  const [B, T, Hq, Hkv, D] = [1, 6, 4, 2, 4];
  for (const causal of [true, false]) {
    const x = run(B, T, Hq, Hkv, D, causal, 77);
    const loss = (q: Float32Array, k: Float32Array, v: Float32Array) => {
      const out = new Float32Array(q.length), lse = new Float32Array(B * Hq * T);
      N.attentionFwd(q, k, v, B, T, Hq, Hkv, D, x.scale, causal, out, lse);
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i]! * x.dout[i]!;
      return s;
    };
    const eps = 1e-2;
    for (const [name, arr, grad] of [['q', x.q, x.dq], ['k', x.k, x.dk], ['v', x.v, x.dv]] as const) {
      for (let i = 0; i < arr.length; i++) {
        const save = arr[i]!;
        arr[i] = save + eps;
        const lp = loss(x.q, x.k, x.v);
        arr[i] = save - eps;
        const lm = loss(x.q, x.k, x.v);
        arr[i] = save;
        const fd = (lp - lm) / (2 * eps);
        assert.ok(Math.abs(fd - grad[i]!) < 2e-3, `d${name}[${i}] causal=${causal}: analytic ${grad[i]}, finite difference ${fd}`);
      }
    }
  }
});

test('attention: memory does not grow with T^2, size errors', () => {
  // Scratch is a few per-thread tiles (inputs are read in place): linear in T, never T^2.
  for (const bwd of [false, true]) {
    const [a, b, c] = [256, 1024, 4096].map((t) => N.attentionScratchBytes(1, t, 6, 6, 64, bwd));
    assert.ok(c! - b! === 4 * (b! - a!) * (4096 - 1024) / (4 * (1024 - 256)), `linear growth (bwd=${bwd}): ${a} ${b} ${c}`);
    assert.ok(c! < (6 * 4096 * 4096 * 4) / 4, `well below one [H,T,T] score tensor at T=4096: ${c}`);
  }
  const q = new Float32Array(2 * 3 * 4 * 8);
  assert.throws(() => N.attentionFwd(q, new Float32Array(2 * 3 * 2 * 8), new Float32Array(2 * 3 * 2 * 8), 2, 3, 4, 3, 8, 1, true, new Float32Array(q.length), new Float32Array(24)), /attentionFwd: hq must be a positive multiple of hkv/);
  assert.throws(() => N.attentionFwd(q, new Float32Array(10), new Float32Array(2 * 3 * 2 * 8), 2, 3, 4, 2, 8, 1, true, new Float32Array(q.length), new Float32Array(24)), (e: Error) => e instanceof TypeError && /attentionFwd: k has 10 elements, expected 96 \(batch=2 seq=3 hq=4 hkv=2 headDim=8\)/.test(e.message));
});

test('the unfused composition used by `bench kernels` computes the same attention', () => {
  const [B, T, H, D] = [2, 40, 3, 16];
  const x = run(B, T, H, H, D, true, 5);
  const un = new UnfusedAttention(N, B, T, H, D);
  const out = new Float32Array(x.out.length), dq = new Float32Array(x.dq.length), dk = new Float32Array(x.dk.length), dv = new Float32Array(x.dv.length);
  un.forward(x.q, x.k, x.v, out, x.scale);
  un.backward(x.q, x.k, x.v, x.dout, x.scale, dq, dk, dv);
  assertCloseScaled(out, x.out, 1e-5, 'out');
  assertCloseScaled(dq, x.dq, 1e-5, 'dq');
  assertCloseScaled(dk, x.dk, 1e-5, 'dk');
  assertCloseScaled(dv, x.dv, 1e-5, 'dv');
});
