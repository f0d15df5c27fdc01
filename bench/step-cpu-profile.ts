// Where one training step's work goes, in CPU milliseconds on ONE thread: the reference config
// (6 layers, d_model 384, 6 heads, ffn 1024, vocab 4096, seq 256, batch 8, f32) with every kernel
// call timed by this process's CPU time (src/cli/bench/step-profile.ts, clock 'cpu'). On a machine
// shared with other jobs wall times swing 2-10x, CPU time on one thread far less, so two builds can
// be compared there: run it in each tree, alternately. Best of --runs steps per category.
//   npx tsc -p . && node dist/bench/step-cpu-profile.js [--runs 3]
import { getBackend } from '../src/backend/registry.js';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { preset } from '../src/nn/presets.js';
import { validateModelConfig } from '../src/nn/config.js';
import { Transformer } from '../src/nn/transformer.js';
import { AdamW, defaultAdamW } from '../src/optim/adamw.js';
import * as T from '../src/tensor/ops.js';
import { backward } from '../src/tensor/autograd.js';
import { tidy } from '../src/tensor/scope.js';
import { CATEGORIES, profileStep } from '../src/cli/bench/step-profile.js';

const runsAt = process.argv.indexOf('--runs');
const runs = runsAt > 0 ? Number(process.argv[runsAt + 1]) : 3;
const config = validateModelConfig({ ...preset('small'), name: 'reference', layers: 6, dModel: 384, heads: 6, kvHeads: 6, ffnHidden: 1024, vocab: 4096, seqLen: 256 });
const backend = await getBackend('cpu');
if (!(backend instanceof CpuBackend)) throw new Error('step-cpu-profile: needs the cpu backend');
backend.native.setThreads(1);
const B = 8, S = config.seqLen;
const model = new Transformer(config, backend, { seed: 1, dtype: 'f32', recompute: 'none' });
const opt = new AdamW(model.params, defaultAdamW());
let seed = 12345;
const tokens = () => Int32Array.from({ length: B * S }, () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % config.vocab);
const step = async () => {
  const ids = tokens(), tgt = tokens();
  tidy(() => backward(model.loss(T.tensor(backend, ids, [B, S]), T.tensor(backend, tgt)).loss));
  await opt.update(1e-4);
  model.params.zeroGrad();
};
for (let i = 0; i < 2; i++) await step();
const best = Object.fromEntries(CATEGORIES.map((c) => [c, Infinity])) as Record<string, number>;
let total = Infinity;
for (let r = 0; r < runs; r++) {
  const p = await profileStep(backend, step, 'cpu');
  total = Math.min(total, p.totalMs);
  for (const c of CATEGORIES) best[c] = Math.min(best[c]!, p.ms[c]);
}
const round = (x: number) => Math.round(x * 10) / 10;
console.log(JSON.stringify({ stepCpuMs: round(total), ...Object.fromEntries(CATEGORIES.map((c) => [c, round(best[c]!)])) }));
opt.dispose();
model.dispose();
