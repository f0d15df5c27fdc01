// Measured pipeline bubble against the planner's formula. Run under MPI with pp ranks:
//   npx tsc -p . && mpirun --oversubscribe --bind-to none -np 2 node dist/bench/pipeline-bubble.js [steps] [model] [micro-batches]
//   steps: measured steps per row (default 5, after one warm-up); model: `small` (default: the `small`
//   preset's layer shape, 4 layers, 256-token vocabulary, untied output, micro-batch 2 × 256 tokens:
//   chunks of 50-200 ms, so compute dominates the transfers) or `tiny` (micro-batch 2 × 128, chunks
//   of 5-20 ms); micro-batches: comma-separated list (default 2,4,8).
// Every compute of the schedule is timed on every rank (src/dist/pipeline-trace.ts: clocks aligned to
// rank 0, records gathered each step), and the ranks' time from the first rank's start of the step
// to the last compute's end is split into compute, bubble (waiting for a neighbour that was computing
// — the idle time the schedule implies), exposed transfer (waiting for an input whose producer had
// finished) and executor overhead (between computes, late arrival). Reported per row: the median step
// (and the range over the steps) of bubble / (pp · window) beside the planner's (pp-1)/(vpp·m+pp-1)
// (src/plan/step-time.ts); the schedule simulated with this run's own mean compute times and free
// transfers (pipeline-schedule.ts `simulate`: what the bubble would be with these stage costs); the
// compute's CPU share (process CPU time / wall time over the computes: below 1 when the rank was
// descheduled); and tokens/s of the whole step (optimizer included). BUBBLE_DUMP=1 also prints, per
// row, each rank's spans of the last step, the split per rank, and the mean compute ms per (kind,
// chunk) when the other rank was idle (solo) and when it was computing too (concurrent).
// On a machine shared with other work, bind the two ranks to their own cores (`--bind-to core`):
// unbound, they migrate and share a core with each other or with other processes, which makes one
// stage's computes 20-25% slower than the other's and the bubble follows that imbalance, not the schedule.
import { performance } from 'node:perf_hooks';
import { getBackend } from '../src/backend/registry.js';
import type { Batch, TokenLoader } from '../src/data/loader.js';
import { openWorld } from '../src/dist/world.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { defaultAdamW } from '../src/optim/adamw.js';
import { PipelineParallel } from '../src/dist/pipeline-parallel.js';
import { type ScheduleKind, buildSchedule, simulate } from '../src/dist/pipeline-schedule.js';
import { PipelineTrace, type PipelineStepSplit, alignClock, gatherSteps, splitPipelineStep } from '../src/dist/pipeline-trace.js';

const STEPS = Number(process.argv[2] ?? 5);
const MODEL = process.argv[3] ?? 'small';
const MS = (process.argv[4] ?? '2,4,8').split(',').map(Number);
const B = 2;
const cfg =
  MODEL === 'tiny'
    ? { ...preset('tiny'), name: 'bubble-tiny', vocab: 256, tiedEmbeddings: false }
    : { ...preset('small'), name: 'bubble-small', layers: 4, vocab: 256, tiedEmbeddings: false };
const S = cfg.seqLen;

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
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const rows: string[] = [];
for (const m of MS)
  for (const [kind, vpp] of [['1f1b', 1], ['gpipe', 1], ['interleaved', 2]] as [ScheduleKind, number][]) {
    const model = new Transformer(cfg, be, { seed: 1 });
    const pipe = new PipelineParallel(model, world, { vpp, schedule: kind, adamw: defaultAdamW() });
    const chunks = pp * vpp;
    const trace = new PipelineTrace();
    pipe.trace = trace;
    const l = loader();
    await alignClock(world, trace);
    await pipe.runStep(l, m, 1e-3); // warm-up
    const splits: PipelineStepSplit[] = [];
    const stepS: number[] = [];
    const computeMs = new Map<string, number[]>();
    for (let s = 0; s < STEPS; s++) {
      const t0 = performance.now();
      await pipe.runStep(l, m, 1e-3);
      stepS.push((performance.now() - t0) / 1000);
      const steps = await gatherSteps(world, trace);
      splits.push(splitPipelineStep(steps, pp, chunks));
      if (process.env.BUBBLE_DUMP && world.rank === 0 && s === STEPS - 1) {
        console.log(`${kind} m${m}:`, JSON.stringify(splits[splits.length - 1]!.ranks.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, +v.toFixed(1)])))));
        steps.forEach((r, i) => console.log(`  rank ${i} start ${r.startMs.toFixed(2)}: ` + r.spans.map((x, j) => `${x.kind[0]}${x.chunk}.${x.micro} pre${(x.readyMs - (j ? r.spans[j - 1]!.endMs : r.startMs)).toFixed(2)} w${(x.inputMs - x.readyMs).toFixed(1)} post${(x.startMs - x.inputMs).toFixed(2)} c${(x.endMs - x.startMs).toFixed(1)}/${x.cpuMs.toFixed(1)}`).join(' | ')));
      }
      if (process.env.BUBBLE_DUMP && world.rank === 0) {
        // solo (the other rank not computing) vs concurrent: mean ms per (kind, chunk)
        const solo = new Map<string, number[]>(), both = new Map<string, number[]>();
        steps.forEach((r, i) => {
          for (const x of r.spans) {
            let ov = 0;
            steps.forEach((q, j) => { if (j !== i) for (const y of q.spans) ov += Math.max(0, Math.min(x.endMs, y.endMs) - Math.max(x.startMs, y.startMs)); });
            const f = ov / (x.endMs - x.startMs);
            const mp = f < 0.1 ? solo : f > 0.9 ? both : null;
            if (mp) mp.set(`${x.kind}:${x.chunk}`, [...(mp.get(`${x.kind}:${x.chunk}`) ?? []), x.endMs - x.startMs]);
          }
        });
        const avg = (xs: number[]) => (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1);
        console.log(`  solo:`, [...solo].sort().map(([k, v]) => `${k} ${avg(v)}(${v.length})`).join(', '), `| concurrent:`, [...both].sort().map(([k, v]) => `${k} ${avg(v)}(${v.length})`).join(', '));
      }
      for (const r of steps) for (const x of r.spans) computeMs.set(`${x.kind}:${x.chunk}`, [...(computeMs.get(`${x.kind}:${x.chunk}`) ?? []), x.endMs - x.startMs]);
    }
    const frac = (x: PipelineStepSplit, k: 'compute' | 'bubble' | 'transfer' | 'overhead') => x.total[k] / (pp * x.makespanMs);
    const order = splits.map((x, i) => ({ x, i, b: frac(x, 'bubble') })).sort((a, b) => a.b - b.b);
    const med = order[order.length >> 1]!;
    const planner = (pp - 1) / (vpp * m + pp - 1);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const own = simulate(buildSchedule(kind, { pp, vpp, microBatches: m }), (c, k) => mean(computeMs.get(`${k}:${c}`) ?? [0])).bubbleFraction;
    if (process.env.BUBBLE_DUMP && world.rank === 0) console.log(`${kind} m${m} mean compute ms:`, [...computeMs].sort().map(([k, v]) => `${k} ${mean(v).toFixed(1)}`).join(', '));
    const tokens = (m * B * S) / [...stepS].sort((a, b) => a - b)[stepS.length >> 1]!;
    const x = med.x;
    rows.push(
      `| ${kind} | ${vpp} | ${m} | ${x.makespanMs.toFixed(0)} | ${pct(frac(x, 'compute'))} | **${pct(med.b)}** (${pct(order[0]!.b)}-${pct(order[order.length - 1]!.b)}) | ${pct(frac(x, 'transfer'))} | ${pct(frac(x, 'overhead'))} | ${pct(planner)} | **${(med.b / planner).toFixed(2)}** | ${pct(own)} | ${x.computeCpuShare.toFixed(2)} | ${tokens.toFixed(0)} |`,
    );
    pipe.dispose();
    model.dispose();
  }
if (world.rank === 0) {
  console.log(`model ${cfg.name}: ${cfg.layers} layers, d ${cfg.dModel}, micro-batch ${B} x ${S} tokens; pp ${pp}; ${STEPS} measured steps per row (median step shown, range of the bubble over the steps)`);
  console.log('| schedule | vpp | m | window ms | compute | bubble (range) | exposed transfer | overhead | formula (p-1)/(v·m+p-1) | bubble / formula | simulated with these compute times | compute CPU share | tokens/s |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}
await world.finalize();
