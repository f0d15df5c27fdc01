// `zili bench gemm --backend NAME` for a non-cpu backend (webgpu): GFLOP/s of the backend's matmul
// at one shape, timed from enqueue to completion (the backend's sync(), or a one-element read):
// one warm-up, then --repeat runs of `iters` back-to-back GEMMs, best run reported.
import type { Backend } from '../../backend/contract.js';
import { getBackend } from '../../backend/registry.js';

export interface DeviceGemmResult { backend: string; device: string; m: number; n: number; k: number; transA: boolean; transB: boolean; gflops: number; msPerGemm: number }

async function finish(b: Backend, c: ReturnType<Backend['alloc']>): Promise<void> {
  const s = (b as { sync?: () => Promise<void> }).sync;
  if (s) await s.call(b);
  else await b.read(c);
}

export async function measureDevice(name: string, m: number, n: number, k: number, transA: boolean, transB: boolean, repeat: number): Promise<DeviceGemmResult> {
  const b = await getBackend(name);
  const a = b.alloc('f32', m * k), w = b.alloc('f32', k * n), c = b.alloc('f32', m * n);
  b.random(a, 'uniform', 1, 0);
  b.random(w, 'uniform', 2, 0);
  const d = { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, alpha: 1, beta: 0 };
  const flops = 2 * m * n * k;
  b.matmul(a, w, c, d);
  await finish(b, c);
  // enough GEMMs per timed run to cover submission overhead (about 0.2 s of work at a guess of 10 GFLOP/s, at least 1)
  const t0 = process.hrtime.bigint();
  b.matmul(a, w, c, d);
  await finish(b, c);
  const one = Number(process.hrtime.bigint() - t0) / 1e9;
  const iters = Math.max(1, Math.min(50, Math.round(0.2 / Math.max(one, 1e-6))));
  let best = Infinity;
  for (let r = 0; r < repeat; r++) {
    const s = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) b.matmul(a, w, c, d);
    await finish(b, c);
    best = Math.min(best, Number(process.hrtime.bigint() - s) / 1e9 / iters);
  }
  for (const x of [a, w, c]) b.free(x);
  const device = (b as { description?: string }).description ?? name;
  return { backend: name, device, m, n, k, transA, transB, gflops: flops / best / 1e9, msPerGemm: best * 1e3 };
}
