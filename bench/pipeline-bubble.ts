// Measured pipeline bubble against the planner's formula. Run under MPI with pp ranks:
//   npx tsc -p . && mpirun --oversubscribe --bind-to none -np 2 node dist/bench/pipeline-bubble.js
//   (optional argument: measured steps per row, default 5; the best and the median step are reported:
//   on a shared machine the best step is the one least disturbed by other work)
// For each schedule and micro-batch count it runs warm-up + measured steps of a model whose stages
// cost the same (4 layers, small vocabulary so the output layer is negligible), and reports the idle
// fraction 1 - busy / (pp · makespan), where a rank's busy time is its schedule's time less what it
// spent waiting for activations/gradients (bubble plus exposed transfers), beside the planner's (pp-1)/vpp micro-batches of bubble
// (src/plan/step-time.ts) as a fraction of the step, and the ideal schedule's simulated fraction.
import { getBackend } from '../src/backend/registry.js';
import type { Batch, TokenLoader } from '../src/data/loader.js';
import { openWorld } from '../src/dist/world.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { defaultAdamW } from '../src/optim/adamw.js';
import { PipelineParallel } from '../src/dist/pipeline-parallel.js';
import { type ScheduleKind, buildSchedule, simulate } from '../src/dist/pipeline-schedule.js';

const B = 2, S = 128, STEPS = Number(process.argv[2] ?? 5);
const cfg = { ...preset('tiny'), name: 'bubble', vocab: 256, tiedEmbeddings: false };

function loader(): TokenLoader {
  let k = 0;
  const next = (): Batch => {
    k++;
    return { input: Int32Array.from({ length: B * S }, (_, i) => (i * 7 + k) % cfg.vocab), target: Int32Array.from({ length: B * S }, (_, i) => (i * 5 + k) % cfg.vocab) } as Batch;
  };
  return { batch: B, seqLen: S, next } as unknown as TokenLoader;
}

const world = await openWorld();
const be = await getBackend('cpu');
(be as unknown as { native?: { setThreads(n: number): void } }).native?.setThreads(1);
const pp = world.size;
const rows: string[] = [];
for (const [kind, vpp, m] of [['1f1b', 1, 2], ['gpipe', 1, 2], ['interleaved', 2, 2], ['1f1b', 1, 4], ['gpipe', 1, 4], ['interleaved', 2, 4], ['1f1b', 1, 8], ['gpipe', 1, 8], ['interleaved', 2, 8]] as [ScheduleKind, number, number][]) {
  const model = new Transformer(cfg, be, { seed: 1 });
  const pipe = new PipelineParallel(model, world, { vpp, schedule: kind, adamw: defaultAdamW() });
  const l = loader();
  await pipe.runStep(l, m, 1e-3); // warm-up
  // each step's bubble = 1 - busy / (pp · makespan): a rank that finishes early idles until the slowest one ends
  const fracs: number[] = [];
  let makespanSum = 0;
  for (let s = 0; s < STEPS; s++) {
    await pipe.runStep(l, m, 1e-3);
    const both = new Float32Array(2 * pp);
    await world.allGather(Float32Array.of(pipe.lastWaitS, pipe.lastPipelineS), both);
    let busy = 0, makespan = 0;
    for (let r = 0; r < pp; r++) {
      busy += both[2 * r + 1]! - both[2 * r]!;
      makespan = Math.max(makespan, both[2 * r + 1]!);
    }
    fracs.push(1 - busy / (pp * makespan));
    makespanSum += makespan;
  }
  fracs.sort((a, b) => a - b);
  const planner = (pp - 1) / vpp / (m + (pp - 1) / vpp);
  const ideal = simulate(buildSchedule(kind, { pp, vpp, microBatches: m })).bubbleFraction;
  const stepMs = (1000 * makespanSum) / STEPS;
  const best = fracs[0]!, med = fracs[fracs.length >> 1]!;
  rows.push(`| ${kind} | ${pp} | ${vpp} | ${m} | ${stepMs.toFixed(0)} | **${(100 * best).toFixed(1)}%** | ${(100 * med).toFixed(1)}% | ${(100 * planner).toFixed(1)}% | ${(100 * ideal).toFixed(1)}% | ${(best / planner).toFixed(2)} |`);
  pipe.dispose();
  model.dispose();
}
if (world.rank === 0) {
  console.log(`| schedule | pp | vpp | micro-batches | schedule ms/step | measured bubble, best of ${STEPS} steps | median | planner bubble | simulated ideal | best / planner |`);
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}
await world.finalize();
