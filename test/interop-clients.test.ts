// The exported files read by the real tools. Hugging Face transformers (Python, from
// scripts/setup-venv) loads the hf folders of a dense and an MoE model: logits within 1e-4 of
// zili's on the same tokens, identical tokenization of English, Chinese and emoji text, the same
// chat-template text. The gguf reader sees the llama architecture, f32/f16/bf16 tensor types and
// f16/bf16 values bit-equal to torch's rounding. llama.cpp (node-llama-cpp, CPU) loads the GGUF,
// tokenizes like zili and continues a prompt greedily with the same 20 tokens as zili.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getBackend } from '../src/backend/registry.js';
import { generate } from '../src/infer/generate.js';
import { readExportSource } from '../src/interop/export-source.js';
import { exportGguf } from '../src/interop/gguf-export.js';
import { exportHf } from '../src/interop/hf-export.js';
import type { ModelConfig } from '../src/nn/config.js';
import { renderChat } from '../src/serve/chat-template.js';
import { type LoadedModel, loadForInference } from '../src/serve/load-model.js';
import { noGrad } from '../src/tensor/autograd.js';
import * as T from '../src/tensor/ops.js';
import { tidy } from '../src/tensor/scope.js';
import { repoRoot } from '../src/util/paths.js';
import { DENSE, MOE, makeRun, tmpDir } from './serve-helpers.js';

const TEXTS = ['The old man and the sea, said the captain.', '你好，世界！今天天气很好。', 'Emoji 🙂🚀👍🏽 and 漢字 mixed: ok?'];
const MESSAGES = [{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Hi! 你好 🙂' }];
const IDS = [17, 250, 3, 999, 42, 1500, 7, 88];

function venvPython(): string | { skip: string } {
  const r = spawnSync(path.join(repoRoot(), 'scripts', 'setup-venv'), { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return { skip: `the Python peers (scripts/setup-venv) are not available: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}` };
  return r.stdout.trim().split('\n').pop()!;
}

function zeroLogits(m: LoadedModel, ids: number[]): Float32Array {
  return noGrad(() => tidy(() => m.model.forward(T.tensor(m.model.backend, Int32Array.from(ids), [1, ids.length], 'i32')).logits.dataSync() as Float32Array));
}

interface PyModel { class: string; logits: number[]; tokens: number[][]; decoded: string[]; chat: string }
interface PyGguf { dtype: string; types: Record<string, string>; arch: string; n_tokens: number; embedding_bits_equal: boolean }

const work = tmpDir('interop');
const runs: Record<string, string> = {};
const ggufFile = (dtype: string) => path.join(work, `dense-${dtype}.gguf`);
let py: { models: PyModel[]; gguf: PyGguf[] } | null = null;
let pySkip: string | false = false;

before(async () => {
  for (const cfg of [DENSE, MOE] as ModelConfig[]) {
    runs[cfg.name] = await makeRun(cfg);
    exportHf(readExportSource(runs[cfg.name]!), path.join(work, cfg.name));
  }
  for (const dtype of ['f32', 'f16', 'bf16'] as const) exportGguf(readExportSource(runs[DENSE.name]!), ggufFile(dtype), dtype);
  const python = venvPython();
  if (typeof python !== 'string') {
    pySkip = python.skip;
    console.log(`# skipped the transformers checks: ${pySkip}`);
    return;
  }
  const spec = path.join(work, 'spec.json');
  fs.writeFileSync(spec, JSON.stringify({
    models: [DENSE, MOE].map((c) => ({ dir: path.join(work, c.name), ids: IDS })),
    texts: TEXTS,
    messages: MESSAGES,
    gguf: ['f32', 'f16', 'bf16'].map((dtype) => ({ file: ggufFile(dtype), dtype, hf: path.join(work, DENSE.name) })),
  }));
  const r = spawnSync(python, [path.join(repoRoot(), 'test', 'hf_clients.py'), spec], { encoding: 'utf8', timeout: 900_000, maxBuffer: 1 << 28, env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' } });
  assert.equal(r.status, 0, `hf_clients.py failed: ${r.stderr}`);
  py = JSON.parse(r.stdout.trim().split('\n').pop()!);
});

for (const [i, cfg] of ([DENSE, MOE] as ModelConfig[]).entries()) {
  test(`transformers loads the ${cfg.moe ? 'MoE' : 'dense'} export: logits within 1e-4 of zili's, same tokens and chat text`, { skip: pySkip }, async (t) => {
    if (!py) return t.skip(pySkip || 'no Python results');
    const got = py.models[i]!;
    assert.equal(got.class, cfg.moe ? 'Ernie4_5_MoeForCausalLM' : 'LlamaForCausalLM');
    const m = loadForInference(runs[cfg.name]!, await getBackend('cpu'));
    const want = zeroLogits(m, IDS);
    assert.equal(got.logits.length, want.length);
    let worst = 0, scale = 0;
    want.forEach((v, k) => {
      worst = Math.max(worst, Math.abs(v - got.logits[k]!));
      scale = Math.max(scale, Math.abs(v));
    });
    assert.ok(scale > 1, `logits are not trivially small (max |logit| ${scale})`);
    assert.ok(worst < 1e-4, `max |zili - transformers| = ${worst}`);
    TEXTS.forEach((text, k) => {
      assert.deepEqual(got.tokens[k], m.tokenizer.encode(text), `tokens of ${JSON.stringify(text)}`);
      assert.equal(got.decoded[k], text);
    });
    assert.equal(got.chat, renderChat(m.template, MESSAGES));
    m.model.dispose();
  });
}

test('the gguf reader: llama architecture, f32/f16/bf16 tensors (norms f32), f16/bf16 values equal to torch rounding', { skip: pySkip }, (t) => {
  if (!py) return t.skip(pySkip || 'no Python results');
  for (const g of py.gguf) {
    assert.equal(g.arch, 'llama');
    assert.equal(g.n_tokens, DENSE.vocab);
    const want = g.dtype.toUpperCase();
    assert.equal(g.types['token_embd.weight'], want);
    assert.equal(g.types['blk.0.attn_q.weight'], want);
    assert.equal(g.types['blk.0.attn_norm.weight'], 'F32');
    assert.equal(g.types['output.weight'], want);
    if (g.dtype !== 'f32') assert.ok(g.embedding_bits_equal, `${g.dtype} embedding bits equal torch's rounding`);
  }
});

test('llama.cpp (node-llama-cpp, CPU) tokenizes like zili and continues greedily with the same 20 tokens', async (t) => {
  let llamaCpp: typeof import('node-llama-cpp');
  try {
    llamaCpp = await import('node-llama-cpp');
  } catch (e) {
    return t.skip(`node-llama-cpp cannot be loaded: ${(e as Error).message}`);
  }
  const llama = await llamaCpp.getLlama({ gpu: false, build: 'never', logLevel: llamaCpp.LlamaLogLevel.error });
  try {
    const model = await llama.loadModel({ modelPath: ggufFile('f32') });
    const m = loadForInference(runs[DENSE.name]!, await getBackend('cpu'));
    for (const text of TEXTS) assert.deepEqual([...model.tokenize(text)], m.tokenizer.encode(text), `llama.cpp tokens of ${JSON.stringify(text)}`);
    const prompt = m.tokenizer.encode('The old man and the sea');
    const want = await generate(m.model, prompt, { temperature: 0, maxTokens: 20, stopId: null });
    const ctx = await model.createContext({ contextSize: DENSE.seqLen, threads: 1, batchSize: 32 });
    const got: number[] = [];
    for await (const tok of ctx.getSequence().evaluate(prompt as import("node-llama-cpp").Token[], { temperature: 0 })) {
      got.push(tok);
      if (got.length === 20) break;
    }
    assert.deepEqual(got, want);
    m.model.dispose();
  } finally {
    await llama.dispose();
  }
});
