// Training stall of a checkpoint, synchronous against asynchronous, for one process of a preset
// (default `small`: 13.8M parameters, 166 MB of weights and AdamW moments): a synchronous save is
// timed from the step boundary to the committed folder; an asynchronous one from the step boundary to
// the moment training may continue (the host copy handed to the worker thread), and separately to its
// commit. Alternates the two modes for REPEAT rounds in one process, into a temporary folder.
// Run: node dist/bench/async-checkpoint.js [PRESET] [REPEAT]
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../src/backend/registry.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { AdamW } from '../src/optim/adamw.js';
import { Checkpointer, type SaveMode } from '../src/train/async-checkpoint.js';
import { modelTensors, optimizerState } from '../src/train/train-state.js';

const name = process.argv[2] ?? 'small';
const repeat = Number(process.argv[3] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'zili-bench-ckpt-'));
const be = await getBackend('cpu');
const cfg = preset(name);
const model = new Transformer(cfg, be, { seed: 1 });
const opt = new AdamW(model.params);
const rows: Record<SaveMode, { stall: number[]; write: number[] }> = { sync: { stall: [], write: [] }, async: { stall: [], write: [] } };
try {
  const made = (mode: SaveMode) =>
    new Checkpointer({
      out: join(dir, mode),
      keep: 2,
      mode,
      log: () => {},
      snapshot: async () => ({ tensors: await modelTensors(model), optimizer: await optimizerState(opt, model) }),
    });
  // one checkpointer per mode for the whole run, as in training (the worker thread starts with it)
  const ck = { sync: made('sync'), async: made('async') };
  let step = 0;
  for (let r = 0; r < repeat; r++) {
    for (const mode of ['sync', 'async'] as const) {
      step++;
      const stall = await ck[mode].save({ modelConfig: cfg, step, trainConfig: {}, data: null, rng: null });
      await ck[mode].flush();
      rows[mode].stall.push(stall);
      rows[mode].write.push(ck[mode].timings[r]!.writeS);
    }
  }
  for (const c of Object.values(ck)) await c.close();
} finally {
  model.dispose();
  opt.dispose();
  rmSync(dir, { recursive: true, force: true });
}
const f = (xs: number[]) => xs.map((x) => x.toFixed(3)).join(', ');
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(`preset ${name}, ${repeat} rounds; ${cpus()[0]?.model ?? '?'} x ${cpus().length}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`sync  save (training stalled for all of it): ${f(rows.sync.stall)} s (median ${med(rows.sync.stall).toFixed(3)})`);
console.log(`async stall (host copy, handed to the worker): ${f(rows.async.stall)} s (median ${med(rows.async.stall).toFixed(3)})`);
console.log(`async write to commit (in the background):    ${f(rows.async.write)} s (median ${med(rows.async.write).toFixed(3)})`);
console.log(`stall / synchronous save: ${((100 * med(rows.async.stall)) / med(rows.sync.stall)).toFixed(1)}% (median over medians)`);
