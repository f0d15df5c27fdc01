// The dry run of one rank (`zili train --backend meta --dry-run-rank R ...`): the training program
// rank R of a large layout would run — the same model, the same parallel wrappers built by the same
// function as `zili train` (parallel-runtime.ts), one optimizer step on synthetic token ids — on the
// meta backend (shapes and bytes, no values) with a shape-only communicator (shape-communicator.ts)
// pretending to be rank R of the world. It reports what that rank would need per step: its peak of
// live device bytes, the FLOPs its kernels run, and the bytes it sends per mesh dimension.
//
// The model is created whole (as the trainer does) and cut by the wrappers (pipeline stages drop the
// other stages' chunks, tensor parallelism keeps its shards, ZeRO-3 its chunks); on meta this costs
// counters, not memory. The peak is reset once the wrappers hold only the rank's state, so it reports
// what a real rank holds at once: its state between steps plus the step's activations, gradients and
// buffers (a real rank would build its shards directly; the whole-model transient is the one thing
// the dry run leaves out, and says so).
import type { TokenLoader } from '../data/loader.js';
import { type FlopCounts, MetaBackend } from '../backend/meta/meta-backend.js';
import { Transformer } from '../nn/transformer.js';
import { ByteCounter, ShapeCommunicator } from '../dist/shape-communicator.js';
import { meshCoords, type MeshCoords, type ResolvedMesh, resolveMesh } from '../dist/mesh-layout.js';
import { ConfigError } from '../nn/config.js';
import { runLayout } from '../dist/memory-report.js';
import { assertLayoutRuns, openParallelRuntime, runParallelStep } from './parallel-runtime.js';
import { gradAccumSteps, type TrainConfig } from './train-config.js';

/** The dimensions the JSON line always names (others, e.g. mp, appear when non-zero). */
export const DRY_RUN_DIMENSIONS = ['tp', 'dp', 'pp', 'ep', 'cp'] as const;

export interface DryRunLayout {
  tp: number;
  pp: number;
  dp: number;
  ep: number;
  cp: number;
}

export interface DryRunResult {
  rank: number;
  mesh: ResolvedMesh;
  coords: MeshCoords;
  /** bytes the rank holds once its wrappers are built (weights, optimizer state: its state between steps) */
  heldBytes: number;
  /** peak live bytes during one optimizer step (held state included) */
  peakBytes: number;
  /** bytes still live after the step (equal to heldBytes unless the step leaks) */
  afterStepBytes: number;
  /** FLOPs of the step's kernels on this rank, by kind */
  flops: FlopCounts;
  flopsPerStep: number;
  /** bytes this rank sends in one step, per dimension (tp, dp, pp, ep, cp always; others when non-zero) */
  bytesSent: Record<string, number>;
  /** per dimension and collective: calls and bytes */
  collectives: { dimension: string; op: string; calls: number; bytes: number }[];
  microBatches: number;
}

/** The mesh degrees of a training config: those of its planner layout (src/dist/memory-report.ts runLayout). */
export function dryRunLayout(c: TrainConfig): DryRunLayout {
  const { tp, pp, dp, ep, cp } = runLayout(c);
  return { tp, pp, dp, ep, cp };
}

/** Deterministic synthetic token ids (a linear congruential generator over the vocabulary): no corpus needed. */
function syntheticLoader(batch: number, seqLen: number, vocab: number, seed: number): Pick<TokenLoader, 'batch' | 'seqLen' | 'next'> {
  let s = seed >>> 0;
  const ids = () => Int32Array.from({ length: batch * seqLen }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % vocab);
  return { batch, seqLen, next: () => ({ input: ids(), target: ids() }) };
}

/** Runs one optimizer step of rank `rank` of the layout on the meta backend; `c.backend` must be 'meta'. */
export async function dryRunRank(c: TrainConfig, rank: number, layout: DryRunLayout): Promise<DryRunResult> {
  if (c.backend !== 'meta') throw new ConfigError(`--dry-run-rank runs the program on --backend meta (shapes and bytes, no values); add --backend meta (got --backend ${c.backend})`);
  const worldSize = layout.tp * layout.cp * layout.dp * layout.pp;
  assertLayoutRuns(c, worldSize);
  // experts whole (etp 1), as the pipeline executor lays out MoE under tp (expert-layers.ts)
  const mesh = resolveMesh({ tp: layout.tp, cp: layout.cp, dp: layout.dp, pp: layout.pp, ep: layout.ep, ...(c.model.moe ? { etp: 1 } : {}) }, worldSize);
  if (!Number.isInteger(rank) || rank < 0 || rank >= mesh.world)
    throw new ConfigError(`--dry-run-rank ${rank} is outside the layout's ranks 0..${mesh.world - 1} (tp·cp·dp·pp = ${mesh.world})`);
  const counter = new ByteCounter();
  const world = ShapeCommunicator.world(mesh, rank, counter);
  const be = new MetaBackend();
  const model = new Transformer(c.model, be, { seed: c.seed, dtype: c.dtype, recompute: c.recompute });
  const adamw = { beta1: c.beta1, beta2: c.beta2, eps: 1e-8, weightDecay: c.weightDecay, clipNorm: c.clipNorm };
  const rt = await openParallelRuntime(model, world.size > 1 ? world : null, c, adamw);
  try {
    // from here on the rank holds only its own state: the peak is what it would hold at once
    const heldBytes = be.memory().allocatedBytes;
    be.resetPeak();
    be.resetFlops();
    counter.reset();
    const accum = gradAccumSteps(c);
    const loader = syntheticLoader(c.microBatch, c.seqLen, c.model.vocab, c.seed) as TokenLoader;
    await runParallelStep(rt, model, loader, accum, c.lr, {}, () => false);
    const flops = { ...be.flops };
    const bytesSent: Record<string, number> = Object.fromEntries(DRY_RUN_DIMENSIONS.map((d) => [d, counter.sent(d)]));
    for (const e of counter.entries()) if (!(e.dimension in bytesSent)) bytesSent[e.dimension] = counter.sent(e.dimension);
    return {
      rank, mesh, coords: meshCoords(mesh, rank), heldBytes, peakBytes: be.memory().peakBytes, afterStepBytes: be.memory().allocatedBytes, flops,
      flopsPerStep: flops.matmul + flops.attention + flops.other, bytesSent, collectives: counter.entries(), microBatches: accum,
    };
  } finally {
    rt.dp?.dispose();
    rt.pp?.dispose();
    if (!rt.pp) rt.opt?.dispose();
    model.dispose();
  }
}
