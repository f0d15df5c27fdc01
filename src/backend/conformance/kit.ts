// The conformance kit a new chip's backend must pass (`zili selftest --backend NAME`): every op and
// fused routine, forward and backward, compared with the reference backend on the same inputs,
// with tolerances per dtype scaled to the magnitude of the reference output; plus bf16 GEMM and
// casts, error handling, and a leak check. A shapes-only backend (meta) is checked for shapes,
// dtypes and memory accounting instead of values.
import type { Backend } from '../contract.js';
import { ReferenceBackend } from '../reference/reference-backend.js';
import { backward } from '../../tensor/autograd.js';
import { type DType, type HostArray, readElement } from '../../tensor/dtype.js';
import * as T from '../../tensor/ops.js';
import { tidy, tidyAsync } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { OP_CASES, type OpCase, caseData } from './cases.js';

export interface CaseResult {
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  detail?: string;
  /** worst error / tolerance (<= 1 passes) */
  ratio?: number;
}

export interface KitReport {
  backend: string;
  passed: number;
  failed: number;
  skipped: number;
  results: CaseResult[];
}

const TOL: Record<DType, { atol: number; rtol: number }> = {
  f64: { atol: 1e-12, rtol: 1e-10 },
  f32: { atol: 1e-6, rtol: 2e-5 },
  bf16: { atol: 1e-3, rtol: 1.6e-2 },
  i32: { atol: 0, rtol: 0 },
};

/** max |a - b| / (atol + rtol · max|b|): a tolerance scaled to the reference's magnitude. */
export function compare(actual: HostArray, expected: HostArray, dtype: DType): { ratio: number; where: string } {
  if (actual.length !== expected.length) return { ratio: Infinity, where: `length ${actual.length} vs ${expected.length}` };
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(readElement(expected, i)));
  const { atol, rtol } = TOL[dtype];
  const tol = atol + rtol * scale;
  let ratio = 0, where = '';
  for (let i = 0; i < expected.length; i++) {
    const a = readElement(actual, i), e = readElement(expected, i);
    const err = Number.isNaN(a) !== Number.isNaN(e) ? Infinity : Number.isNaN(e) ? 0 : Math.abs(a - e);
    const r = tol === 0 ? (err === 0 ? 0 : Infinity) : err / tol;
    if (r > ratio) {
      ratio = r;
      where = `element ${i}: ${a} vs reference ${e}`;
    }
  }
  return { ratio, where };
}

interface Output {
  shape: readonly number[];
  dtype: DType;
  data: HostArray;
}

/**
 * Runs the case's forward and backward on a backend; returns the output and every input gradient.
 * Results come back through `await tensor.data()`, so asynchronous backends (webgpu) run the kit too.
 */
function runCase(backend: Backend, c: OpCase, dtype: DType): Promise<Output[]> {
  return tidyAsync(async () => {
    const xs = c.inputs.map((inp) => {
      const d = caseData(inp);
      const t = d instanceof Int32Array ? T.tensor(backend, d, inp.shape, 'i32') : T.tensor(backend, Float32Array.from(d), inp.shape, dtype);
      if (!(d instanceof Int32Array) && c.differentiable !== false) t.requiresGrad = true;
      return t;
    });
    const y = c.f(xs);
    const outputs: Output[] = [{ shape: y.shape, dtype: y.dtype, data: await y.data() }];
    if (c.differentiable !== false) {
      // contract the output with fixed weights so every element gets a distinct gradient
      const wdata = caseData({ shape: [y.numel], seed: 99 });
      const w = T.tensor(backend, Float32Array.from(wdata), y.shape, y.dtype);
      backward(T.sum(T.mul(y, w)));
      for (const x of xs)
        if (x.requiresGrad) {
          const g = x.grad!;
          outputs.push({ shape: g.shape, dtype: g.dtype, data: await g.data() });
          g.dispose();
          x.grad = null;
        }
    }
    for (const x of xs) x.dispose();
    return outputs;
  });
}

async function check(name: string, fn: () => void | Promise<void>): Promise<CaseResult> {
  try {
    await fn();
    return { name, status: 'passed' };
  } catch (e) {
    return { name, status: 'failed', detail: (e as Error).message.split('\n')[0] };
  }
}

/** What a passed case of a shapes-only backend checked. */
export const SHAPES_ONLY = 'shapes and dtypes only (this backend computes no values)';

async function runOpCase(backend: Backend, ref: Backend, c: OpCase, shapesOnly: boolean): Promise<CaseResult> {
  const name = `${c.name} (fwd${c.differentiable === false ? '' : '+bwd'}, f32)`;
  try {
    const live = backend.memory().liveBuffers;
    const got = await runCase(backend, c, 'f32');
    const want = await runCase(ref, c, 'f32');
    const leaked = backend.memory().liveBuffers - live;
    if (got.length !== want.length) return { name, status: 'failed', detail: `${got.length} outputs and gradients vs reference ${want.length}` };
    let worst = 0, where = '';
    for (let i = 0; i < got.length; i++) {
      const g = got[i]!, w = want[i]!;
      const label = i === 0 ? 'output' : `grad ${i}`;
      if (g.shape.join() !== w.shape.join()) return { name, status: 'failed', detail: `${label} shape [${g.shape}] vs reference [${w.shape}]` };
      if (g.dtype !== w.dtype) return { name, status: 'failed', detail: `${label} dtype ${g.dtype} vs reference ${w.dtype}` };
      if (shapesOnly) continue;
      const r = compare(g.data, w.data, w.dtype);
      if (r.ratio > worst) {
        worst = r.ratio;
        where = `${label} ${r.where}`;
      }
    }
    if (leaked > 0) return { name, status: 'failed', detail: `${leaked} device buffers leaked` };
    if (worst > 1) return { name, status: 'failed', ratio: worst, detail: `error ${worst.toFixed(2)}x tolerance at ${where}` };
    // a shapes-only backend computed no values: say what was checked, claim no tolerance
    return shapesOnly ? { name, status: 'passed', detail: SHAPES_ONLY } : { name, status: 'passed', ratio: worst };
  } catch (e) {
    return { name, status: 'failed', detail: (e as Error).message.split('\n')[0] };
  }
}

async function bf16Cases(backend: Backend, ref: Backend, shapesOnly: boolean): Promise<CaseResult[]> {
  if (!backend.dtypes.includes('bf16')) return [{ name: 'bf16 cast and matmul', status: 'skipped', detail: `backend stores no bf16` }];
  const out: CaseResult[] = [];
  const golden = [1.00390625, 1.01171875, -0.0, Infinity, -Infinity, 3.4e38, 1e-40, 65504.5];
  out.push(
    await check('bf16 cast round-to-nearest-even', async () => {
      const res = (b: Backend) =>
        tidyAsync(async () => {
          const x = T.tensor(b, Float32Array.from(golden), [golden.length]);
          return T.cast(T.cast(x, 'bf16'), 'f32').data();
        });
      const got = await res(backend), want = await res(ref);
      if (shapesOnly) return;
      for (let i = 0; i < golden.length; i++)
        if (!Object.is(got[i], want[i])) throw new Error(`cast(${golden[i]}) gave ${got[i]}, reference ${want[i]}`);
    }),
  );
  for (const [m, n, k, ta, tb] of [[33, 17, 65, false, false], [64, 48, 96, false, true], [20, 30, 40, true, false]] as const)
    out.push(
      await check(`bf16 matmul ${m}x${n}x${k}${ta ? ' transA' : ''}${tb ? ' transB' : ''} (fwd+bwd)`, async () => {
        const res = (b: Backend) =>
          tidyAsync(async () => {
            const a = T.tensor(b, Float32Array.from(caseData({ shape: [m * k], seed: 3 })), ta ? [k, m] : [m, k], 'bf16');
            const w = T.tensor(b, Float32Array.from(caseData({ shape: [k * n], seed: 4 })), tb ? [n, k] : [k, n], 'bf16');
            a.requiresGrad = w.requiresGrad = true;
            const y = T.matmul(a, w, { transA: ta, transB: tb });
            backward(T.sum(T.square(y)));
            const r = [await y.data(), await a.grad!.data(), await w.grad!.data()] as const;
            a.grad!.dispose();
            w.grad!.dispose();
            a.dispose();
            w.dispose();
            return r;
          });
        const got = await res(backend), want = await res(ref);
        if (shapesOnly) return;
        const r = compare(got[0], want[0], 'f32');
        // products of bf16 inputs are exact in f32; only the accumulation order differs
        if (r.ratio > 20) throw new Error(`output off by ${r.ratio.toFixed(1)}x f32 tolerance at ${r.where}`);
        for (const i of [1, 2]) {
          const g = compare(got[i]!, want[i]!, 'bf16');
          if (g.ratio > 1) throw new Error(`gradient ${i} off by ${g.ratio.toFixed(2)}x bf16 tolerance at ${g.where}`);
        }
      }),
    );
  return out;
}

function errorCases(backend: Backend): Promise<CaseResult[]> {
  const expectThrow = (name: string, fn: () => unknown, pattern: RegExp) =>
    check(name, () => {
      let msg = '';
      try {
        tidy(() => void fn());
      } catch (e) {
        msg = (e as Error).message;
      }
      if (!pattern.test(msg)) throw new Error(`expected an error matching ${pattern}, got '${msg || 'no error'}'`);
    });
  return Promise.all([
    expectThrow('error: matmul shape mismatch', () => T.matmul(T.zeros(backend, [2, 3]), T.zeros(backend, [4, 5])), /matmul: inner dimensions differ: \[2, 3\] @ \[4, 5\]/),
    expectThrow('error: dtype mismatch', () => T.add(T.zeros(backend, [2]), T.zeros(backend, [2], 'i32')), /add: dtype mismatch, f32 \[2\] vs i32 \[2\]; cast/),
    expectThrow('error: broadcast mismatch', () => T.mul(T.zeros(backend, [2, 3]), T.zeros(backend, [3, 2])), /mul: shapes \[2, 3\] and \[3, 2\] do not broadcast/),
  ]);
}

function leakCase(backend: Backend): Promise<CaseResult> {
  return check('leak check: a training-like step frees everything it allocates', () => {
    const before = backend.memory().liveBuffers;
    const w = T.random(backend, [8, 8], { seed: 5, std: 0.3 });
    w.requiresGrad = true;
    for (let i = 0; i < 3; i++)
      tidy(() => {
        const x = T.random(backend, [2, 4, 8], { seed: 6, offset: 64 * i });
        const h = T.rmsnorm(T.matmul(x, w), T.ones(backend, [8]), 1e-5);
        const q = T.reshape(h, [2, 4, 2, 4]);
        const a = T.attention(q, q, q);
        backward(T.crossEntropy(T.reshape(a, [8, 8]), T.tensor(backend, Int32Array.from([1, 2, 3, 4, 5, 6, 7, 0]))));
      });
    w.grad?.dispose();
    w.dispose();
    const after = backend.memory().liveBuffers;
    if (after > before) throw new Error(`${after - before} buffers still live after the steps were freed`);
  });
}

/**
 * Runs the whole kit (asynchronous so that it runs on asynchronous backends too: results are read
 * with `await tensor.data()`). `filter` selects cases by substring.
 */
export async function runConformance(backend: Backend, opts: { filter?: string } = {}): Promise<KitReport> {
  const ref = new ReferenceBackend();
  const shapesOnly = backend.name === 'meta';
  const results: CaseResult[] = [];
  for (const c of OP_CASES) {
    if (opts.filter && !c.name.includes(opts.filter)) continue;
    results.push(await runOpCase(backend, ref, c, shapesOnly));
  }
  if (!opts.filter || 'bf16'.includes(opts.filter) || opts.filter.includes('bf16')) results.push(...(await bf16Cases(backend, ref, shapesOnly)));
  if (!opts.filter) {
    results.push(...(await errorCases(backend)));
    results.push(await leakCase(backend));
  }
  const count = (s: CaseResult['status']) => results.filter((r) => r.status === s).length;
  return { backend: backend.name, passed: count('passed'), failed: count('failed'), skipped: count('skipped'), results };
}
