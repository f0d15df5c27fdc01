// Where a pipeline step's time goes, measured action by action. The executor (pipeline-parallel.ts)
// records, per compute of its schedule, when the rank became ready for it (its previous action done),
// when the compute's input from the neighbouring stage was in hand, and when the compute started and
// ended, plus the process CPU time over the compute. Clocks are aligned across ranks to rank 0 (a
// ping-pong over the pipeline communicator, the offset of the round trip with the least delay), the
// ranks' records are gathered, and `splitPipelineStep` classifies every moment of every rank in the
// window from the first rank's start to the last compute's end as:
//   compute   inside a forward or backward;
//   bubble    waiting for a producer (the neighbouring stage) that was itself computing: the idle time
//             the schedule implies, the only part the formula (p-1)/(v·m+p-1) describes;
//   transfer  waiting for an input whose producer had finished: exposed p2p latency (MPI progress,
//             completion delivered to JavaScript);
//   overhead  the executor's own time between computes (posting transfers, allocating receive
//             buffers, event-loop yields) and a rank's late arrival at the step.
// A wait whose producer was itself waiting (or in overhead) at that moment takes the producer's
// class at that moment, recursively, so idle time caused by a late transfer upstream is counted as
// transfer, not bubble; a rank that ended early is, until the step ends, classified by what the
// rank finishing last was doing. Under CPU contention a descheduled compute still counts as compute
// (its peer's wait is then bubble); `cpuMs` beside `ms` says how much of the compute the process ran.
import { performance } from 'node:perf_hooks';
import type { Communicator } from './communicator.js';
import { chunkRank } from './pipeline-schedule.js';

/** One forward or backward on one rank, times in ms on the aligned clock. */
export interface ComputeSpan {
  kind: 'forward' | 'backward';
  chunk: number;
  micro: number;
  /** the rank's previous action was done: from here it waited for this compute's input */
  readyMs: number;
  /** the input from the neighbouring stage was in hand (= readyMs for a compute without one) */
  inputMs: number;
  startMs: number;
  endMs: number;
  /** process CPU time (user + system) over [startMs, endMs] */
  cpuMs: number;
}

/** One rank's record of one step's schedule. */
export interface RankStep {
  startMs: number;
  spans: ComputeSpan[];
}

/** Records the schedule's computes of each step on this rank (the executor calls it; off when not attached). */
export class PipelineTrace {
  /** this rank's clock minus rank 0's, ms (alignClock sets it) */
  offsetMs = 0;
  /** the last step's record */
  step: RankStep = { startMs: 0, spans: [] };

  /** clock: this rank's monotonic clock in ms */
  constructor(readonly clock: () => number = () => performance.now()) {}

  now(): number {
    return this.clock() - this.offsetMs;
  }

  begin(): void {
    this.step = { startMs: this.now(), spans: [] };
  }

  /** Times `run` as the compute of (kind, chunk, micro) that became ready at readyMs and had its input at inputMs. */
  async compute<R>(kind: 'forward' | 'backward', chunk: number, micro: number, readyMs: number, inputMs: number, run: () => R | Promise<R>): Promise<R> {
    const cpu0 = process.cpuUsage();
    const startMs = this.now();
    const r = await run();
    const endMs = this.now();
    const cpu = process.cpuUsage(cpu0);
    this.step.spans.push({ kind, chunk, micro, readyMs, inputMs, startMs, endMs, cpuMs: (cpu.user + cpu.system) / 1000 });
    return r;
  }
}

/**
 * Sets trace.offsetMs so that trace.now() reads rank 0's clock (collective over `comm`): each rank
 * r > 0 exchanges `rounds` timestamps with rank 0 and keeps the offset of the round trip that took
 * least time (its error is at most half that round trip).
 */
export async function alignClock(comm: Communicator, trace: PipelineTrace, rounds = 8): Promise<void> {
  const buf = new Int32Array(2);
  const put = (ms: number) => ((buf[0] = Math.floor(ms)), (buf[1] = Math.round((ms - Math.floor(ms)) * 1e6)));
  const get = () => buf[0]! + buf[1]! / 1e6;
  trace.offsetMs = 0;
  for (let peer = 1; peer < comm.size; peer++) {
    let best = Infinity;
    for (let k = 0; k < rounds; k++) {
      if (comm.rank === 0) {
        await comm.recv(buf, peer, 32000 + k);
        put(trace.clock());
        await comm.send(buf, peer, 32000 + k);
      } else if (comm.rank === peer) {
        const t0 = trace.clock();
        await comm.send(buf, 0, 32000 + k);
        await comm.recv(buf, 0, 32000 + k);
        const t1 = trace.clock();
        if (t1 - t0 < best) {
          best = t1 - t0;
          trace.offsetMs = (t0 + t1) / 2 - get();
        }
      }
    }
  }
}

const FIELDS = 9;

/** Every rank's record of the last step, on every rank (collective over `comm`). */
export async function gatherSteps(comm: Communicator, trace: PipelineTrace): Promise<RankStep[]> {
  const count = new Int32Array(comm.size);
  const mine = Int32Array.of(trace.step.spans.length);
  await comm.allGather(mine, count);
  const n = Math.max(...count);
  // times as µs after rank 0's step start (f32 would lose µs past a few seconds; int32 holds 35 minutes)
  const base = Float32Array.of(trace.step.startMs);
  const bases = new Float32Array(comm.size);
  await comm.allGather(base, bases);
  const t0 = bases[0]!;
  const us = (ms: number) => Math.round((ms - t0) * 1000);
  const out = new Int32Array(1 + n * FIELDS);
  out[0] = us(trace.step.startMs);
  trace.step.spans.forEach((s, i) => out.set([s.kind === 'forward' ? 0 : 1, s.chunk, s.micro, us(s.readyMs), us(s.inputMs), us(s.startMs), us(s.endMs), Math.round(s.cpuMs * 1000), 0], 1 + i * FIELDS));
  const all = new Int32Array(comm.size * out.length);
  await comm.allGather(out, all);
  return Array.from({ length: comm.size }, (_, r) => {
    const o = r * out.length;
    const ms = (k: number) => all[o + k]! / 1000;
    const spans: ComputeSpan[] = [];
    for (let i = 0; i < count[r]!; i++) {
      const k = 1 + i * FIELDS;
      spans.push({ kind: all[o + k] === 0 ? 'forward' : 'backward', chunk: all[o + k + 1]!, micro: all[o + k + 2]!, readyMs: ms(k + 3), inputMs: ms(k + 4), startMs: ms(k + 5), endMs: ms(k + 6), cpuMs: ms(k + 7) });
    }
    return { startMs: ms(0), spans };
  });
}

export type TimeClass = 'compute' | 'bubble' | 'transfer' | 'overhead';
export type StepSplit = Record<TimeClass, number>;

export interface PipelineStepSplit {
  /** window: first rank's start to the last compute's end, ms */
  makespanMs: number;
  /** per rank, ms in each class (they sum to makespanMs) */
  ranks: StepSplit[];
  /** summed over ranks */
  total: StepSplit;
  /** CPU time the processes got over their computes / wall time of the computes, summed over ranks */
  computeCpuShare: number;
}

interface Segment {
  from: number;
  to: number;
  cls: TimeClass | 'wait';
  /** for 'wait': the rank and end time of the producer waited for */
  producer?: { rank: number; endMs: number };
}

/**
 * Splits a step's records (all ranks, aligned clocks) into compute / bubble / transfer / overhead per
 * rank, as the file header says. `pp` ranks, `chunks` = pp·vpp model chunks.
 */
export function splitPipelineStep(steps: readonly RankStep[], pp: number, chunks: number): PipelineStepSplit {
  const start = Math.min(...steps.map((s) => s.startMs));
  const end = Math.max(...steps.flatMap((s) => s.spans.map((x) => x.endMs)));
  const endOf = new Map<string, number>();
  for (const s of steps) for (const x of s.spans) endOf.set(`${x.kind}:${x.chunk}:${x.micro}`, x.endMs);
  const producerOf = (x: ComputeSpan): { rank: number; endMs: number } | null => {
    const c = x.kind === 'forward' ? x.chunk - 1 : x.chunk + 1;
    if (c < 0 || c >= chunks) return null;
    const e = endOf.get(`${x.kind}:${c}:${x.micro}`);
    if (e === undefined) throw new Error(`pipeline trace: no record of the ${x.kind} of chunk ${c}, micro-batch ${x.micro}`);
    return { rank: chunkRank(c, pp), endMs: e };
  };
  // each rank's timeline as segments; waits are resolved below
  const lines: Segment[][] = steps.map((s) => {
    const seg: Segment[] = [];
    const push = (from: number, to: number, cls: Segment['cls'], producer?: Segment['producer']) => {
      if (to > from) seg.push({ from, to, cls, ...(producer ? { producer } : {}) });
    };
    let t = start;
    push(t, s.startMs, 'overhead'); // arrived late at the step
    t = Math.max(t, s.startMs);
    for (const x of s.spans) {
      const p = producerOf(x);
      const ready = Math.max(t, Math.min(x.readyMs, x.startMs));
      push(t, ready, 'overhead');
      const input = Math.max(ready, Math.min(x.inputMs, x.startMs));
      if (p) {
        const done = Math.min(Math.max(ready, p.endMs), input);
        push(ready, done, 'wait', p); // the producer had not finished
        push(done, input, 'transfer');
      } else push(ready, input, 'overhead');
      push(input, x.startMs, 'overhead');
      push(Math.max(t, x.startMs), x.endMs, 'compute');
      t = Math.max(t, x.endMs);
    }
    return seg;
  });
  const last = steps.findIndex((s) => s.spans.some((x) => x.endMs === end));
  const stateAt = (rank: number, t: number, depth: number): TimeClass => {
    const seg = lines[rank]!.find((g) => g.from <= t && t < g.to);
    if (!seg) return rank === last || depth > pp * chunks ? 'overhead' : stateAt(last, t, depth + 1); // ended early: as the rank finishing last
    if (seg.cls !== 'wait') return seg.cls === 'compute' ? (depth === 0 ? 'compute' : 'bubble') : seg.cls;
    if (depth > pp * chunks) return 'bubble';
    const s = stateAt(seg.producer!.rank, t, depth + 1);
    return s === 'compute' ? 'bubble' : s;
  };
  const zero = (): StepSplit => ({ compute: 0, bubble: 0, transfer: 0, overhead: 0 });
  const ranks = lines.map((seg, r) => {
    const out = zero();
    // cut every rank's idle time at the other ranks' segment boundaries, so a piece has one class
    const cuts = [...new Set([start, end, ...lines.flatMap((l) => l.flatMap((g) => [g.from, g.to]))])].filter((x) => x >= start && x <= end).sort((a, b) => a - b);
    for (let i = 0; i + 1 < cuts.length; i++) {
      const a = cuts[i]!, b = cuts[i + 1]!;
      const mid = (a + b) / 2;
      const own = seg.find((g) => g.from <= mid && mid < g.to);
      const cls = own && own.cls !== 'wait' ? own.cls : stateAt(r, mid, 0);
      out[cls] += b - a;
    }
    return out;
  });
  const total = zero();
  for (const r of ranks) for (const k of Object.keys(total) as TimeClass[]) total[k] += r[k];
  const wall = steps.reduce((a, s) => a + s.spans.reduce((b, x) => b + x.endMs - x.startMs, 0), 0);
  const cpu = steps.reduce((a, s) => a + s.spans.reduce((b, x) => b + x.cpuMs, 0), 0);
  return { makespanMs: end - start, ranks, total, computeCpuShare: wall > 0 ? cpu / wall : 1 };
}
