// Tests of checkpoints: save/load round trip, atomic layout, recovery from interrupted saves and damaged files, pruning, model compatibility errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { preset } from '../src/nn/presets.js';
import {
  type CheckpointInput, CheckpointError, assertCompatible, latestCheckpoint, loadCheckpoint, pruneCheckpoints, saveCheckpoint, stepDirName,
} from '../src/train/checkpoint.js';

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'zili-ckpt-'));

function input(step: number): CheckpointInput {
  const w = new Float32Array([1, 2, 3, 4, 5, 6].map((x) => x * step));
  return {
    modelConfig: preset('tiny'),
    step,
    trainConfig: { steps: 20, seed: 1, globalBatch: 8 },
    tensors: {
      'embed.weight': { dtype: 'f32', shape: [2, 3], data: w },
      'norm.weight': { dtype: 'bf16', shape: [2], data: new Uint16Array([0x3f80, 0x4000]) },
    },
    optimizer: {
      m: { 'embed.weight': { dtype: 'f32', shape: [2, 3], data: w.map((x) => x / 10) }, 'norm.weight': { dtype: 'f32', shape: [2], data: new Float32Array([0.5, step]) } },
      v: { 'embed.weight': { dtype: 'f32', shape: [2, 3], data: w.map((x) => x / 100) }, 'norm.weight': { dtype: 'f32', shape: [2], data: new Float32Array([0.25, step]) } },
      tensors: { 'loss_scale': { dtype: 'f32', shape: [], data: new Float32Array([65536]) } },
      state: { step, beta1: 0.9, beta2: 0.95 },
    },
    data: { epoch: 0, sample: step * 8 },
    rng: { algorithm: 'philox4x32-10', seed: 1, stream: 0, offset: step * 100 },
    metrics: { loss: 3.5 - step / 10 },
  };
}

function collectWarnings() {
  const messages: string[] = [];
  return { messages, warn: (m: string) => void messages.push(m) };
}

test('save then load round trip, from the run folder and from the step folder', () => {
  const out = tmpDir();
  const dir = saveCheckpoint(out, input(7));
  assert.equal(dir, path.join(out, 'step-00000007'));
  assert.equal(stepDirName(7), 'step-00000007');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['manifest.json', 'model.safetensors', 'optimizer.safetensors']);
  assert.equal(fs.readFileSync(path.join(out, 'latest'), 'utf8').trim(), 'step-00000007');
  assert.deepEqual(fs.readdirSync(out).sort(), ['latest', 'step-00000007']); // nothing temporary left

  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.format, 'zili-checkpoint');
  assert.equal(manifest.version, 1);
  assert.equal(manifest.step, 7);
  assert.equal(manifest.files['model.safetensors'].bytes, fs.statSync(path.join(dir, 'model.safetensors')).size);
  assert.match(manifest.files['optimizer.safetensors'].sha256, /^[0-9a-f]{64}$/);
  assert.ok(!Number.isNaN(Date.parse(manifest.createdAt)));

  const want = input(7);
  for (const from of [out, dir]) {
    const c = loadCheckpoint(from);
    assert.equal(c.dir, dir);
    assert.equal(c.step, 7);
    assert.deepEqual(c.modelConfig, want.modelConfig);
    assert.deepEqual(c.trainConfig, want.trainConfig);
    assert.deepEqual(c.data, want.data);
    assert.deepEqual(c.rng, want.rng);
    assert.deepEqual(c.metrics, want.metrics);
    assert.deepEqual(c.tensors, want.tensors);
    assert.deepEqual(c.optimizer, want.optimizer);
  }
  fs.rmSync(out, { recursive: true });
});

test('an interrupted save (.tmp folder) and a damaged step folder are skipped: latest falls back to the last good one', () => {
  const out = tmpDir();
  saveCheckpoint(out, input(1));
  saveCheckpoint(out, input(2));
  // a save killed mid-write: a temporary folder of a process that is gone, holding a partial file
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const tmp = path.join(out, `.tmp-step-00000003-${deadPid}`);
  fs.mkdirSync(tmp);
  fs.writeFileSync(path.join(tmp, 'model.safetensors'), 'partial');
  let w = collectWarnings();
  assert.equal(latestCheckpoint(out, w), path.join(out, 'step-00000002'));
  assert.match(w.messages.join('\n'), /\.tmp-step-00000003-\d+: left by an interrupted save/);

  // a step folder whose weights were damaged after writing (same size, one byte flipped)
  const model = path.join(out, 'step-00000002', 'model.safetensors');
  const bytes = new Uint8Array(fs.readFileSync(model));
  bytes[bytes.length - 1] ^= 0xff;
  fs.writeFileSync(model, bytes);
  w = collectWarnings();
  assert.equal(latestCheckpoint(out, w), path.join(out, 'step-00000001'));
  assert.match(w.messages.join('\n'), /skipping checkpoint .*step-00000002: .*model\.safetensors fails its sha256 check/);
  assert.equal(loadCheckpoint(out, w).step, 1);
  assert.throws(() => loadCheckpoint(path.join(out, 'step-00000002')), /fails its sha256 check/);

  // a step folder without a manifest, and a truncated optimizer file, are skipped too
  fs.mkdirSync(path.join(out, 'step-00000009'));
  const opt = path.join(out, 'step-00000001', 'optimizer.safetensors');
  w = collectWarnings();
  fs.truncateSync(opt, 10);
  assert.equal(latestCheckpoint(out, w), null);
  assert.match(w.messages.join('\n'), /step-00000009.*manifest\.json is missing/);
  assert.match(w.messages.join('\n'), /step-00000001.*optimizer\.safetensors has 10 bytes, the manifest says \d+/);
  assert.throws(() => loadCheckpoint(out, w), (e: CheckpointError) => e.userFacing && /no complete checkpoint in/.test(e.message));

  // pruning clears leftovers of dead processes
  assert.ok(pruneCheckpoints(out, 5).includes(tmp));
  assert.equal(fs.existsSync(tmp), false);
  fs.rmSync(out, { recursive: true });
});

test('saving a step again replaces it; pruning keeps the newest and the latest', () => {
  const out = tmpDir();
  for (let s = 1; s <= 5; s++) saveCheckpoint(out, input(s));
  const again = input(3);
  again.metrics = { loss: 1 };
  saveCheckpoint(out, again);
  assert.equal(fs.readFileSync(path.join(out, 'latest'), 'utf8').trim(), 'step-00000003');
  assert.deepEqual(loadCheckpoint(path.join(out, 'step-00000003')).metrics, { loss: 1 });
  const removed = pruneCheckpoints(out, 2).map((p) => path.basename(p)).sort();
  assert.deepEqual(removed, ['step-00000001', 'step-00000002']);
  assert.deepEqual(fs.readdirSync(out).sort(), ['latest', 'step-00000003', 'step-00000004', 'step-00000005']);
  assert.equal(latestCheckpoint(out), path.join(out, 'step-00000005'));
  assert.throws(() => loadCheckpoint(path.join(out, 'nope')), /does not exist/);
  fs.rmSync(out, { recursive: true });
});

test('assertCompatible lists every differing field and says what to do', () => {
  const tiny = preset('tiny');
  assert.doesNotThrow(() => assertCompatible(tiny, { ...tiny, name: 'my-copy' }));
  const small = { ...tiny, name: 'wide', dModel: 256, layers: 6 };
  assert.throws(() => assertCompatible(small, tiny, 'runs/a'), (e: CheckpointError) => {
    assert.equal(e.userFacing, true);
    assert.equal(
      e.message,
      "checkpoint in runs/a is from another model (checkpoint 'wide' vs this run 'tiny'): layers 6 vs 4, dModel 256 vs 128; use --preset wide or a fresh --out",
    );
    return true;
  });
  assert.throws(() => assertCompatible(preset('tiny-moe'), tiny), /: moe 8 experts top-2 vs none; use --preset tiny-moe or a fresh --out$/);
  const moe = preset('tiny-moe');
  assert.throws(() => assertCompatible({ ...moe, moe: { ...moe.moe!, topK: 4 } }, moe), /: moe 8 experts top-4 vs 8 experts top-2, moe\.topK 4 vs 2; /);
});
