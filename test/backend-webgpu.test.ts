// The webgpu backend (Dawn; lavapipe on machines without a GPU): the conformance kit, bit-exact
// Philox uniforms, primitives at sizes the kit does not reach (2-D dispatch grids, row reductions,
// batched GEMM with alpha/beta, deterministic scatter with many duplicates, i32 ops), AdamW, and a
// dense model's forward and backward against the cpu backend. Every test skips when no WebGPU
// adapter is available (run scripts/setup-lavapipe to get one on a CPU-only machine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/backend/contract.js';
import { runConformance, compare } from '../src/backend/conformance/kit.js';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { philoxNormal, philoxUniform } from '../src/train/rng-state.js';
import { type HostArray, hostArray } from '../src/tensor/dtype.js';
import { Transformer } from '../src/nn/transformer.js';
import { preset } from '../src/nn/presets.js';
import * as T from '../src/tensor/ops.js';
import { backward } from '../src/tensor/autograd.js';
import { tidyAsync } from '../src/tensor/scope.js';

let gpu: Backend | null = null;
let reason = '';
try {
  const { getBackend } = await import('../src/backend/registry.js');
  gpu = await getBackend('webgpu');
} catch (e) {
  reason = `no WebGPU adapter (${(e as Error).message.slice(0, 120)})`;
}
const skip = gpu ? false : reason;
const ref = new ReferenceBackend();

function seeded(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 16807) % 2147483647;
    a[i] = lo + ((hi - lo) * s) / 2147483647;
  }
  return a;
}

/** Runs `fn` on a backend with inputs uploaded there; returns the host copy of `out`. */
async function on(b: Backend, inputs: HostArray[], outLen: number, outDtype: 'f32' | 'i32', fn: (bufs: ReturnType<Backend['alloc']>[], out: ReturnType<Backend['alloc']>) => void, init?: HostArray): Promise<HostArray> {
  const bufs = inputs.map((x) => {
    const d = b.alloc(x instanceof Int32Array ? 'i32' : 'f32', x.length);
    b.write(d, x);
    return d;
  });
  const out = b.alloc(outDtype, outLen);
  b.write(out, init ?? hostArray(outDtype, outLen));
  fn(bufs, out);
  const r = await b.read(out);
  for (const x of [...bufs, out]) b.free(x);
  return r;
}

function close(got: HostArray, want: HostArray, what: string, factor = 1): void {
  const r = compare(got, want, 'f32');
  assert.ok(r.ratio <= factor, `${what}: error ${r.ratio.toFixed(2)}x tolerance at ${r.where}`);
}

test('conformance kit passes on webgpu', { skip }, async () => {
  const report = await runConformance(gpu!);
  const failures = report.results.filter((r) => r.status === 'failed').map((r) => `${r.name}: ${r.detail}`);
  assert.deepEqual(failures, []);
  assert.ok(report.passed >= 60, `only ${report.passed} cases ran`);
  assert.equal(gpu!.memory().liveBuffers, 0);
});

test('random: uniforms are bit-exact with philoxUniform (64-bit seed and offset), normals within f32 rounding', { skip }, async () => {
  for (const [seed, offset, n] of [[7, 0, 1000], [2 ** 40 + 3, 2 ** 32 - 5, 37], [123, 2 ** 33 + 1, 9]] as const) {
    const got = await on(gpu!, [], n, 'f32', (_, o) => gpu!.random(o, 'uniform', seed, offset));
    assert.deepEqual(Array.from(got), Array.from(philoxUniform(seed, offset, n)), `uniform seed ${seed} offset ${offset}`);
    const norm = await on(gpu!, [], n, 'f32', (_, o) => gpu!.random(o, 'normal', seed, offset));
    const want = philoxNormal(seed, offset, n);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(norm[i]! - want[i]!) <= 2e-5 * Math.max(1, Math.abs(want[i]!)), `normal ${i}: ${norm[i]} vs ${want[i]}`);
  }
});

test('primitives at sizes beyond the kit: 2-D grids, row reductions, batched GEMM with alpha/beta', { skip }, async () => {
  const g = gpu!;
  // more than 65535 workgroups of 256: the dispatch folds over y
  const big = 65535 * 256 + 777;
  const x = seeded(big, 3);
  const y = await on(g, [x], big, 'f32', ([a], o) => g.unary('neg', a!, o));
  assert.equal(y[big - 1], -x[big - 1]!);
  assert.equal(y[12345], -x[12345]!);
  // reductions: one workgroup per row (inner 1, long axis) and one invocation per output (inner > 1)
  for (const [op, outer, axis, inner] of [['sum', 7, 5000, 1], ['max', 3, 300, 1], ['sum', 4, 33, 70], ['max', 2, 90, 3]] as const) {
    const v = seeded(outer * axis * inner, 5);
    const run = (b: Backend) => on(b, [v], outer * inner, 'f32', ([a], o) => b.reduce(op, a!, outer, axis, inner, o));
    close(await run(g), await run(ref), `reduce ${op} ${outer}x${axis}x${inner}`);
  }
  // GEMM, both kernels (tiled for GPUs, direct for lavapipe): every transpose, batch with a shared
  // operand, alpha 0.5 and beta 1 accumulation
  const { WebGpuBackend } = await import('../src/backend/webgpu/webgpu-backend.js');
  const ctx = (g as InstanceType<typeof WebGpuBackend>).ctx;
  for (const kind of ['tiled', 'direct'] as const)
  for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    const g = new WebGpuBackend(ctx, { matmul: kind });
    const batch = 3, m = 70, n = 130, k = 67;
    const A = seeded(batch * m * k, 1), B = seeded(k * n, 2), C0 = seeded(batch * m * n, 3);
    const d = { batch, m, n, k, transA, transB, strideA: m * k, strideB: 0, alpha: 0.5, beta: 1 };
    const run = (b: Backend) => on(b, [A, B], batch * m * n, 'f32', ([a, bb], o) => b.matmul(a!, bb!, o, d), C0);
    close(await run(g), await run(ref), `${kind} matmul transA=${transA} transB=${transB}`);
  }
});

test('scatterAddRows is deterministic with many duplicate ids; gather, copyStrided, i32 ops and cast', { skip }, async () => {
  const g = gpu!;
  const n = 3000, rows = 37, dim = 19;
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 7919) % rows);
  const src = seeded(n * dim, 9);
  const run = (b: Backend) => on(b, [src, ids], rows * dim, 'f32', ([s, i], o) => b.scatterAddRows(s!, i!, dim, o), seeded(rows * dim, 4));
  const first = await run(g);
  close(first, await run(ref), 'scatterAddRows');
  assert.deepEqual(Array.from(await run(g)), Array.from(first), 'bit-identical on a second run');
  const table = seeded(rows * dim, 6), gids = Int32Array.from([5, 0, 36, 5, 12]);
  const gat = (b: Backend) => on(b, [table, gids], gids.length * dim, 'f32', ([t, i], o) => b.gatherRows(t!, i!, dim, o));
  assert.deepEqual(Array.from(await gat(g)), Array.from(await gat(ref)));
  // strided write into an offset window of a larger buffer (a KV-cache append)
  const cs = seeded(2 * 3 * 4, 8);
  const cp = (b: Backend) => on(b, [cs], 100, 'f32', ([s], o) => b.copyStrided(s!, 0, [12, 1, 3], o, 7, [40, 9, 2], [2, 3, 4]));
  assert.deepEqual(Array.from(await cp(g)), Array.from(await cp(ref)));
  const ia = Int32Array.from([7, -9, 100, 3, 0, -4]), ib = Int32Array.from([2, 4, -100, 3, 5, -4]);
  for (const op of ['add', 'sub', 'mul', 'div', 'max', 'min', 'eq', 'lt', 'gt'] as const) {
    const bin = (b: Backend) => on(b, [ia, ib], 6, 'i32', ([a, bb], o) => b.binary(op, a!, [1], bb!, [1], o, [6]));
    assert.deepEqual(Array.from(await bin(g)), Array.from(await bin(ref)), `i32 ${op}`);
  }
  const fl = Float32Array.from([1.7, -1.7, 0.2, -3.99, 1e6]);
  const ct = (b: Backend) => on(b, [fl], 5, 'i32', ([a], o) => b.cast(a!, o));
  assert.deepEqual(Array.from(await ct(g)), [1, -1, 0, -3, 1000000]);
  assert.deepEqual(Array.from(await ct(ref)), [1, -1, 0, -3, 1000000]);
  const fi = await on(g, [], 4, 'i32', (_, o) => g.fill(o, -42));
  assert.deepEqual(Array.from(fi), [-42, -42, -42, -42]);
  assert.equal(g.memory().liveBuffers, 0);
});

test('fused AdamW matches the reference', { skip }, async () => {
  const n = 1000;
  const P = seeded(n, 1), G = seeded(n, 2), M = seeded(n, 3, -0.1, 0.1), V = seeded(n, 4, 0, 0.01);
  const d = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 7 };
  const run = async (b: Backend) => {
    const bufs = [P, G, M, V].map((x) => {
      const t = b.alloc('f32', n);
      b.write(t, x);
      return t;
    });
    b.fused.adamw!(bufs[0]!, bufs[1]!, bufs[2]!, bufs[3]!, d);
    const r = [await b.read(bufs[0]!), await b.read(bufs[2]!), await b.read(bufs[3]!)];
    for (const x of bufs) b.free(x);
    return r;
  };
  const got = await run(gpu!), want = await run(ref);
  for (let i = 0; i < 3; i++) close(got[i]!, want[i]!, ['param', 'm', 'v'][i]!);
});

test('a dense model forward and backward on webgpu match the cpu backend (MoE routing reads the host synchronously: skipped on async backends)', { skip }, async () => {
  const { nativeAvailable } = await import('../src/backend/cpu/native.js');
  const other: Backend = nativeAvailable() ? new (await import('../src/backend/cpu/cpu-backend.js')).CpuBackend() : ref;
  const cfg = { ...preset('tiny'), name: 'micro', layers: 2, dModel: 32, heads: 4, kvHeads: 2, ffnHidden: 48, vocab: 64, seqLen: 16 };
  const ids = Int32Array.from({ length: 2 * cfg.seqLen }, (_, i) => (i * 13 + 1) % cfg.vocab);
  const tg = Int32Array.from({ length: 2 * cfg.seqLen }, (_, i) => (i % 11 === 3 ? -1 : (i * 7 + 5) % cfg.vocab));
  const run = async (b: Backend) => {
    const m = new Transformer(cfg, b, { seed: 3 });
    const loss = await tidyAsync(async () => {
      const r = m.loss(T.tensor(b, ids, [2, cfg.seqLen]), T.tensor(b, tg));
      backward(r.loss);
      return (await r.loss.data())[0]!;
    });
    const grads = new Map<string, HostArray>();
    for (const [n, p] of m.params.tensors) grads.set(n, await p.grad!.data());
    m.dispose();
    return { loss, grads };
  };
  const got = await run(gpu!), want = await run(other);
  assert.ok(Math.abs(got.loss - want.loss) < 1e-4 * Math.abs(want.loss), `loss ${got.loss} vs ${want.loss}`);
  assert.equal(got.grads.size, want.grads.size);
  for (const [n, gw] of want.grads) close(got.grads.get(n)!, gw, `grad ${n}`, 20);
  assert.equal(gpu!.memory().liveBuffers, 0, 'every buffer freed');
});
