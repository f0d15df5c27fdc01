// Sharded checkpoints from data-parallel ranks (loopback communicators, one process): every rank
// writes its pieces, rank 0 commits; loading assembles the exact weights and moments; a layout
// change (dp2 ZeRO-3 -> dp4 ZeRO-1 -> save again) keeps every bit; a damaged rank file is caught by
// its sha256; a rank that cannot write leaves no step folder and every rank throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { TokenLoader } from '../src/data/loader.js';
import type { ModelConfig } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { defaultAdamW } from '../src/optim/adamw.js';
import { DataParallel, type ZeroStage } from '../src/dist/data-parallel.js';
import { saveDistributedCheckpoint } from '../src/dist/dist-checkpoint.js';
import { latestCheckpoint, loadCheckpoint } from '../src/train/checkpoint.js';
import type { NamedTensors } from '../src/train/safetensors.js';
import { makeDataset } from './data-helpers.js';
import { loopbackGroup } from './dist-loopback.js';

const be = new CpuBackend();
const cfg: ModelConfig = {
  ...preset('tiny-moe'), name: 'micro', layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 64, seqLen: 8,
  moe: { ...preset('tiny-moe').moe!, experts: 4, topK: 2, expertFfnHidden: 8, denseLayers: 1, balance: 'bias', biasUpdateRate: 0.01 },
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-dist-ckpt-'));
const data = makeDataset(tmp, [4000], [], 64);
const adamw = defaultAdamW();

function ranks(world: number, zero: ZeroStage) {
  return loopbackGroup(world).map((comm) => {
    const model = new Transformer(cfg, be, { seed: 4 });
    return { comm, model, dp: new DataParallel(model, comm, { zero, bucketBytes: 1024, adamw }) };
  });
}

type Ranks = ReturnType<typeof ranks>;

async function train(rs: Ranks, steps: number): Promise<void> {
  const loaders = rs.map((r) => TokenLoader.open(data, { split: 'train', batch: 2, seqLen: cfg.seqLen, seed: 1, rank: r.comm.rank, worldSize: rs.length }));
  for (let s = 0; s < steps; s++) await Promise.all(rs.map((r, i) => r.dp.runStep(loaders[i]!, 1, 1e-2)));
  for (const l of loaders) l.close();
}

const save = (out: string, rs: Ranks, step: number) =>
  Promise.all(rs.map((r) => saveDistributedCheckpoint(out, r.dp, r.comm, { modelConfig: cfg, step, trainConfig: {}, data: { at: step }, rng: null }, 2)));

function dispose(rs: Ranks): void {
  for (const r of rs) {
    r.dp.dispose();
    r.model.dispose();
  }
}

function bits(t: NamedTensors): Map<string, string> {
  return new Map(Object.entries(t).map(([n, x]) => [n, Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).toString('base64')]));
}

test('sharded checkpoint: exact weights, moments and biases, any layout back, bit for bit', async () => {
  const out = path.join(tmp, 'a');
  const a = ranks(2, 3);
  await train(a, 3); // (near-uniform router: the +-rate bias steps of steps 1 and 2 cancel)
  const dirs = await save(out, a, 2);
  assert.deepEqual(dirs, [path.join(out, 'step-00000002'), path.join(out, 'step-00000002')]);
  assert.deepEqual(fs.readdirSync(dirs[0]!).sort(), ['manifest.json', 'rank-00000.safetensors', 'rank-00001.safetensors']);
  const weights = await Promise.all(a.map((r) => r.dp.withFullParams(async () => new Map([...r.model.params.tensors].map(([n, t]) => [n, Array.from(t.dataSync())])))));
  const bias = [...a[0]!.model.routerBias.values()].map((b) => Array.from(b));
  dispose(a);

  const ck = loadCheckpoint(out);
  assert.equal(ck.step, 2);
  assert.deepEqual(ck.data, { at: 2 });
  for (const [n, w] of weights[0]!) assert.deepEqual(Array.from(ck.tensors[n]!.data as Float32Array), w, n);
  assert.deepEqual(Object.keys(ck.tensors).sort(), [...weights[0]!.keys()].sort(), 'only weights among the model tensors');
  assert.equal((ck.optimizer!.state as { step: number }).step, 3);
  assert.ok(bias.some((b) => b.some((x) => x !== 0)));
  assert.deepEqual(Object.values(ck.optimizer!.tensors!).map((t) => Array.from(t.data as Float64Array)), bias);

  // restore under dp4 ZeRO-1, save again: the same bits
  const b = ranks(4, 1);
  for (const r of b) r.dp.restore(ck.tensors, ck.optimizer, ck.dir);
  await save(path.join(tmp, 'b'), b, 2);
  dispose(b);
  const ck2 = loadCheckpoint(path.join(tmp, 'b'));
  assert.deepEqual(bits(ck2.tensors), bits(ck.tensors));
  assert.deepEqual(bits(ck2.optimizer!.m), bits(ck.optimizer!.m));
  assert.deepEqual(bits(ck2.optimizer!.v), bits(ck.optimizer!.v));
  assert.deepEqual(bits(ck2.optimizer!.tensors!), bits(ck.optimizer!.tensors!));
  assert.equal(ck2.manifest.shards!.world, 4);

  // a damaged rank file fails its sha256: the checkpoint is skipped, never half-loaded
  const f = path.join(out, 'step-00000002', 'rank-00001.safetensors');
  const buf = new Uint8Array(fs.readFileSync(f));
  buf[buf.length - 3]! ^= 0xff;
  fs.writeFileSync(f, buf);
  const warnings: string[] = [];
  assert.equal(latestCheckpoint(out, { warn: (m) => warnings.push(m) }), null);
  assert.match(warnings.join('\n'), /rank-00001.safetensors fails its sha256 check/);
});

test('sharded checkpoint: a rank that cannot write fails the save on every rank and commits nothing', async () => {
  const out = path.join(tmp, 'c');
  const rs = ranks(2, 2);
  await train(rs, 1);
  await save(out, rs, 1);
  // rank 1 finds its file's name taken (by a folder) in the temporary folder rank 0 made
  const tmpDir = path.join(out, `.tmp-step-00000002-${process.pid}`);
  const blocked = { ...rs[1]!.comm, barrier: async () => {
    await rs[1]!.comm.barrier();
    fs.mkdirSync(path.join(tmpDir, 'rank-00001.safetensors'));
  } };
  const results = await Promise.allSettled(
    rs.map((r, i) => saveDistributedCheckpoint(out, r.dp, i === 1 ? blocked : r.comm, { modelConfig: cfg, step: 2, trainConfig: {}, data: null, rng: null }, 2)),
  );
  dispose(rs);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.match(String((r as PromiseRejectedResult).reason), /checkpoint step 2 not saved: rank\(s\) 1 could not write their shards/);
  }
  assert.ok(!fs.existsSync(path.join(out, 'step-00000002')), 'nothing committed');
  assert.ok(!fs.existsSync(tmpDir), 'the temporary folder is removed');
  assert.equal(loadCheckpoint(out).step, 1, 'the previous checkpoint is intact and the newest');
});
