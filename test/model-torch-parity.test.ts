// Whole-model parity with PyTorch: the transformer runs one forward and backward on a fixed batch
// (cpu backend in f32, and the reference backend), the weights, batch, logits, losses and every
// gradient go to a temp folder, and test/torch_parity.py recomputes them in PyTorch (Debian's
// python3-torch) in float32 and float64. Logits and every gradient must agree to a max relative
// error of 1e-4 (max |zili - torch| / max |torch|); on dense SwiGLU configs the model of
// bench/torch_train.py (the PyTorch side of `bench train`) is checked the same way. Dense (SwiGLU, GeGLU, GELU, ReLU; MHA, GQA, MQA)
// and MoE (aux-loss and bias balancing, top-1 and top-2) configs, tied and untied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/backend/contract.js';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import type { ModelConfig, MoEConfig } from '../src/nn/config.js';
import { Transformer } from '../src/nn/transformer.js';
import * as T from '../src/tensor/ops.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';

const PY = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../test/torch_parity.py', import.meta.url));
const TOL = 1e-4;

const torchMissing = ((): string | false => {
  const r = spawnSync(PY, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
  return r.status === 0 ? false : `${PY} cannot import torch and numpy (install Debian's python3-torch): ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
})();

const base: ModelConfig = {
  name: 'parity', layers: 3, dModel: 32, heads: 4, kvHeads: 2, ffnHidden: 48, ffnKind: 'swiglu', vocab: 97, seqLen: 16,
  tiedEmbeddings: false, normEps: 1e-5, ropeTheta: 10000, moe: null,
};
const moeCfg = (p: Partial<MoEConfig> = {}): MoEConfig => ({
  experts: 6, topK: 2, expertFfnHidden: 24, sharedExperts: 1, denseLayers: 1, balance: 'aux-loss', auxLossCoef: 0.01, biasUpdateRate: 1e-3, ...p,
});

interface Case {
  label: string;
  config: ModelConfig;
  backend: () => Backend;
  /** DeepSeek routing biases to install before the step (bias balancing) */
  bias?: boolean;
}

let cpuBackend: CpuBackend | null = null, refBackend: ReferenceBackend | null = null;
const cpu = () => (cpuBackend ??= new CpuBackend());
const ref = () => (refBackend ??= new ReferenceBackend());
const CASES: Case[] = [
  { label: 'dense, untied, cpu', config: base, backend: cpu },
  { label: 'dense, tied, cpu', config: { ...base, tiedEmbeddings: true }, backend: cpu },
  { label: 'dense GELU, MHA, cpu', config: { ...base, ffnKind: 'gelu', kvHeads: 4, layers: 2 }, backend: cpu },
  { label: 'dense ReLU, cpu', config: { ...base, ffnKind: 'relu', layers: 2 }, backend: cpu },
  { label: 'dense GeGLU, MQA, cpu', config: { ...base, ffnKind: 'geglu', kvHeads: 1, layers: 2 }, backend: cpu },
  { label: 'MoE aux-loss, untied, cpu', config: { ...base, moe: moeCfg() }, backend: cpu },
  { label: 'MoE aux-loss, tied, top-1, cpu', config: { ...base, tiedEmbeddings: true, moe: moeCfg({ topK: 1, experts: 4, sharedExperts: 0 }) }, backend: cpu },
  { label: 'MoE bias balancing, cpu', config: { ...base, moe: moeCfg({ balance: 'bias', auxLossCoef: 0 }) }, backend: cpu, bias: true },
  { label: 'dense, untied, reference', config: base, backend: ref },
  { label: 'MoE aux-loss, tied, reference', config: { ...base, tiedEmbeddings: true, moe: moeCfg() }, backend: ref },
];

const BATCH = 2;

/** Runs one step and writes meta.json + data.bin into dir. */
function dump(c: Case, dir: string): void {
  const be = c.backend();
  const cfg = c.config;
  const m = new Transformer(cfg, be, { seed: 7, dtype: 'f32' });
  const bias: Record<string, number[]> = {};
  if (c.bias)
    for (const [layer, b] of m.routerBias) {
      // distinct per-expert offsets comparable to the spread of the router probabilities
      for (let e = 0; e < b.length; e++) b[e] = 0.004 * (((e * 5 + layer) % b.length) - b.length / 2);
      bias[String(layer)] = Array.from(b);
    }
  const S = cfg.seqLen, N = BATCH * S;
  const ids = Int32Array.from({ length: N }, (_, i) => (i * 37 + 11 + ((i * i) % 7)) % cfg.vocab);
  const targets = Int32Array.from({ length: N }, (_, i) => (i === 3 || i === N - 2 ? -1 : (i * 53 + 5) % cfg.vocab));

  const blobs: { name: string; dtype: 'f32' | 'i32'; shape: readonly number[]; data: Float32Array | Int32Array }[] = [];
  const add = (name: string, shape: readonly number[], data: ArrayLike<number>, dtype: 'f32' | 'i32' = 'f32') =>
    blobs.push({ name, dtype, shape, data: dtype === 'f32' ? Float32Array.from(data) : Int32Array.from(data) });

  tidy(() => {
    const r = m.loss(T.tensor(be, ids, [BATCH, S]), T.tensor(be, targets));
    backward(r.loss);
    add('loss', [], r.loss.dataSync());
    add('ce', [], r.ce.dataSync());
    if (r.aux) add('aux', [], r.aux.dataSync());
  });
  const loads: Record<string, number[]> = {};
  for (const [layer, l] of m.lastLoads) loads[String(layer)] = [...l];
  noGrad(() => tidy(() => add('logits', [N, cfg.vocab], m.forward(T.tensor(be, ids, [BATCH, S])).logits.dataSync())));
  add('ids', [BATCH, S], ids, 'i32');
  add('targets', [N], targets, 'i32');
  const params: string[] = [];
  for (const [name, p] of m.params.tensors) {
    params.push(name);
    add(`param:${name}`, p.shape, p.dataSync());
    add(`grad:${name}`, p.shape, p.grad ? p.grad.dataSync() : new Float32Array(p.numel));
  }
  m.dispose();

  let offset = 0;
  const index = blobs.map((b) => {
    const e = { name: b.name, dtype: b.dtype, shape: b.shape, offset };
    offset += b.data.byteLength;
    return e;
  });
  const bin = new Uint8Array(offset);
  for (let i = 0; i < blobs.length; i++) {
    const d = blobs[i]!.data;
    bin.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), index[i]!.offset);
  }
  writeFileSync(join(dir, 'data.bin'), bin);
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ config: cfg, params, tensors: index, loads, routerBias: c.bias ? bias : null }));
}

interface Report {
  f32: Record<string, number>;
  f64: Record<string, number>;
  torch32vs64: Record<string, number>;
  /** bench/torch_train.py's model on the same weights (dense SwiGLU untied configs) */
  benchModel?: Record<string, number>;
  loadsMatch: boolean;
  missing?: string[];
  loss: { zili: number; torch32: number; torch64: number };
}

for (const c of CASES) {
  test(`logits and every gradient match PyTorch (${c.label})`, { skip: torchMissing }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'zili-parity-'));
    try {
      dump(c, dir);
      const r = spawnSync(PY, [SCRIPT, dir], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' } });
      assert.equal(r.status, 0, `torch_parity.py failed:\n${r.stderr}`);
      const rep = JSON.parse(r.stdout.trim().split('\n').pop()!) as Report;
      assert.equal(rep.missing, undefined, `tensors missing from the dump: ${rep.missing?.join(', ')}`);
      assert.ok(rep.loadsMatch, 'PyTorch routed tokens to experts differently (expert loads differ)');
      if (process.env.ZILI_PARITY_VERBOSE) {
        const worst = (m: Record<string, number>) => Object.entries(m).reduce((a, b) => (b[1] > a[1] ? b : a));
        const fmt = ([n, e]: [string, number]) => `${e.toExponential(2)} (${n})`;
        console.log(`${c.label}: loss zili ${rep.loss.zili} torch32 ${rep.loss.torch32}; worst vs torch f32 ${fmt(worst(rep.f32))}, vs f64 ${fmt(worst(rep.f64))}, torch f32 vs f64 ${fmt(worst(rep.torch32vs64))}`);
      }
      const expected = 3 + (c.config.moe && c.config.moe.balance === 'aux-loss' ? 1 : 0);
      assert.ok(Object.keys(rep.f32).length >= expected + 2, 'too few tensors compared');
      for (const [name, e] of Object.entries(rep.f32)) assert.ok(e <= TOL, `${name}: max relative error vs torch float32 ${e.toExponential(2)} > ${TOL}`);
      for (const [name, e] of Object.entries(rep.f64)) assert.ok(e <= TOL, `${name}: max relative error vs torch float64 ${e.toExponential(2)} > ${TOL}`);
      const benchComparable = !c.config.moe && c.config.ffnKind === 'swiglu' && !c.config.tiedEmbeddings;
      assert.equal(rep.benchModel !== undefined, benchComparable, 'bench/torch_train.py model checked exactly on dense SwiGLU untied configs');
      for (const [name, e] of Object.entries(rep.benchModel ?? {})) assert.ok(e <= TOL, `bench/torch_train.py model, ${name}: max relative error ${e.toExponential(2)} > ${TOL}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
