// Pipeline schedules as data, checked without MPI: every (chunk, micro-batch) forwarded and
// backwarded once on its rank, forward before backward, sends matching receives, no deadlock,
// in-flight activations bounded as 1F1B promises, and the ideal bubble equal to the planner's
// (pp-1)/vpp micro-batches. The chunk partition agrees with the planner's stageLayers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type PipeAction, buildSchedule, simulate } from '../src/dist/pipeline-schedule.js';
import { partitionChunks } from '../src/dist/pipeline-partition.js';
import { stageLayers } from '../src/plan/memory.js';
import { preset } from '../src/nn/presets.js';

const shapes = (vpps: number[]) => {
  const out: { pp: number; vpp: number; microBatches: number }[] = [];
  for (const pp of [2, 3, 4]) for (const vpp of vpps) for (const k of [1, 2, 3]) out.push({ pp, vpp, microBatches: k * pp });
  out.push(...[1, 3, 5].map((m) => ({ pp: 4, vpp: vpps[0]!, microBatches: m })).filter((s) => s.vpp === 1));
  return out;
};

/** the planner's bubble (src/plan/step-time.ts): (pp-1)/vpp micro-batch times on top of M, as a fraction of the step */
const plannerBubble = (pp: number, vpp: number, m: number) => (pp - 1) / vpp / (m + (pp - 1) / vpp);

test('gpipe and 1f1b: valid, deadlock-free, bubble = (pp-1)/(M+pp-1), 1F1B holds at most pp-r micro-batches on rank r', () => {
  for (const s of shapes([1])) {
    const g = simulate(buildSchedule('gpipe', s));
    const f = simulate(buildSchedule('1f1b', s));
    const want = plannerBubble(s.pp, 1, s.microBatches);
    assert.ok(Math.abs(g.bubbleFraction - want) < 1e-12, `gpipe ${JSON.stringify(s)}: bubble ${g.bubbleFraction} vs ${want}`);
    assert.ok(Math.abs(f.bubbleFraction - want) < 1e-12, `1f1b ${JSON.stringify(s)}: bubble ${f.bubbleFraction} vs ${want}`);
    g.maxInFlight.forEach((n) => assert.equal(n, s.microBatches, 'gpipe keeps every micro-batch'));
    f.maxInFlight.forEach((n, r) => assert.equal(n, Math.min(s.pp - r, s.microBatches), `1f1b rank ${r} of ${JSON.stringify(s)}`));
  }
});

test('interleaved: valid, deadlock-free, bubble = (pp-1)/vpp micro-batches, in-flight bounded by the warm-up', () => {
  for (const s of shapes([2, 3])) {
    const r = simulate(buildSchedule('interleaved', s));
    const want = plannerBubble(s.pp, s.vpp, s.microBatches);
    assert.ok(Math.abs(r.bubbleFraction - want) < 1e-12, `interleaved ${JSON.stringify(s)}: bubble ${r.bubbleFraction} vs ${want}`);
    r.maxInFlight.forEach((n, rank) => assert.ok(n <= Math.min(s.microBatches * s.vpp, (s.pp - rank - 1) * 2 + (s.vpp - 1) * s.pp + 1), `rank ${rank}: ${n} in flight`));
    // fewer in flight than gpipe holds when there is a steady phase
    if (s.microBatches >= 2 * s.pp) assert.ok(r.maxInFlight[0]! < s.microBatches * s.vpp);
  }
});

test('schedules refuse shapes they cannot run, in one line', () => {
  assert.throws(() => buildSchedule('1f1b', { pp: 2, vpp: 2, microBatches: 4 }), /--schedule interleaved/);
  assert.throws(() => buildSchedule('interleaved', { pp: 2, vpp: 1, microBatches: 4 }), /--vpp 2 or more/);
  assert.throws(() => buildSchedule('interleaved', { pp: 4, vpp: 2, microBatches: 6 }), /multiple of --pp 4/);
});

test('simulate catches a backward before its forward, an unmatched send and a deadlock', () => {
  const s = buildSchedule('1f1b', { pp: 2, vpp: 1, microBatches: 2 });
  const swapped = structuredClone(s);
  const r1 = swapped.ranks[1]!;
  const fi = r1.findIndex((a) => a.kind === 'forward'), bi = r1.findIndex((a) => a.kind === 'backward');
  [r1[fi], r1[bi]] = [r1[bi]!, r1[fi]!];
  assert.throws(() => simulate(swapped), /before its forward/);

  const dropped = structuredClone(s);
  dropped.ranks[1] = dropped.ranks[1]!.filter((a, i, all) => i !== all.findIndex((x) => x.kind === 'recv'));
  assert.throws(() => simulate(dropped), /matching/);

  // rank 0 runs micro-batch 0's backward before micro-batch 1's forward while rank 1 wants micro-batch 1 first
  const F = (chunk: number, micro: number): PipeAction => ({ kind: 'forward', chunk, micro });
  const B = (chunk: number, micro: number): PipeAction => ({ kind: 'backward', chunk, micro });
  const send = (payload: 'activation' | 'gradient', from: number, to: number, micro: number): PipeAction => ({ kind: 'send', payload, from, to, micro, peer: to % 2 });
  const recv = (payload: 'activation' | 'gradient', from: number, to: number, micro: number): PipeAction => ({ kind: 'recv', payload, from, to, micro, peer: from % 2 });
  const dead = { ...s, ranks: [
    [F(0, 0), send('activation', 0, 1, 0), recv('gradient', 1, 0, 0), B(0, 0), F(0, 1), send('activation', 0, 1, 1), recv('gradient', 1, 0, 1), B(0, 1)],
    [recv('activation', 0, 1, 1), F(1, 1), B(1, 1), send('gradient', 1, 0, 1), recv('activation', 0, 1, 0), F(1, 0), B(1, 0), send('gradient', 1, 0, 0)],
  ] };
  assert.throws(() => simulate(dead), /deadlock/);
});

test('chunk partition: embedding-only first and loss-only last chunk when pp·vpp = layers + 2; layer counts as the planner', () => {
  assert.deepEqual(partitionChunks(2, 4), [
    { embedding: true, lo: 0, hi: 0, head: false },
    { embedding: false, lo: 0, hi: 1, head: false },
    { embedding: false, lo: 1, hi: 2, head: false },
    { embedding: false, lo: 2, hi: 2, head: true },
  ]);
  assert.deepEqual(partitionChunks(2, 3).map((p) => [p.lo, p.hi, p.embedding, p.head]), [[0, 0, true, false], [0, 1, false, false], [1, 2, false, true]]);
  assert.deepEqual(partitionChunks(4, 2).map((p) => [p.lo, p.hi]), [[0, 2], [2, 4]]);
  assert.throws(() => partitionChunks(2, 5), /at most 4/);
  const c = preset('tiny');
  for (const layers of [2, 4, 6, 8])
    for (const pp of [1, 2, 3, 4])
      for (const vpp of [1, 2, 3]) {
        if (pp * vpp > layers + 2) continue;
        const parts = partitionChunks(layers, pp * vpp);
        const covered = parts.flatMap((p) => Array.from({ length: p.hi - p.lo }, (_, i) => p.lo + i));
        assert.deepEqual(covered, [...Array(layers).keys()], 'every layer exactly once, in order');
        for (let st = 0; st < pp; st++) {
          const mine = parts.filter((_, j) => j % pp === st).reduce((n, p) => n + p.hi - p.lo, 0);
          assert.equal(mine, stageLayers({ ...c, layers }, pp, vpp, st).dense, `layers=${layers} pp=${pp} vpp=${vpp} stage ${st}`);
        }
      }
});
