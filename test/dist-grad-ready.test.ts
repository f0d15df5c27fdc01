// The grad-ready hook of autograd (what data-parallel bucketing overlaps communication with): every
// parameter is reported once, its gradient is already final when reported, reports come during
// backward (last layers first), also under activation recomputation, dense and MoE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import type { ModelConfig } from '../src/nn/config.js';
import * as T from '../src/tensor/ops.js';
import { backward } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';

const be = new ReferenceBackend();
const micro = (moe: boolean): ModelConfig => ({
  ...preset(moe ? 'tiny-moe' : 'tiny'), name: 'micro', layers: 3, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 40, seqLen: 8,
  ...(moe ? { moe: { ...preset('tiny-moe').moe!, experts: 4, topK: 2, expertFfnHidden: 8, denseLayers: 1 } } : {}),
});

for (const moe of [false, true])
  for (const recompute of ['none', 'full'] as const)
    test(`grad-ready hook: each parameter once, final when reported, during backward (${moe ? 'MoE' : 'dense'}, recompute ${recompute})`, () => {
      const m = new Transformer(micro(moe), be, { seed: 2, recompute });
      const c = m.config;
      const names = new Map([...m.params.tensors].map(([n, p]) => [p, n]));
      const order: string[] = [];
      const atReport = new Map<string, number[]>();
      // two micro-batches: the hook sees the accumulated gradient of the second
      for (let micro = 0; micro < 2; micro++)
        tidy(() => {
          const ids = Int32Array.from({ length: 2 * c.seqLen }, (_, i) => (i * 7 + micro) % c.vocab);
          const tg = Int32Array.from({ length: 2 * c.seqLen }, (_, i) => (i * 11 + 3 + micro) % c.vocab);
          const { loss } = m.loss(T.tensor(be, ids, [2, c.seqLen]), T.tensor(be, tg));
          const hook = micro === 1 ? (leaf: Tensor) => {
            const n = names.get(leaf);
            if (n === undefined) return;
            order.push(n);
            atReport.set(n, Array.from(leaf.grad!.dataSync()));
          } : undefined;
          backward(loss, undefined, { onGradReady: hook });
        });
      const reached = [...m.params.tensors].filter(([, p]) => p.grad).map(([n]) => n);
      assert.deepEqual([...order].sort(), [...reached].sort(), 'every parameter with a gradient is reported');
      assert.equal(new Set(order).size, order.length, 'reported once');
      for (const [n, g] of atReport) assert.deepEqual(Array.from(m.params.get(n).grad!.dataSync()), g, `${n} changed after it was reported`);
      // the last layer's weights are final before the first layer's: communication can start mid-backward
      const first = order.findIndex((n) => n.startsWith('layers.0.'));
      const last = order.findIndex((n) => n.startsWith(`layers.${c.layers - 1}.`));
      assert.ok(last >= 0 && first > last, `layer ${c.layers - 1} reported before layer 0 (order: ${order.slice(0, 4).join(', ')}...)`);
      assert.equal(order[order.length - 1], 'tok_embeddings.weight', 'the tied embedding is final only at the end');
      m.dispose();
    });
