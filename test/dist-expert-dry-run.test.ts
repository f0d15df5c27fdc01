// Expert parallelism under a pipeline in the dry run (the program of one rank on the meta backend
// with a shape-only communicator, src/train/dry-run.ts): tiny-moe under pp2 x dp2 x ep2 with ZeRO-1,
// the last stage's ep rank 1 holds its stage's dense parameters and experts 4-7 of its MoE layers,
// with AdamW moments sharded over their own replica groups (dense over dp 2, experts over edp 1), and
// sends per micro-batch and MoE layer the rows routed to the other ep rank's experts (meta routes
// every token round-robin) in four all-to-alls — all computed here from the model's shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaBackend } from '../src/backend/meta/meta-backend.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { expertOf } from '../src/nn/moe.js';
import { chunkParamNames } from '../src/dist/pipeline-parallel.js';
import { partitionChunks } from '../src/dist/pipeline-partition.js';
import { chunkOf } from '../src/dist/shard-layout.js';
import { makeTrainConfig } from '../src/train/train-config.js';
import { dryRunLayout, dryRunRank } from '../src/train/dry-run.js';

test('dry run of tiny-moe pp2 x dp2 x ep2 ZeRO-1, rank 3 (last stage, ep rank 1): its experts, moments per replica group and all-to-all bytes', async () => {
  const model = preset('tiny-moe');
  const m = model.moe!;
  const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, dp: 2, zero: 1, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' }, expertParallel: { ep: 2 } });
  const r = await dryRunRank(c, 3, dryRunLayout(c));
  const whole = new Transformer(model, new MetaBackend());
  const names = [...chunkParamNames(whole, partitionChunks(model.layers, 2).slice(1))];
  const mine = names.filter((n) => expertOf(n) === null || expertOf(n)! >= m.experts / 2);
  const held = mine.reduce((sum, n) => {
    const numel = whole.params.get(n).numel;
    return sum + 4 * numel + 2 * 4 * chunkOf(numel, expertOf(n) === null ? 2 : 1);
  }, 0);
  whole.dispose();
  assert.ok(mine.some((n) => expertOf(n) === 7) && !mine.some((n) => expertOf(n) === 3), 'experts 4-7 only');
  assert.equal(r.heldBytes, held, 'weights, and moments chunked over dp (dense) and edp (experts)');
  assert.equal(r.afterStepBytes, r.heldBytes, 'the step frees all it allocated');
  // per micro-batch (2 per replica) and MoE layer (layers 2 and 3): the other rank's experts get half
  // of the N·k routed rows, sent in the dispatch, the combine and their two backward exchanges, plus
  // 4 expert counts; then the experts' norm squares, one float over the ep pair
  const N = 2 * model.seqLen, rows = (N * m.topK) / 2;
  assert.equal(r.bytesSent['ep'], 2 * 2 * (4 * rows * model.dModel * 4 + (m.experts / 2) * 4) + 4);
});
