// Export -> import round trips: the weights come back bit-identical (dense and MoE, with routing
// biases), with the same model config, tokenizer and chat template; the imported run generates what
// the original does and `zili train --init` starts from its weights. Half-precision folders widen
// exactly; what cannot be represented is refused with a message naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getBackend } from '../src/backend/registry.js';
import { generate } from '../src/infer/generate.js';
import { readExportSource } from '../src/interop/export-source.js';
import { exportGguf } from '../src/interop/gguf-export.js';
import { exportHf } from '../src/interop/hf-export.js';
import { importHf } from '../src/interop/hf-import.js';
import { fromHalf, f32ToF16, toHalf } from '../src/interop/half.js';
import type { ModelConfig } from '../src/nn/config.js';
import { loadForInference } from '../src/serve/load-model.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { readSafetensors, writeSafetensors, type NamedTensors } from '../src/train/safetensors.js';
import { repoRoot } from '../src/util/paths.js';
import { DENSE, MOE, makeRun, tmpDir } from './serve-helpers.js';

const zili = path.join(repoRoot(), 'bin', 'zili');

function sameBits(a: NamedTensors, b: NamedTensors): void {
  assert.deepEqual(Object.keys(b).sort(), Object.keys(a).sort());
  for (const k of Object.keys(a)) {
    const x = a[k]!.data, y = b[k]!.data;
    assert.deepEqual(b[k]!.shape, a[k]!.shape, k);
    const bx = new Uint8Array(x.buffer, x.byteOffset, x.byteLength), by = new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
    assert.ok(bx.length === by.length && bx.every((v, i) => v === by[i]), `${k} differs`);
  }
}

for (const cfg of [DENSE, MOE] as ModelConfig[]) {
  test(`${cfg.moe ? 'MoE' : 'dense'}: export hf -> import gives bit-identical weights, config, tokenizer, chat template; it generates the same`, async () => {
    const run = await makeRun(cfg);
    const dir = tmpDir('rt');
    exportHf(readExportSource(run), path.join(dir, 'hf'));
    const r = importHf(path.join(dir, 'hf'), path.join(dir, 'run'));
    assert.deepEqual(r.notes, []);
    const a = loadCheckpoint(run), b = loadCheckpoint(path.join(dir, 'run'));
    sameBits(a.tensors, b.tensors);
    assert.deepEqual(b.modelConfig, a.modelConfig);
    if (cfg.moe) sameBits(a.optimizer!.tensors!, b.optimizer!.tensors!);
    for (const f of ['tokenizer.json', 'chat_template.json']) assert.equal(fs.readFileSync(path.join(dir, 'run', f), 'utf8'), fs.readFileSync(path.join(run, f), 'utf8'), f);
    const be = await getBackend('cpu');
    const [m1, m2] = [loadForInference(run, be), loadForInference(path.join(dir, 'run'), be)];
    const prompt = m1.tokenizer.encode('The sea');
    assert.deepEqual(await generate(m2.model, prompt, { temperature: 0, maxTokens: 8 }), await generate(m1.model, prompt, { temperature: 0, maxTokens: 8 }));
    m1.model.dispose();
    m2.model.dispose();
  });
}

test('zili export / import / train --init on the command line: the new run starts from the imported weights', async () => {
  const run = await makeRun(DENSE);
  const dir = tmpDir('cli');
  execFileSync(zili, ['export', '--checkpoint', run, '--format', 'hf', '--out', path.join(dir, 'hf')], { stdio: 'pipe' });
  execFileSync(zili, ['import', '--from', 'hf', path.join(dir, 'hf'), '--out', path.join(dir, 'imported')], { stdio: 'pipe' });
  // a learning rate too small to move any f32 weight: the saved weights are the initial ones
  execFileSync(zili, ['train', '--init', path.join(dir, 'imported'), '--out', path.join(dir, 'ft'), '--steps', '1', '--global-batch', '2', '--seq', '32', '--eval-every', '0', '--lr', '1e-30', '--min-lr', '1e-30'], { stdio: 'pipe' });
  sameBits(loadCheckpoint(run).tensors, loadCheckpoint(path.join(dir, 'ft')).tensors);
  assert.ok(fs.existsSync(path.join(dir, 'ft', 'chat_template.json')));
  const again = spawnSync(zili, ['export', '--checkpoint', run, '--format', 'hf', '--out', path.join(dir, 'hf')], { encoding: 'utf8' });
  assert.equal(again.status, 1);
  assert.match(again.stderr, /already exists .* choose a fresh --out/);
});

test('import widens bf16 and f16 folders exactly; refuses other architectures and biases with a reason', async () => {
  const run = await makeRun(DENSE);
  const dir = tmpDir('half');
  const hf = path.join(dir, 'hf');
  exportHf(readExportSource(run), hf);
  const f32 = readSafetensors(path.join(hf, 'model.safetensors')).tensors;
  const half: NamedTensors = {};
  for (const [k, t] of Object.entries(f32)) half[k] = { dtype: 'bf16', shape: t.shape, data: toHalf(t.data as Float32Array, 'bf16') };
  writeSafetensors(path.join(hf, 'model.safetensors'), half);
  importHf(hf, path.join(dir, 'run'));
  const back = loadCheckpoint(path.join(dir, 'run')).tensors;
  for (const [k, t] of Object.entries(half)) assert.deepEqual(back[k === 'model.embed_tokens.weight' ? 'tok_embeddings.weight' : k]?.data ?? fromHalf(t.data as Uint16Array, 'bf16'), fromHalf(t.data as Uint16Array, 'bf16'));
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(1e6), 0x7c00);
  assert.equal(f32ToF16(2 ** -24), 1);
  assert.equal(fromHalf(toHalf(Float32Array.of(0.1), 'f16'), 'f16')[0], 0.0999755859375);

  const cfgFile = path.join(hf, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, architectures: ['GPT2LMHeadModel'] }));
  assert.throws(() => importHf(hf, path.join(dir, 'x')), /GPT2LMHeadModel.*LlamaForCausalLM/);
  fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, attention_bias: true }));
  assert.throws(() => importHf(hf, path.join(dir, 'y')), /attention_bias.*no biases/);
  assert.throws(() => importHf(hf, path.join(dir, 'run')), /already holds a run/);
});

test('export refuses what the target cannot represent exactly', async () => {
  const moe = await makeRun(MOE);
  assert.throws(() => exportGguf(readExportSource(moe), path.join(tmpDir('g'), 'x.gguf'), 'f32'), /Mixture-of-Experts.*--format hf/);
  const top1 = await makeRun({ ...MOE, name: 'top1', moe: { ...MOE.moe!, topK: 1 } });
  assert.throws(() => exportHf(readExportSource(top1), path.join(tmpDir('t'), 'hf')), /top-1/);
  const gelu = await makeRun({ ...DENSE, name: 'gelu', ffnKind: 'gelu' });
  assert.throws(() => exportHf(readExportSource(gelu), path.join(tmpDir('t'), 'hf')), /gelu FFN/);
});
