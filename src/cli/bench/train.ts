// `zili bench train`: training throughput of one model configuration on random token batches —
// forward, backward and AdamW per step, timed after warm-up steps. Reports tokens/s, MFU (model
// FLOPs, src/plan/flops.ts, over the measured peak of the unit the GEMMs ran on), peak memory and
// where one step's time goes (step-profile.ts). Compare with PyTorch by bench/compare-torch.sh.
import { loadavg } from 'node:os';
import { formatHelp, parseArgs, UsageError } from '../args.js';
import { getBackend } from '../../backend/registry.js';
import { type ModelConfig, validateModelConfig } from '../../nn/config.js';
import { preset } from '../../nn/presets.js';
import { countParams } from '../../nn/param-count.js';
import { Transformer } from '../../nn/transformer.js';
import { AdamW, defaultAdamW } from '../../optim/adamw.js';
import { mfu as mfuOf, peakOf, trainFlopsPerToken } from '../../train/mfu.js';
import { formatProfile, profileStep } from './step-profile.js';
import * as T from '../../tensor/ops.js';
import { backward } from '../../tensor/autograd.js';
import { tidy } from '../../tensor/scope.js';
import { CpuBackend } from '../../backend/cpu/cpu-backend.js';
import { MAX_THREADS, oversubscriptionWarning } from '../../util/threads.js';
import { applyShapeFlags, SHAPE_FLAGS } from '../model-shape-flags.js';

const SPECS = {
  preset: { kind: 'string', help: 'start from a preset (flags below override its fields)' },
  ...SHAPE_FLAGS,
  seq: { kind: 'int', help: 'sequence length', min: 1 },
  batch: { kind: 'int', help: 'sequences per step', default: 8, min: 1 },
  steps: { kind: 'int', help: 'timed steps', default: 5, min: 1 },
  warmup: { kind: 'int', help: 'untimed steps first', default: 2, min: 0 },
  dtype: { kind: 'string', help: 'f32 | bf16 (GEMM precision)', default: 'f32' },
  recompute: { kind: 'string', help: 'none | full', default: 'none' },
  backend: { kind: 'string', help: 'backend', default: 'cpu' },
  threads: { kind: 'int', help: 'CPU threads (default ZILI_THREADS or 2)', min: 1, max: MAX_THREADS },
  json: { kind: 'bool', help: 'end with one JSON line' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, SPECS, 'bench train');
  if (a.help) {
    console.log(formatHelp('bench train', SPECS));
    return 0;
  }
  const base: ModelConfig = a.preset ? preset(a.preset) : preset('small');
  const config = validateModelConfig({ ...applyShapeFlags(base, a), name: a.preset ?? 'bench', seqLen: a.seq ?? base.seqLen });
  if (a.dtype !== 'f32' && a.dtype !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got '${a.dtype}'`);
  if (a.recompute !== 'none' && a.recompute !== 'full') throw new UsageError(`--recompute must be none or full, got '${a.recompute}'`);
  const backend = await getBackend(a.backend!);
  if (a.threads && backend instanceof CpuBackend) backend.native.setThreads(a.threads);
  const oversubscribed = oversubscriptionWarning(a.threads ?? 1);
  if (oversubscribed) console.error(`zili bench train: ${oversubscribed}`);
  const B = a.batch!, S = config.seqLen;
  const model = new Transformer(config, backend, { seed: 1, dtype: a.dtype, recompute: a.recompute });
  const opt = new AdamW(model.params, defaultAdamW());
  let seed = 12345;
  const tokens = () => Int32Array.from({ length: B * S }, () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % config.vocab);
  const step = async () => {
    const ids = tokens(), tgt = tokens();
    tidy(() => {
      const { loss } = model.loss(T.tensor(backend, ids, [B, S]), T.tensor(backend, tgt));
      backward(loss);
    });
    await opt.update(1e-4);
    model.params.zeroGrad();
  };
  const counts = countParams(config);
  if (!a.json) console.log(`bench train: ${config.layers} layers, d_model ${config.dModel}, ${counts.total.toLocaleString()} parameters, batch ${B} x seq ${S}, ${a.dtype}, backend ${backend.name}`);
  for (let i = 0; i < a.warmup!; i++) await step();
  backend.resetPeak();
  const times: number[] = [], cpuTimes: number[] = [];
  for (let i = 0; i < a.steps!; i++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    await step();
    const c = process.cpuUsage(c0);
    times.push((performance.now() - t0) / 1000);
    cpuTimes.push((c.user + c.system) / 1e6);
  }
  times.sort((x, y) => x - y);
  cpuTimes.sort((x, y) => x - y);
  const median = times[Math.floor(times.length / 2)]!;
  // CPU seconds this process used per step (all threads): on a machine shared with other jobs it
  // changes far less than wall time, so it is the fairer number for comparing two builds there
  const cpuMedian = cpuTimes[Math.floor(cpuTimes.length / 2)]!;
  const tokensPerSec = (B * S) / median;
  const threads = backend instanceof CpuBackend ? backend.native.threads() : 1;
  const peakInfo = peakOf(backend, a.dtype, threads);
  const peak = peakInfo.flops;
  const peakGflops = peak / 1e9;
  // one more step, every kernel call timed (after the timed steps, so timers do not skew them)
  const profile = backend.asynchronous ? null : await profileStep(backend, step);
  const flopsPerToken = trainFlopsPerToken(config, S);
  const mfu = mfuOf(tokensPerSec, config, S, peak);
  const peakMemoryMiB = backend.memory().peakBytes / 2 ** 20;
  const result = {
    tokensPerSec: Math.round(tokensPerSec * 10) / 10,
    stepTimeS: Math.round(median * 1e4) / 1e4,
    stepCpuS: Math.round(cpuMedian * 1e4) / 1e4,
    loadAverage: Math.round(loadavg()[0]! * 10) / 10,
    mfu: Math.round(mfu * 1e4) / 1e4,
    peakMemoryMiB: Math.round(peakMemoryMiB * 10) / 10,
    peakGflops: Math.round(peakGflops * 10) / 10,
    peakUnit: peakInfo.unit,
    profileMs: profile ? Object.fromEntries(Object.entries(profile.ms).map(([k, v]) => [k, Math.round(v * 10) / 10])) : null,
    modelGflopsPerToken: Math.round(flopsPerToken / 1e6) / 1e3,
    params: counts.total,
    dtype: a.dtype,
    threads,
  };
  if (!a.json)
    console.log(
      `${result.tokensPerSec} tokens/s, step ${(median * 1000).toFixed(0)} ms (median of ${times.length}), MFU ${(mfu * 100).toFixed(1)}% of ${peakGflops.toFixed(0)} GFLOP/s (${peakInfo.unit || 'unknown unit'}: ${peakInfo.source}), peak memory ${peakMemoryMiB.toFixed(0)} MiB`,
    );
  if (!a.json && a.dtype === 'bf16' && peakInfo.unit === 'f32-fma')
    console.log('note: this CPU has no bf16 unit zili can use (AVX512-BF16 or AMX through oneDNN): bf16 GEMMs run widened to f32, so bf16 only saves memory here');
  if (!a.json) console.log(`CPU time ${cpuMedian.toFixed(2)} s per step (of the ${(median * threads).toFixed(2)} s ${threads} threads could have run in that wall time); load average ${loadavg()[0]!.toFixed(1)}`);
  if (!a.json && profile) console.log(`step profile (${profile.totalMs.toFixed(0)} ms): ${formatProfile(profile)}`);
  console.log(JSON.stringify(result));
  opt.dispose();
  model.dispose();
  return 0;
}
