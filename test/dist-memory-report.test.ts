// The memory line's planner side models the training state zili keeps (f32 weights that are their own
// master copy, f32 gradients, two f32 AdamW moments), so what a rank holds between steps under
// ZeRO 0-3 equals the planner's weights + optimizer for the same layout, to the byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { defaultAdamW } from '../src/optim/adamw.js';
import { DataParallel, type ZeroStage } from '../src/dist/data-parallel.js';
import { describeRun, plannedMemory } from '../src/dist/memory-report.js';
import { makeTrainConfig } from '../src/train/train-config.js';
import { loopbackGroup } from './dist-loopback.js';

const be = new CpuBackend();

for (const zero of [0, 1, 2, 3] as ZeroStage[])
  test(`dp2 ZeRO-${zero}: the planner's weights and optimizer state per rank are what the rank holds`, () => {
    // tiny's parameters split evenly over 2 ranks (no padding in the chunks)
    const model = new Transformer(preset('tiny'), be, { seed: 1 });
    const numel = [...model.params.tensors.values()].reduce((a, t) => a + t.numel, 0);
    const [comm] = loopbackGroup(2);
    const dp = new DataParallel(model, comm!, { zero, bucketBytes: 1 << 20, adamw: defaultAdamW() });
    const held = dp.stateBytes();
    const cfg = makeTrainConfig(preset('tiny'), '/nonexistent', { dp: 2, zero, globalBatch: 8, microBatch: 2 });
    const p = plannedMemory(cfg);
    assert.equal(p.weights, held.weights);
    assert.equal(p.optimizer, held.optimizer);
    // gradients: f32, whole until ZeRO-2 reduce-scatters them
    assert.equal(p.grads, (4 * numel) / (zero >= 2 ? 2 : 1));
    dp.dispose();
    model.dispose();
  });

test('the memory line names every parallel dimension of the run', () => {
  const c = (o: Parameters<typeof makeTrainConfig>[2]) => makeTrainConfig(preset('tiny-moe'), '/nonexistent', o);
  assert.equal(describeRun(c({ contextParallel: { cp: 2 } })), 'cp2');
  assert.equal(describeRun(c({ dp: 2, expertParallel: { ep: 2 } })), 'dp2 ZeRO-0 x ep2');
  assert.equal(describeRun(c({ dp: 2, zero: 1, contextParallel: { cp: 2 }, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } })), 'pp2 1f1b x cp2 x dp2 ZeRO-1');
});
