// A checkpoint that meets a full disk (ENOSPC from the write itself, injected into node:fs for
// files of the step being saved — works without root; cli-work-loss.test.ts does the same on a real
// small tmpfs when it can mount one): the error says how much the checkpoint needs, the partial
// folder is removed and the previous checkpoint still loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preset } from '../src/nn/presets.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint, type CheckpointInput } from '../src/train/checkpoint.js';

function input(step: number): CheckpointInput {
  const w = new Float32Array(256 * 1024).fill(step); // 1 MiB of weights, 2 MiB of moments
  return {
    modelConfig: preset('tiny'),
    step,
    trainConfig: {},
    tensors: { w: { dtype: 'f32', shape: [w.length], data: w } },
    optimizer: { m: { w: { dtype: 'f32', shape: [w.length], data: w.slice() } }, v: { w: { dtype: 'f32', shape: [w.length], data: w.slice() } } },
    data: null,
    rng: null,
  };
}

test('ENOSPC while writing a checkpoint: one error with the size needed; the previous checkpoint is kept', () => {
  const out = mkdtempSync(join(tmpdir(), 'zili-disk-full-'));
  try {
    saveCheckpoint(out, input(1));
    const realWriteSync = fs.writeSync;
    const fdsOfStep2 = new Set<number>();
    const realOpenSync = fs.openSync;
    fs.openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
      const fd = (realOpenSync as (...a: unknown[]) => number)(p, ...rest);
      if (String(p).includes('step-00000002')) fdsOfStep2.add(fd);
      return fd;
    }) as typeof fs.openSync;
    fs.writeSync = ((fd: number, ...rest: unknown[]) => {
      if (fdsOfStep2.has(fd)) throw Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      return (realWriteSync as (...a: unknown[]) => number)(fd, ...rest);
    }) as typeof fs.writeSync;
    syncBuiltinESMExports();
    try {
      assert.throws(
        () => saveCheckpoint(out, input(2)),
        (e: unknown) =>
          e instanceof CheckpointError &&
          /no space left on the disk of .* while writing the checkpoint of step 2: it needs about 3\.0 MiB \(.* MiB are free\)\. The previous checkpoint .*step-00000001 is intact\. Free some space/.test(e.message),
      );
    } finally {
      fs.openSync = realOpenSync;
      fs.writeSync = realWriteSync;
      syncBuiltinESMExports();
    }
    assert.deepEqual(readdirSync(out).filter((e) => e.includes('step-00000002')), [], 'the partial checkpoint is removed');
    assert.equal(loadCheckpoint(out).step, 1);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
