// Planner vs engine: the planner's parameter counts equal the engine's real parameter list (traced
// on the meta backend, even at 1T), and its activation memory per layer is within 10% of what the
// meta backend measures on a real training step. The engine keeps activations in f32 (4 bytes); the
// planner counts bf16 (2 bytes), so engine bytes are compared at half.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetaBackend } from '../src/backend/meta/meta-backend.js';
import { type ModelConfig, validateModelConfig } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { countParams } from '../src/nn/param-count.js';
import { Transformer } from '../src/nn/transformer.js';
import { activationBytesPerLayer } from '../src/plan/memory.js';
import * as T from '../src/tensor/ops.js';
import { clearTape } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';

for (const name of ['dense-1t', 'moe-1t', '7b']) {
  test(`engine parameters of ${name} (traced on meta) equal the planner's count`, () => {
    const meta = new MetaBackend();
    const m = new Transformer(preset(name), meta, { seed: 0 });
    assert.equal(m.params.count(), countParams(m.config).total);
    assert.equal(meta.memory().allocatedBytes, 4 * countParams(m.config).total);
    m.dispose();
    assert.equal(meta.memory().liveBuffers, 0);
  });
}

/** Bytes a training step holds for backward, per layer: (held with L2 layers - held with L1 layers) / (L2 - L1). */
function engineBytesPerLayer(base: ModelConfig, B: number, recompute: 'none' | 'full', first: number, second: number): number {
  const held = (layers: number) => {
    const meta = new MetaBackend();
    const c = validateModelConfig({ ...base, layers });
    const m = new Transformer(c, meta, { seed: 0, recompute });
    const before = meta.memory().allocatedBytes;
    const bytes = tidy(() => {
      m.loss(T.tensor(meta, new Int32Array(B * c.seqLen), [B, c.seqLen]), T.tensor(meta, new Int32Array(B * c.seqLen)));
      return meta.memory().allocatedBytes - before;
    });
    clearTape();
    m.dispose();
    return bytes;
  };
  return (held(second) - held(first)) / (second - first);
}

const dense: ModelConfig = { ...preset('tiny'), name: 'xcheck', dModel: 256, heads: 8, kvHeads: 2, ffnHidden: 688, vocab: 512, seqLen: 128, tiedEmbeddings: false };
const moe: ModelConfig = { ...dense, name: 'xcheck-moe', moe: { ...preset('tiny-moe').moe!, experts: 8, topK: 2, expertFfnHidden: 256, sharedExperts: 1, denseLayers: 0 } };

for (const [cfg, recompute] of [[dense, 'none'], [dense, 'full'], [moe, 'none']] as const) {
  test(`activation memory per layer: planner within 10% of the meta backend (${cfg.name}, recompute ${recompute})`, () => {
    const B = 2;
    const engine = engineBytesPerLayer(cfg, B, recompute, 2, 4) / 2;
    const planner = activationBytesPerLayer({ ...cfg, layers: 4 }, { microBatch: B, attention: 'flash', recompute })[2]!.bytes;
    const err = Math.abs(planner - engine) / engine;
    if (process.env.ZILI_VERBOSE) console.log(`${cfg.name} recompute ${recompute}: planner ${planner} vs engine ${engine} bytes per layer (${(err * 100).toFixed(1)}% apart)`);
    assert.ok(err <= 0.1, `planner ${planner} vs engine ${engine} bytes per layer (${(err * 100).toFixed(1)}% apart)`);
  });
}
