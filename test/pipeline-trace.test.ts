// The pipeline step's time split (src/dist/pipeline-trace.ts): a hand-worked two-rank step classified
// into compute / bubble / transfer / overhead; clocks with a known skew aligned over a communicator;
// and the executor recording one span per compute of its schedule, expediting each wait for an input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import type { Batch, TokenLoader } from '../src/data/loader.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { defaultAdamW } from '../src/optim/adamw.js';
import { PipelineParallel } from '../src/dist/pipeline-parallel.js';
import { buildSchedule, isCompute } from '../src/dist/pipeline-schedule.js';
import { type ComputeSpan, PipelineTrace, type RankStep, alignClock, splitPipelineStep } from '../src/dist/pipeline-trace.js';
import { loopbackGroup } from './dist-loopback.js';

const span = (kind: 'forward' | 'backward', chunk: number, readyMs: number, inputMs: number, startMs: number, endMs: number): ComputeSpan => ({ kind, chunk, micro: 0, readyMs, inputMs, startMs, endMs, cpuMs: endMs - startMs });

test('a two-rank step splits into compute, bubble, exposed transfer and overhead as worked by hand', () => {
  // rank 0: F [0.5,10]; waits from 10.2 for rank 1's gradient (rank 1's backward ends at 30, arrives at 32); B [32,52]
  // rank 1: arrives at 1; waits for rank 0's activation (ends 10, arrives 11); F [11.5,21]; B (with the loss) [21,30]; idle to 52
  const steps: RankStep[] = [
    { startMs: 0, spans: [span('forward', 0, 0, 0, 0.5, 10), span('backward', 0, 10.2, 32, 32, 52)] },
    { startMs: 1, spans: [span('forward', 1, 1, 11, 11.5, 21), span('backward', 1, 21, 21, 21, 30)] },
  ];
  const s = splitPipelineStep(steps, 2, 2);
  const round = (x: Record<string, number>) => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, Math.round(v * 100) / 100]));
  assert.equal(s.makespanMs, 52);
  // rank 0's wait for the gradient: rank 1 was in a transfer wait (10.2-11, transfer), then past its input (11-11.5, overhead), then computing (bubble)
  assert.deepEqual(round(s.ranks[0]!), { compute: 29.5, bubble: 18.5, transfer: 2.8, overhead: 1.2 });
  // rank 1: late (overhead 1), rank 0 computing (bubble 9), the activation in flight (transfer 1), then after its
  // own end the state of rank 0, which finishes last: a transfer wait (2) and its backward (bubble 20)
  assert.deepEqual(round(s.ranks[1]!), { compute: 18.5, bubble: 29, transfer: 3, overhead: 1.5 });
  assert.deepEqual(round(s.total), { compute: 48, bubble: 47.5, transfer: 5.8, overhead: 2.7 });
});

test('clocks skewed by a second are aligned to rank 0 over the communicator', async () => {
  const skew = [0, 1000, -250];
  const traces = skew.map((d) => new PipelineTrace(() => performance.now() + d));
  await Promise.all(loopbackGroup(3).map((comm, r) => alignClock(comm, traces[r]!)));
  const t = traces.map((x) => x.now());
  for (let r = 1; r < 3; r++) assert.ok(Math.abs(t[r]! - t[0]!) < 50, `rank ${r} reads ${t[r]! - t[0]!} ms off rank 0 after alignment (skew ${skew[r]})`);
});

test('the executor times every compute of its schedule, in order, into an attached trace', async () => {
  const be = new ReferenceBackend();
  const cfg = { ...preset('tiny'), name: 'micro', layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 40, seqLen: 8, tiedEmbeddings: false };
  const B = 2, S = 8, M = 4;
  const loader = (): TokenLoader => ({ batch: B, seqLen: S, next: (): Batch => ({ input: new Int32Array(B * S).fill(3), target: new Int32Array(B * S).fill(5) }) as Batch }) as unknown as TokenLoader;
  // the executor tells the transport before it idles for an input (the MPI one then polls without backoff)
  const expedited = [0, 0];
  const comms = loopbackGroup(2);
  comms.forEach((c, r) => (c.expedite = () => void expedited[r]!++));
  const ranks = comms.map((comm) => new PipelineParallel(new Transformer(cfg, be, { seed: 5 }), comm, { vpp: 2, schedule: 'interleaved', adamw: defaultAdamW() }));
  const traces = ranks.map((r) => (r.trace = new PipelineTrace()));
  await Promise.all(ranks.map((r) => r.runStep(loader(), M, 1e-3)));
  const schedule = buildSchedule('interleaved', { pp: 2, vpp: 2, microBatches: M });
  traces.forEach((t, r) => {
    const want = schedule.ranks[r]!.filter(isCompute).map((a) => `${a.kind}:${a.chunk}:${a.micro}`);
    assert.deepEqual(t.step.spans.map((x) => `${x.kind}:${x.chunk}:${x.micro}`), want, `rank ${r}'s spans follow its schedule`);
    let prev = t.step.startMs;
    for (const x of t.step.spans) {
      assert.ok(prev <= x.readyMs && x.readyMs <= x.inputMs && x.inputMs <= x.startMs && x.startMs <= x.endMs, `rank ${r}: ${JSON.stringify(x)} out of order`);
      prev = x.endMs;
    }
  });
  traces.forEach((t, r) => {
    const inputs = t.step.spans.filter((x) => (x.kind === 'forward' ? x.chunk > 0 : x.chunk < 3)).length;
    assert.ok(expedited[r]! >= inputs, `rank ${r} expedited ${expedited[r]} waits for its ${inputs} inputs`);
  });
  const s = splitPipelineStep(traces.map((t) => t.step), 2, 4);
  for (const r of s.ranks) assert.ok(Math.abs(r.compute + r.bubble + r.transfer + r.overhead - s.makespanMs) < 1e-6, 'every rank accounts for the whole window');
  for (const r of ranks) r.model.dispose(), r.dispose();
});
