// Expert parallelism in one process (loopback communicators, src/dist/expert-dispatch.ts and
// expert-parallel.ts): the all-to-all dispatch takes each routed row to the rank holding its expert
// and combine brings it back in order, the backward of both being the reverse exchange; an MoE layer
// whose experts are spread over 2 ranks gives each rank's tokens the output, balancing loss and
// gradients (router, experts, shared expert, input) of one process running the same layer; on the
// asynchronous webgpu backend (where the one-process layer's dataSync is refused) the same path with
// ep 1 gives the cpu layer's output and gradients, and `zili train` of an MoE model on webgpu the
// losses of the cpu run.
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import type { ModelConfig } from '../src/nn/config.js';
import { createMoeParams, moe } from '../src/nn/moe.js';
import { ParameterStore } from '../src/nn/parameters.js';
import { preset } from '../src/nn/presets.js';
import { backward, backwardAsync } from '../src/tensor/autograd.js';
import * as T from '../src/tensor/ops.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { ExpertDispatcher } from '../src/dist/expert-dispatch.js';
import { moeExpertParallel } from '../src/dist/expert-parallel.js';
import type { Backend } from '../src/backend/contract.js';
import { getBackend } from '../src/backend/registry.js';
import { LocalCommunicator } from '../src/dist/local.js';
import { readMetrics } from '../src/train/metrics.js';
import { run as trainCli } from '../src/cli/train.js';
import { loopbackGroup } from './dist-loopback.js';
import { gatherSplitBack, splitToGroup } from '../src/dist/token-split.js';

const be = new CpuBackend();

test('dispatch/combine over 2 ranks: rows reach their experts grouped by expert, return in order; backward is the reverse exchange', async () => {
  const comms = loopbackGroup(2);
  const E = 4, d = 3;
  // rows per expert (expert order) on each rank; rank 1 sends nothing to expert 1
  const loads = [[2, 1, 0, 3], [1, 0, 2, 2]];
  const rowsOf = (r: number) => Float32Array.from({ length: 6 * d }, (_, i) => 100 * r + i);
  const expertOfRow = (r: number) => loads[r]!.flatMap((n, e) => Array<number>(n).fill(e));
  const grads = [Float32Array.from({ length: 6 * d }, (_, i) => i % 5), Float32Array.from({ length: 5 * d }, (_, i) => 1 + (i % 3))];
  const results = await Promise.all(
    comms.map(async (comm, r) => {
      const disp = new ExpertDispatcher(comm, E);
      const n = loads[r]!.reduce((a, b) => a + b, 0);
      const rows = T.tensor(be, rowsOf(r).subarray(0, n * d), [n, d]);
      rows.requiresGrad = true;
      const { x, plan } = await disp.dispatch(rows, loads[r]!);
      const got = Array.from(x.dataSync() as Float32Array);
      // the "experts": row × (global expert id + 1)
      const factor = T.tensor(be, Float32Array.from(plan.counts.flatMap((c, i) => Array<number>(c).fill(disp.first + i + 1))), [x.shape[0]!, 1]);
      const out = await disp.combine(T.mul(x, factor), plan);
      await backwardAsync(T.sum(T.mul(out, T.tensor(be, grads[r]!.subarray(0, n * d), [n, d]))));
      return { got, counts: plan.counts, out: Array.from(out.dataSync() as Float32Array), grad: Array.from(rows.grad!.dataSync() as Float32Array), n };
    }),
  );
  // rank q holds experts 2q, 2q+1: their rows from rank 0 then rank 1, expert by expert
  const rowsFrom = (r: number, e: number) => {
    const start = loads[r]!.slice(0, e).reduce((a, b) => a + b, 0);
    return Array.from(rowsOf(r).subarray(start * d, (start + loads[r]![e]!) * d));
  };
  for (const q of [0, 1]) {
    const want = [2 * q, 2 * q + 1].flatMap((e) => [...rowsFrom(0, e), ...rowsFrom(1, e)]);
    assert.deepEqual(results[q]!.got, want, `rank ${q}'s expert input`);
    assert.deepEqual(results[q]!.counts, [2 * q, 2 * q + 1].map((e) => loads[0]![e]! + loads[1]![e]!));
  }
  for (const r of [0, 1]) {
    const ex = expertOfRow(r);
    const src = rowsOf(r);
    assert.deepEqual(results[r]!.out, Array.from({ length: results[r]!.n * d }, (_, i) => src[i]! * (ex[Math.floor(i / d)]! + 1)), `rank ${r}'s rows back in order`);
    assert.deepEqual(results[r]!.grad, Array.from({ length: results[r]!.n * d }, (_, i) => grads[r]![i]! * (ex[Math.floor(i / d)]! + 1)), `rank ${r}'s input gradient`);
  }
});

const cfg: ModelConfig = {
  ...preset('tiny-moe'), name: 'micro-moe', dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 64, seqLen: 8,
  moe: { ...preset('tiny-moe').moe!, experts: 4, topK: 2, expertFfnHidden: 8, sharedExperts: 1, balance: 'aux-loss', auxLossCoef: 0.1 },
};

function layer(): ParameterStore {
  const ps = new ParameterStore(be, 11);
  createMoeParams(ps, cfg, 'moe');
  return ps;
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  assert.equal(got.length, want.length, what);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1e-3 + Math.abs(want[i]!)));
  assert.ok(worst < 1e-5, `${what}: relative difference ${worst}`);
}

test('an MoE layer with its experts over 2 ranks: the output, balancing loss and gradients of one process', async () => {
  const N = 24, d = cfg.dModel;
  const inputs = [0, 1].map((r) => Float32Array.from({ length: N * d }, (_, i) => Math.sin(1.7 * i + 31 * r)));
  const weights = [0, 1].map((r) => Float32Array.from({ length: N * d }, (_, i) => Math.cos(0.3 * i + r)));
  const leaf = (data: Float32Array) => {
    const x = T.tensor(be, data, [N, d]);
    x.requiresGrad = true;
    return x;
  };
  // one process: each rank's tokens through the whole layer, gradients accumulating in one store
  const one = layer();
  const want = [0, 1].map((r) => {
    const x = leaf(inputs[r]!);
    const o = moe(one, cfg, 'moe', x, 'f32', null);
    backward(T.add(T.sum(T.mul(o.y, T.tensor(be, weights[r]!, [N, d]))), o.aux!));
    return { y: Array.from(o.y.dataSync() as Float32Array), aux: o.aux!.dataSync()[0]!, gx: x.grad!.dataSync() as Float32Array, loads: o.loads };
  });
  // two ranks, each computing only its experts (they share one store: its gradients are the sum over ranks)
  const two = layer();
  const comms = loopbackGroup(2);
  const got = await Promise.all(
    comms.map(async (comm, r) => {
      const disp = new ExpertDispatcher(comm, cfg.moe!.experts);
      const x = leaf(inputs[r]!);
      const o = await moeExpertParallel(two, cfg, 'moe', x, 'f32', null, disp);
      await backwardAsync(T.add(T.sum(T.mul(o.y, T.tensor(be, weights[r]!, [N, d]))), o.aux!));
      return { y: Array.from(o.y.dataSync() as Float32Array), aux: o.aux!.dataSync()[0]!, gx: x.grad!.dataSync() as Float32Array, loads: o.loads };
    }),
  );
  for (const r of [0, 1]) {
    assert.ok(want[r]!.loads.every((l) => l > 0), 'every expert gets tokens (the test exercises every path)');
    assert.deepEqual(got[r]!.loads, want[r]!.loads, `rank ${r}'s routing`);
    close(got[r]!.y, want[r]!.y, `rank ${r}'s output`);
    close([got[r]!.aux], [want[r]!.aux], `rank ${r}'s balancing loss`);
    close(got[r]!.gx, want[r]!.gx, `rank ${r}'s input gradient`);
  }
  const g = (ps: ParameterStore, name: string): Tensor | null => ps.get(name).grad;
  for (const name of one.tensors.keys()) {
    const a = g(one, name), b = g(two, name);
    assert.ok(a && b, `${name} has a gradient on both`);
    close(b.dataSync() as Float32Array, a.dataSync() as Float32Array, `gradient of ${name}`);
  }
});

for (const balance of ['aux-loss', 'bias'] as const)
  test(`an MoE layer under tp2 (${balance} balancing): each rank's half of the tokens through experts over the pair gives one process's output, micro-batch balancing loss, loads and gradients`, async () => {
    const c: ModelConfig = { ...cfg, moe: { ...cfg.moe!, balance } };
    const N = 24, d = c.dModel, half = N / 2;
    const xs = Float32Array.from({ length: N * d }, (_, i) => Math.sin(0.37 * i + 0.5));
    const ws = Float32Array.from({ length: N * d }, (_, i) => Math.cos(0.21 * i));
    // bias balancing steers the selection: a bias that changes which experts win
    const bias = balance === 'bias' ? Float64Array.from([0.004, -0.006, 0.002, 0]) : null;
    const leaf = (data: Float32Array, rows: number) => {
      const x = T.tensor(be, data, [rows, d]);
      x.requiresGrad = true;
      return x;
    };
    const one = layer();
    const x = leaf(xs, N);
    const o = moe(one, c, 'moe', x, 'f32', bias);
    backward(o.aux ? T.add(T.sum(T.mul(o.y, T.tensor(be, ws, [N, d]))), o.aux) : T.sum(T.mul(o.y, T.tensor(be, ws, [N, d]))));
    const want = { y: o.y.dataSync() as Float32Array, aux: o.aux ? o.aux.dataSync()[0]! : null, gx: x.grad!.dataSync() as Float32Array, loads: o.loads };
    assert.equal(want.aux === null, balance === 'bias');
    // rank r: tokens [r·N/2, (r+1)·N/2); the tp pair is also the ep group (experts 2r, 2r+1), as under tp2 x ep2
    const two = layer();
    const tps = loopbackGroup(2), eps = loopbackGroup(2);
    const got = await Promise.all(
      [0, 1].map(async (r) => {
        const xr = leaf(xs.slice(r * half * d, (r + 1) * half * d), half);
        const or = await moeExpertParallel(two, c, 'moe', xr, 'f32', bias, new ExpertDispatcher(eps[r]!, c.moe!.experts), tps[r]!);
        const yw = T.sum(T.mul(or.y, T.tensor(be, ws.slice(r * half * d, (r + 1) * half * d), [half, d])));
        await backwardAsync(or.aux ? T.add(yw, or.aux) : yw);
        return { y: or.y.dataSync() as Float32Array, aux: or.aux ? or.aux.dataSync()[0]! : null, gx: xr.grad!.dataSync() as Float32Array, loads: or.loads };
      }),
    );
    close([...got[0]!.y, ...got[1]!.y], want.y, 'output');
    close([...got[0]!.gx, ...got[1]!.gx], want.gx, 'input gradient');
    for (const [r, g] of got.entries()) {
      assert.deepEqual(g.loads, want.loads, `rank ${r}: the micro-batch's loads (both halves)`);
      if (want.aux !== null) close([g.aux!], [want.aux], `rank ${r}: balancing loss over the micro-batch`);
    }
    assert.ok(want.loads.every((l) => l > 0), 'every expert gets tokens');
    if (bias) assert.notDeepEqual(moe(layer(), c, 'moe', T.tensor(be, xs, [N, d]), 'f32', null).loads, want.loads, 'the bias steers the selection');
    // the pair's gradients land in one store: the router's and shared expert's sum over tp, each expert's from its rank
    for (const name of one.tensors.keys()) close(two.get(name).grad!.dataSync() as Float32Array, one.get(name).grad!.dataSync() as Float32Array, `gradient of ${name}`);
  });

test("token split over a tp pair: split keeps a rank's rows and all-gathers the gradient; gather concatenates and keeps the rank's rows of the gradient", async () => {
  const comms = loopbackGroup(2);
  const x = Float32Array.from({ length: 12 }, (_, i) => i + 1); // [4, 3], replicated on both ranks
  const g = Float32Array.from({ length: 6 }, (_, i) => 10 * (i + 1));
  const got = await Promise.all(
    comms.map(async (comm, r) => {
      const leaf = T.tensor(be, x, [4, 3]);
      leaf.requiresGrad = true;
      const mine = splitToGroup(leaf, comm);
      const block = Array.from(mine.dataSync() as Float32Array);
      // a per-rank weight on the block, then gathered back: the whole is the same on both ranks
      const scaled = T.mulScalar(mine, r + 2);
      const whole = await gatherSplitBack(scaled, comm);
      const wholeVals = Array.from(whole.dataSync() as Float32Array);
      await backwardAsync(T.sum(T.mul(whole, T.tensor(be, Float32Array.from({ length: 12 }, (_, i) => g[i % 6]! + i), [4, 3]))));
      return { block, wholeVals, grad: Array.from(leaf.grad!.dataSync() as Float32Array) };
    }),
  );
  const upstream = Array.from({ length: 12 }, (_, i) => g[i % 6]! + i);
  const wholeWant = Array.from(x, (v, i) => v * (i < 6 ? 2 : 3));
  const gradWant = upstream.map((u, i) => u * (i < 6 ? 2 : 3));
  for (const [r, o] of got.entries()) {
    assert.deepEqual(o.block, Array.from(x.subarray(r * 6, (r + 1) * 6)), `rank ${r}'s rows`);
    assert.deepEqual(o.wholeVals, wholeWant, `rank ${r}: the gathered whole`);
    assert.deepEqual(o.grad, gradWant, `rank ${r}: the whole input gradient (each block's from its rank)`);
  }
});

test('an MoE layer on webgpu (asynchronous: no dataSync) through the expert-parallel path with ep 1: the cpu layer\'s output and gradients', async (t) => {
  let gpu;
  try {
    gpu = await getBackend('webgpu');
  } catch (e) {
    t.skip(`no WebGPU adapter (${(e as Error).message.slice(0, 120)})`);
    return;
  }
  const N = 12, d = cfg.dModel;
  const xs = Float32Array.from({ length: N * d }, (_, i) => Math.sin(0.9 * i));
  const run = async (backend: Backend, ep: boolean) => {
    const ps = new ParameterStore(backend, 3);
    createMoeParams(ps, cfg, 'moe');
    const x = T.tensor(backend, xs, [N, d]);
    x.requiresGrad = true;
    const o = ep ? await moeExpertParallel(ps, cfg, 'moe', x, 'f32', null, new ExpertDispatcher(new LocalCommunicator('ep', 0), cfg.moe!.experts)) : moe(ps, cfg, 'moe', x, 'f32', null);
    await backwardAsync(T.add(T.sum(T.mul(o.y, o.y)), o.aux!));
    const grads = [];
    for (const name of ps.tensors.keys()) grads.push({ name, g: (await ps.get(name).grad!.data()) as Float32Array });
    return { y: (await o.y.data()) as Float32Array, gx: (await x.grad!.data()) as Float32Array, grads };
  };
  const onGpu = new ParameterStore(gpu, 3);
  createMoeParams(onGpu, cfg, 'moe');
  assert.throws(() => moe(onGpu, cfg, 'moe', T.tensor(gpu, xs, [N, d]), 'f32', null), /asynchronous/, 'the one-process layer cannot read synchronously there');
  const want = await run(be, false), got = await run(gpu, true);
  close(got.y, want.y, 'output');
  close(got.gx, want.gx, 'input gradient');
  got.grads.forEach(({ name, g }, i) => close(g, want.grads[i]!.g, `gradient of ${name}`));
});

test('zili train of an MoE model on webgpu (one process): the losses of the cpu run', async (t) => {
  try {
    await getBackend('webgpu');
  } catch (e) {
    t.skip(`no WebGPU adapter (${(e as Error).message.slice(0, 120)})`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-moe-gpu-'));
  const losses = async (backend: string) => {
    const out = path.join(dir, backend);
    const args = ['--preset', 'tiny-moe', '--layers', '2', '--d-model', '32', '--heads', '2', '--kv-heads', '1', '--seq', '16', '--steps', '3', '--global-batch', '2', '--eval-every', '0', '--seed', '7'];
    assert.equal(await trainCli([...args, '--backend', backend, '--out', out]), 0);
    return readMetrics(path.join(out, 'metrics.jsonl')).map((m) => m.loss);
  };
  const want = await losses('cpu'), got = await losses('webgpu');
  assert.equal(got.length, 3);
  close(got, want, 'webgpu vs cpu losses');
});
