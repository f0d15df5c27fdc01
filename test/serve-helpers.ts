// Fixtures for the serving and interop tests: small run folders (checkpoint, the built-in tokenizer,
// chat template) whose weights are seeded random values scaled up, so logits are far from uniform and
// greedy choices are not near-ties that rounding could flip.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getBackend } from '../src/backend/registry.js';
import { ensureBuiltinData } from '../src/data/builtin.js';
import type { ModelConfig } from '../src/nn/config.js';
import { Transformer } from '../src/nn/transformer.js';
import { ensureChatTemplate } from '../src/serve/chat-template.js';
import { saveCheckpoint } from '../src/train/checkpoint.js';
import type { NamedTensors } from '../src/train/safetensors.js';
import { modelTensors } from '../src/train/train-state.js';

const base = { ffnKind: 'swiglu' as const, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, seqLen: 96, vocab: 2048 };

export const DENSE: ModelConfig = { ...base, name: 'fixture-dense', layers: 2, dModel: 64, heads: 4, kvHeads: 2, ffnHidden: 96, moe: null };

export const MOE: ModelConfig = {
  ...base, name: 'fixture-moe', layers: 3, dModel: 64, heads: 4, kvHeads: 2, ffnHidden: 96, tiedEmbeddings: true,
  moe: { experts: 4, topK: 2, expertFfnHidden: 32, sharedExperts: 2, denseLayers: 1, balance: 'bias', auxLossCoef: 0, biasUpdateRate: 1e-3 },
};

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary folder, removed when the test process exits. */
export function tmpDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `zili-${tag}-`));
  made.push(d);
  return d;
}

/** A run folder holding one checkpoint of `cfg` with seeded weights (matrices scaled by `scale`). */
export async function makeRun(cfg: ModelConfig, opts: { seed?: number; scale?: number; dir?: string } = {}): Promise<string> {
  const dir = opts.dir ?? tmpDir(cfg.name);
  const data = await ensureBuiltinData({ vocab: cfg.vocab, log: () => {} });
  const model = new Transformer(cfg, await getBackend('cpu'), { seed: opts.seed ?? 3 });
  const tensors: NamedTensors = await modelTensors(model);
  const scale = opts.scale ?? 8;
  for (const t of Object.values(tensors)) if (t.shape.length === 2) (t.data as Float32Array).forEach((v, i, a) => (a[i] = v * scale));
  // routing biases exactly representable in f32 (the Hugging Face export stores them as f32)
  const extra: NamedTensors = {};
  for (const [layer, bias] of model.routerBias) extra[`router_bias.layers.${layer}`] = { dtype: 'f64', shape: [bias.length], data: Float64Array.from(bias, (_, e) => ((e * 7 + layer) % 5) / 64 - 0.03125) };
  model.dispose();
  fs.copyFileSync(data.tokenizerPath, path.join(dir, 'tokenizer.json'));
  ensureChatTemplate(dir);
  saveCheckpoint(dir, { modelConfig: cfg, step: 1, trainConfig: null, tensors, optimizer: Object.keys(extra).length ? { m: {}, v: {}, tensors: extra, state: null } : null, data: null, rng: null });
  return dir;
}
