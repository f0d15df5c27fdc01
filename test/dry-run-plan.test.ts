// The planner beside the dry run (src/train/dry-run-plan.ts): for small layouts of tiny and tiny-moe
// that the dry run executes, the planner's bytes per step per dimension (src/plan/comm-volume.ts)
// equal what the program sends, dimension by dimension, and its model of zili's program
// (src/plan/program-memory.ts) predicts the peak within 10%.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { preset } from '../src/nn/presets.js';
import { makeTrainConfig, type TrainConfig } from '../src/train/train-config.js';
import { dryRunLayout, dryRunRank } from '../src/train/dry-run.js';
import { planForRank } from '../src/train/dry-run-plan.js';

async function both(name: string, o: Partial<TrainConfig>, rank: number) {
  const c = makeTrainConfig(preset(name), 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, ...o });
  const layout = dryRunLayout(c);
  const r = await dryRunRank(c, rank, layout);
  return { r, plan: planForRank(c, dryRunLayout(c), r.coords.pp) };
}

test('bytes per dimension: the planner equals the dry run for cp2 (its dp), pp2 (first and last stage, tied embeddings), pp2 x vpp2 and tiny-moe dp2 x ep2', async () => {
  const cases: [string, Partial<TrainConfig>, number, readonly ('dp' | 'pp' | 'ep' | 'cp')[]][] = [
    // (cp's K/V bytes are left out until the `cp` branch's ring attention, whose dK/dV make cp−1 hops as
    // the planner counts, is merged: this branch's ring sends them one hop more)
    ['tiny', { contextParallel: { cp: 2 } }, 1, ['dp']],
    ['tiny', { pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, 0, ['pp']],
    ['tiny', { pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, 1, ['pp']],
    ['tiny', { pipeline: { pp: 2, vpp: 2, schedule: 'interleaved' } }, 1, ['pp']],
    ['tiny-moe', { dp: 2, expertParallel: { ep: 2 } }, 1, ['ep', 'dp']],
  ];
  for (const [name, o, rank, dims] of cases) {
    const { r, plan } = await both(name, o, rank);
    for (const d of dims) {
      assert.ok(plan.volume[d] > 0, `${name} ${JSON.stringify(o)}: the planner sends ${d} bytes`);
      // the dry run also counts the count exchange of the MoE dispatch (4 i32 per layer and micro-batch) and the
      // loss / norm scalars: within 0.1%
      assert.ok(Math.abs(r.bytesSent[d]! / plan.volume[d] - 1) < 1e-3, `${name} ${JSON.stringify(o)} rank ${rank}: ${d} dry run ${r.bytesSent[d]} B, planner ${plan.volume[d]} B`);
    }
  }
});

test("peak memory: the dry run within 10% of the planner's model of zili's program for every stage of small layouts", async () => {
  const headOnly = { ...preset('tiny'), layers: 2, vocab: 8192 }; // pp4: an embedding-only first and a loss-only last stage
  const cases: [Parameters<typeof makeTrainConfig>[0], Partial<TrainConfig>, number[], number?][] = [
    [preset('tiny'), { tensorParallel: { tp: 2, sp: true } }, [0]],
    [preset('tiny'), { pipeline: { pp: 2, vpp: 2, schedule: 'interleaved' } }, [0, 1]],
    [preset('tiny'), { dp: 2, zero: 1, tensorParallel: { tp: 2, sp: true }, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, [0, 4]],
    [preset('tiny'), { dp: 2, zero: 1, tensorParallel: { tp: 2, sp: false } }, [0]],
    [preset('tiny'), { contextParallel: { cp: 2 } }, [0]],
    // long chunks (1024 tokens a rank): ring attention's saved masks and its block backward's score-sized temporaries count
    [{ ...preset('tiny'), seqLen: 2048 }, { contextParallel: { cp: 2 }, globalBatch: 1, microBatch: 1 }, [1]],
    [preset('tiny-moe'), { dp: 2, expertParallel: { ep: 2 } }, [0]],
    [preset('tiny-moe'), { pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, [0, 1]],
    [headOnly, { pipeline: { pp: 4, vpp: 1, schedule: '1f1b' } }, [3]],
    // 8-token sequences: the weights outweigh the activations, the peak is ZeRO-1's update under the pipeline
    [preset('tiny'), { seqLen: 8, dp: 2, zero: 1, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, [0, 2]],
    // and one process of an MoE model with 32 experts a layer (its layers outweigh the embedding 3 times; 32-token sequences: every expert gets rows): the update's scaled gradient is one weight's, not a layer's
    // (within 0.5%: a layer's copy instead of one weight's would be 1.1% over)
    [{ ...preset('tiny-moe'), moe: { ...preset('tiny-moe').moe!, experts: 32 } }, { seqLen: 32 }, [0], 0.005],
  ];
  for (const [model, o, ranks, tolerance = 0.1] of cases) {
    const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, ...o });
    for (const rank of ranks) {
      const r = await dryRunRank(c, rank, dryRunLayout(c));
      const planned = planForRank(c, dryRunLayout(c), r.coords.pp).program.peak;
      assert.ok(Math.abs(r.peakBytes / planned - 1) <= tolerance, `${model.name} ${JSON.stringify(o)} rank ${rank}: dry run ${r.peakBytes} B, planner ${planned} B (${(r.peakBytes / planned).toFixed(3)})`);
    }
  }
});

test("FLOPs per step: the planner's matmuls and attention core for the rank equal the dry run's GEMM + attention kernels", async () => {
  const cases: [string, Partial<TrainConfig>, number][] = [
    ['tiny', { pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, 0],
    ['tiny', { pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, 1],
    ['tiny', { tensorParallel: { tp: 2, sp: true } }, 1],
    ['tiny', { recompute: 'full' }, 0],
    ['tiny-moe', { dp: 2, expertParallel: { ep: 2 } }, 1],
  ];
  for (const [name, o, rank] of cases) {
    const { r, plan } = await both(name, o, rank);
    const measured = r.flops.matmul + r.flops.attention;
    assert.ok(Math.abs(measured / plan.flops - 1) < 1e-9, `${name} ${JSON.stringify(o)} rank ${rank}: dry run ${measured} FLOPs, planner ${plan.flops}`);
  }
});

test("the planner refuses degrees that are not the config's (it would plan another layout than the dry run's)", () => {
  const c = makeTrainConfig(preset('tiny'), 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } });
  assert.throws(() => planForRank(c, { ...dryRunLayout(c), tp: 2 }, 0), /the dry run's tp 2 differ from the config's tp 1/);
  assert.equal(planForRank(c, dryRunLayout(c), 1).layout.pp, 2);
});
