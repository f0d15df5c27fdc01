// `zili bench gemm`: GFLOP/s of zili's GEMM (f32 sgemm, or bf16 bgemm) against OpenBLAS
// cblas_sgemm at one shape, or (--suite) at the training shapes of the reference config and at
// 1024^3 / 2048^3. Best of --repeat timed runs after one warm-up. For honest OpenBLAS numbers run
// with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset:
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE bin/zili bench gemm --m 2048 --n 2048 --k 2048
import { loadavg, totalmem } from 'node:os';
import { formatHelp, parseArgs, UsageError } from '../args.js';
import { loadNative, type NativeKernels } from '../../backend/cpu/native.js';
import { MAX_THREADS, oversubscriptionWarning } from '../../util/threads.js';
import { userCoretype } from '../../backend/cpu/gemm-tune.js';
import { openblasPerCoreType } from './gemm-coretypes.js';
import { filled } from '../../backend/cpu/gemm-probe.js';

const SPECS = {
  m: { kind: 'int', help: 'rows of C', default: 1024, min: 1 },
  n: { kind: 'int', help: 'columns of C', default: 1024, min: 1 },
  k: { kind: 'int', help: 'inner dimension', default: 1024, min: 1 },
  dtype: { kind: 'string', help: 'f32 | bf16', default: 'f32' },
  'trans-a': { kind: 'bool', help: 'A is stored transposed (k x m)' },
  'trans-b': { kind: 'bool', help: 'B is stored transposed (n x k)' },
  repeat: { kind: 'int', help: 'timed runs (best is reported)', default: 5, min: 1 },
  suite: { kind: 'bool', help: 'run the training shapes and 1024^3, 2048^3 with every engine' },
  'core-types': { kind: 'bool', help: "zili's f32 GEMM at the shape against OpenBLAS under every core type this CPU supports" },
  threads: { kind: 'int', help: 'threads (default: ZILI_THREADS or 2)', min: 1, max: MAX_THREADS },
  backend: { kind: 'string', help: 'cpu (native GEMM vs OpenBLAS) or another backend, e.g. webgpu (its matmul alone)', default: 'cpu' },
  json: { kind: 'bool', help: 'end with one JSON line' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

interface Shape { m: number; n: number; k: number; ta: boolean; tb: boolean; label?: string }

const fill = filled;

/** Best GFLOP/s of `fn` over `repeat` runs after one warm-up. */
function time(fn: () => void, flops: number, repeat: number): number {
  fn();
  let best = Infinity;
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return flops / best / 1e9;
}

export interface GemmResult { m: number; n: number; k: number; transA: boolean; transB: boolean; cblas: number; onednn: number; zili: number; engine: string; bf16: number }

export function measure(N: NativeKernels, s: Shape, repeat: number, which: { f32: boolean; bf16: boolean; engines: boolean }): GemmResult {
  const { m, n, k, ta, tb } = s;
  const a = fill(m * k, 1), b = fill(k * n, 2), c = new Float32Array(m * n);
  const lda = ta ? m : k, ldb = tb ? k : n, flops = 2 * m * n * k;
  const r: GemmResult = { m, n, k, transA: ta, transB: tb, cblas: 0, onednn: 0, zili: 0, engine: N.sgemmEngine(ta, tb, m, n, k), bf16: 0 };
  r.cblas = time(() => N.cblasSgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, n), flops, repeat);
  if (which.engines) r.onednn = time(() => N.dnnlSgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, n), flops, repeat);
  if (which.f32) r.zili = time(() => N.sgemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0, c, n), flops, repeat);
  if (which.bf16) {
    const ab = new Uint16Array(a.length), bb = new Uint16Array(b.length);
    N.castF32ToBf16(a, ab);
    N.castF32ToBf16(b, bb);
    r.bf16 = time(() => N.bgemm(ta, tb, m, n, k, 1, ab, lda, bb, ldb, 0, c, n), flops, repeat);
  }
  return r;
}

/** Training shapes of the reference config (tokens 2048 = batch 8 x seq 256, d_model 384, ffn 1024, vocab 4096). */
export function trainingShapes(): Shape[] {
  const T = 2048, out: Shape[] = [];
  for (const [d, f, what] of [[384, 384, 'attn proj'], [384, 1024, 'ffn up'], [1024, 384, 'ffn down'], [384, 4096, 'lm head']] as const) {
    out.push({ m: T, n: f, k: d, ta: false, tb: true, label: `${what} fwd  x W^T` });
    out.push({ m: T, n: d, k: f, ta: false, tb: false, label: `${what} dX   dY W` });
    out.push({ m: f, n: d, k: T, ta: true, tb: false, label: `${what} dW   dY^T X` });
  }
  out.push({ m: 1024, n: 1024, k: 1024, ta: false, tb: false, label: 'square 1024' });
  out.push({ m: 2048, n: 2048, k: 2048, ta: false, tb: false, label: 'square 2048' });
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const o = parseArgs(argv, SPECS, 'bench gemm');
  if (o.help) {
    console.log(formatHelp('bench gemm', SPECS, '[--m M --n N --k K] [--dtype f32|bf16] [--json]'));
    return 0;
  }
  if (o.dtype !== 'f32' && o.dtype !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got '${o.dtype}'`);
  const gemmBytes = 4 * (o.m! * o.k! + o.k! * o.n! + o.m! * o.n!);
  if (gemmBytes > totalmem() / 2)
    throw new UsageError(`--m ${o.m} --n ${o.n} --k ${o.k} needs ${(gemmBytes / 2 ** 30).toFixed(1)} GiB for A, B and C; this machine has ${(totalmem() / 2 ** 30).toFixed(1)} GiB: use smaller sizes`);
  if (o.backend && o.backend !== 'cpu') {
    if (o.dtype !== 'f32' || o.suite) throw new UsageError(`--backend ${o.backend}: only single f32 shapes are measured`);
    const { measureDevice } = await import('./gemm-device.js');
    const r = await measureDevice(o.backend, o.m!, o.n!, o.k!, !!o['trans-a'], !!o['trans-b'], Math.max(1, o.repeat ?? 5));
    console.log(`${r.backend} sgemm f32 ${r.m}x${r.n}x${r.k}${r.transA ? ' transA' : ''}${r.transB ? ' transB' : ''}: ${r.gflops.toFixed(1)} GFLOP/s (${r.msPerGemm.toFixed(2)} ms) on ${r.device}`);
    if (o.json) console.log(JSON.stringify({ gflops: +r.gflops.toFixed(2), backend: r.backend, device: r.device, m: r.m, n: r.n, k: r.k, dtype: 'f32', transA: r.transA, transB: r.transB, msPerGemm: +r.msPerGemm.toFixed(3) }));
    return 0;
  }
  const N = loadNative();
  if (o.threads !== undefined) N.setThreads(o.threads);
  const oversubscribed = oversubscriptionWarning(N.threads());
  if (oversubscribed) console.error(`zili bench: ${oversubscribed}`);
  const repeat = Math.max(1, o.repeat ?? 5);
  const env = ['OPENBLAS_L2_SIZE'].filter((v) => process.env[v] !== undefined);
  if (userCoretype()) env.push('OPENBLAS_CORETYPE');
  if (env.length) console.log(`note: ${env.join(', ')} set: OpenBLAS runs slower kernels (unset them for benchmark numbers)`);
  if (o.suite) {
    const rows: GemmResult[] = [];
    console.log(`threads ${N.threads()}, best of ${repeat}, GFLOP/s`);
    console.log('shape'.padEnd(40) + 'cblas'.padStart(8) + 'onednn'.padStart(8) + 'zili'.padStart(8) + ' engine  ' + 'ratio'.padStart(6) + 'bf16'.padStart(8) + ' bf16/zili');
    for (const s of trainingShapes()) {
      const r = measure(N, s, repeat, { f32: true, bf16: true, engines: true });
      rows.push(r);
      const name = `${s.label} ${s.m}x${s.n}x${s.k}${s.ta ? ' tA' : ''}${s.tb ? ' tB' : ''}`;
      console.log(name.padEnd(40) + r.cblas.toFixed(1).padStart(8) + r.onednn.toFixed(1).padStart(8) + r.zili.toFixed(1).padStart(8) + ` ${r.engine.padEnd(8)}` +
        (r.zili / r.cblas).toFixed(2).padStart(6) + r.bf16.toFixed(1).padStart(8) + (r.bf16 / r.zili).toFixed(2).padStart(10));
    }
    if (o.json) console.log(JSON.stringify({ threads: N.threads(), repeat, results: rows }));
    return 0;
  }
  const s: Shape = { m: o.m!, n: o.n!, k: o.k!, ta: !!o['trans-a'], tb: !!o['trans-b'] };
  for (const [name, v] of [['m', s.m], ['n', s.n], ['k', s.k]] as const) if (!(v > 0)) throw new UsageError(`--${name} must be positive`);
  if (o['core-types']) {
    // zili before and after the OpenBLAS children, best of both, so load changes hit both sides
    const z1 = measure(N, s, repeat, { f32: true, bf16: false, engines: false }).zili;
    const rows = openblasPerCoreType(s.m, s.n, s.k, repeat, N.threads());
    const zili = Math.max(z1, measure(N, s, repeat, { f32: true, bf16: false, engines: false }).zili);
    const best = Math.max(0, ...rows.map((r) => r.gflops ?? 0));
    for (const r of rows) console.log(`OpenBLAS ${r.core.padEnd(16)} ${r.gflops === null ? `failed (${r.error})` : `${r.gflops.toFixed(1)} GFLOP/s`}`);
    console.log(`zili sgemm ${s.m}x${s.n}x${s.k}: ${zili.toFixed(1)} GFLOP/s (${N.sgemmEngine(s.ta, s.tb, s.m, s.n, s.k)}, OpenBLAS ${N.openblasCore()}) = ${(zili / best).toFixed(2)}x the best OpenBLAS core type; load ${loadavg()[0]!.toFixed(1)}`);
    if (o.json) console.log(JSON.stringify({ m: s.m, n: s.n, k: s.k, zili: +zili.toFixed(2), openblas: rows, ratioVsBest: +(zili / best).toFixed(3), threads: N.threads() }));
    return 0;
  }
  const bf16 = o.dtype === 'bf16';
  const r = measure(N, s, repeat, { f32: true, bf16, engines: false });
  const gflops = bf16 ? r.bf16 : r.zili;
  const shape = `${s.m}x${s.n}x${s.k}${s.ta ? ' transA' : ''}${s.tb ? ' transB' : ''}`;
  if (bf16)
    console.log(`bgemm bf16 ${shape}: ${r.bf16.toFixed(1)} GFLOP/s (${N.bgemmImpl(s.ta, s.tb, s.m, s.n, s.k)}); zili f32 ${r.zili.toFixed(1)} -> ${(r.bf16 / r.zili).toFixed(2)}x; cblas_sgemm ${r.cblas.toFixed(1)}; threads ${N.threads()}, best of ${repeat}`);
  else
    console.log(`sgemm f32 ${shape}: ${r.zili.toFixed(1)} GFLOP/s (${r.engine}); cblas_sgemm ${r.cblas.toFixed(1)} -> ${(r.zili / r.cblas).toFixed(2)}x; threads ${N.threads()}, best of ${repeat}`);
  if (o.json) {
    const out: Record<string, unknown> = { gflops: +gflops.toFixed(2), baselineGflops: +r.cblas.toFixed(2), m: s.m, n: s.n, k: s.k, dtype: o.dtype, transA: s.ta, transB: s.tb, threads: N.threads(), engine: bf16 ? N.bgemmImpl(s.ta, s.tb, s.m, s.n, s.k) : r.engine };
    if (bf16) { out.f32Gflops = +r.zili.toFixed(2); out.speedupVsF32 = +(r.bf16 / r.zili).toFixed(3); }
    else out.ratioVsBaseline = +(r.zili / r.cblas).toFixed(3);
    console.log(JSON.stringify(out));
  }
  return 0;
}
