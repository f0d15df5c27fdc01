// `hardware: "local"`: this machine as a planner chip, from its own measurements rather than a
// catalog entry — GEMM throughput at each shape the model asks for (through the native addon, the
// engine's own GEMM), memory bandwidth (a streaming axpy), and the flash-attention kernels' speed.
// Several ranks on this machine: each rank gets the measured share of these rates, and the links are
// the communicator's measured bandwidth and latency (src/plan/local-ranks.ts, docs/planner.md).
import { totalmem } from 'node:os';
import { loadNative, type NativeKernels } from '../backend/cpu/native.js';
import { cpuPeak } from '../backend/cpu/peak.js';
import type { ResolvedChip } from './hardware.js';
import { PlanError } from './hardware.js';
import type { LocalRanks } from './local-ranks.js';

/**
 * Median seconds of `reps` timings of fn, each repeating it until it takes >= minS. The median, not the
 * best: on a shared machine the best run sees a moment of idle cores that a training step does not.
 */
export function medianSeconds(fn: () => void, reps = 5, minS = 0.03): number {
  fn(); // warm-up (allocation, packing, thread start)
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    let n = 0;
    const t0 = performance.now();
    let dt = 0;
    do {
      fn();
      n++;
      dt = (performance.now() - t0) / 1000;
    } while (dt < minS);
    times.push(dt / n);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(reps / 2)]!;
}

export interface LocalMeasurements {
  /** FLOP/s of f32 GEMMs at (M, N, K), averaged over the forward and the two backward orientations */
  gemmFlops(M: number, N: number, K: number): number;
  /** bytes/s a streaming kernel reaches */
  memoryBandwidth: number;
  /** FLOP/s of causal flash attention (forward + backward) at (batch, seq, heads, headDim), per forward-equivalent of the computed half */
  attentionFlops(batch: number, seq: number, heads: number, headDim: number): number;
  /** measured f32 FMA peak, FLOP/s */
  peakFlops: number;
  threads: number;
}

/** Takes this machine's measurements lazily (each GEMM shape once) with the addon's kernels. */
export function measureLocal(native: NativeKernels = loadNative()): LocalMeasurements {
  const gemmCache = new Map<string, number>();
  const timeGemm = (m: number, n: number, k: number): number => {
    const a = new Float32Array(m * k).fill(0.5), b = new Float32Array(k * n).fill(0.25), c = new Float32Array(m * n);
    return medianSeconds(() => native.sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n));
  };
  const bw = (() => {
    const n = 1 << 23;
    const x = new Float32Array(n).fill(1), y = new Float32Array(n);
    const s = medianSeconds(() => native.axpy(0.5, x, y), 3, 0.05);
    return (3 * 4 * n) / s;
  })();
  const attnCache = new Map<string, number>();
  return {
    gemmFlops(M, N, K) {
      const [m, n, k] = [M, N, K].map((x) => Math.max(1, Math.round(x))) as [number, number, number];
      const key = `${m}x${n}x${k}`;
      let v = gemmCache.get(key);
      if (v === undefined) {
        // forward (M,N,K), input gradient (M,K,N), weight gradient (N,K,M): the three GEMMs of a training pass
        const t = timeGemm(m, n, k) + timeGemm(m, k, n) + timeGemm(n, k, m);
        v = (3 * 2 * m * n * k) / t;
        gemmCache.set(key, v);
      }
      return v;
    },
    memoryBandwidth: bw,
    attentionFlops(batch, seq, heads, headDim) {
      const key = `${batch}/${seq}/${heads}/${headDim}`;
      let v = attnCache.get(key);
      if (v === undefined) {
        const n = batch * seq * heads * headDim;
        const q = new Float32Array(n).fill(0.01), out = new Float32Array(n), lse = new Float32Array(batch * heads * seq);
        const dout = new Float32Array(n).fill(0.01), dq = new Float32Array(n), dk = new Float32Array(n), dv = new Float32Array(n);
        const scale = 1 / Math.sqrt(headDim);
        // forward + backward as training runs them; the planner charges 3.5 forward-equivalents (backward
        // 2, plus Q K^T recomputed), so the rate is expressed per forward-equivalent of the computed half
        const s = medianSeconds(() => {
          native.attentionFwd(q, q, q, batch, seq, heads, heads, headDim, scale, true, out, lse);
          native.attentionBwd(q, q, q, out, lse, dout, batch, seq, heads, heads, headDim, scale, true, dq, dk, dv);
        });
        v = (3.5 * 0.5 * 4 * batch * seq * seq * heads * headDim) / s;
        attnCache.set(key, v);
      }
      return v;
    },
    peakFlops: cpuPeak(native.threads()).units['f32-fma'] * 1e9,
    threads: native.threads(),
  };
}

/**
 * This machine as a ResolvedChip. One process: chipsPerNode 1, no links. `ranks` (measured by
 * `zili plan measure-ranks`): every rank is one chip of a node of `ranks.ranks`, computing at the
 * measured share of the single-process GEMM/attention rates and memory bandwidth (the ranks share the
 * cores), linked by the communicator's measured bandwidth and latency.
 */
export function localChip(precision: string, m: LocalMeasurements = measureLocal(), ranks?: LocalRanks): ResolvedChip {
  if (precision !== 'f32') throw new PlanError(`hardware "local" measures f32 GEMMs (zili's CPU training precision); set "precision": "f32"`);
  const memGiB = Math.round(osMemoryGiB());
  const gemmShare = ranks?.gemmShare ?? 1, bwShare = ranks?.bandwidthShare ?? 1;
  const perRank = ranks ? `, ${ranks.ranks} ranks sharing it: GEMM share ${ranks.gemmShare.toFixed(2)}, bandwidth share ${ranks.bandwidthShare.toFixed(2)}, links ${ranks.linkGBs.toFixed(2)} GB/s + ${ranks.latencyUs.toFixed(0)} us` : '';
  return {
    id: 'local', name: `this machine (${m.threads} threads${perRank})`, vendor: 'local',
    peakTflops: m.peakFlops / 1e12, memoryGiB: memGiB, usableMemoryGiB: memGiB * 0.8,
    memoryBandwidthTBs: (m.memoryBandwidth * bwShare) / 1e12, chipsPerNode: ranks?.ranks ?? 1,
    intraNodeGBs: ranks?.linkGBs ?? 0, interNodeGBs: ranks?.linkGBs ?? 0, tdpW: null,
    source: 'measured on this machine: GEMM throughput per shape (native addon), streaming bandwidth, flash-attention forward' +
      (ranks ? `; ranks: communicator all-reduce and core sharing (${ranks.measuredAt})` : ''),
    confidence: 'vendor',
    measuredGemm: (M, N, K) => m.gemmFlops(M, N, K) * gemmShare,
    measuredAttention: (batch, seq, heads, headDim) => m.attentionFlops(batch, seq, heads, headDim) * gemmShare,
    ...(ranks ? { linkLatencyUs: ranks.latencyUs } : {}),
  };
}

function osMemoryGiB(): number {
  return totalmem() / 2 ** 30;
}
