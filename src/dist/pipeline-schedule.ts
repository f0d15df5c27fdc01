// Pipeline schedules as data: for every pipeline rank, the ordered list of what it does in one
// optimizer step — forward or backward of one micro-batch through one of its model chunks, and the
// sends and receives of activations (chunk c → c+1) and gradients (c+1 → c) between ranks. The
// executor (pipeline-stage.ts) runs a list as written; the checks here (every micro-batch's forward
// before its backward, sends matching receives, no deadlock, bounded in-flight activations) and the
// bubble measurement run on the lists alone, without MPI.
//
// Chunks: the model is cut into pp·vpp chunks; rank r holds chunks r, r+pp, r+2pp, … (Megatron's
// interleaving; vpp = 1 gives one contiguous stage per rank).
//   gpipe:       all forwards, then all backwards (in-flight activations: every micro-batch).
//   1f1b:        pp-r-1 warm-up forwards, then one forward / one backward, then the cool-down
//                backwards: at most pp-r micro-batches in flight on rank r (vpp = 1).
//   interleaved: 1F1B over virtual micro-batches (micro-batch, chunk) in Megatron's order: groups of
//                pp micro-batches go through one chunk before the next chunk (vpp ≥ 2, micro-batches a
//                multiple of pp); bubble (pp-1)/vpp micro-batches instead of pp-1.
// Receives are posted one compute ahead of the compute that needs them, and sends are issued right
// after the compute that produced them, so transfers overlap the next compute.

export type ScheduleKind = 'gpipe' | '1f1b' | 'interleaved';
export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['gpipe', '1f1b', 'interleaved'];

export interface PipelineShape {
  pp: number;
  vpp: number;
  microBatches: number;
}

export type Payload = 'activation' | 'gradient';

export type PipeAction =
  | { kind: 'forward' | 'backward'; chunk: number; micro: number }
  /** a transfer of micro-batch `micro`'s payload from chunk `from` to chunk `to` (activations go up, gradients down) */
  | { kind: 'send' | 'recv'; payload: Payload; from: number; to: number; micro: number; peer: number };

export type ComputeAction = Extract<PipeAction, { chunk: number }>;
export type TransferAction = Extract<PipeAction, { payload: Payload }>;

export function isCompute(a: PipeAction): a is ComputeAction {
  return a.kind === 'forward' || a.kind === 'backward';
}

export interface PipelineSchedule extends PipelineShape {
  kind: ScheduleKind;
  /** actions of each pipeline rank, in execution order */
  ranks: PipeAction[][];
}

/** The pipeline rank holding chunk c. */
export function chunkRank(chunk: number, pp: number): number {
  return chunk % pp;
}

/** One-line refusal of a shape the schedule cannot run. */
export function checkScheduleShape(kind: ScheduleKind, s: PipelineShape): void {
  const { pp, vpp, microBatches: m } = s;
  for (const [k, v] of Object.entries(s)) if (!Number.isInteger(v) || v < 1) throw new RangeError(`pipeline: ${k} ${v} must be a positive integer`);
  if (!SCHEDULE_KINDS.includes(kind)) throw new RangeError(`pipeline: unknown schedule '${kind}'; use ${SCHEDULE_KINDS.join(', ')}`);
  if (kind === '1f1b' && vpp !== 1) throw new RangeError(`pipeline: --schedule 1f1b runs one chunk per rank (--vpp 1); with --vpp ${vpp} use --schedule interleaved`);
  if (kind === 'interleaved' && vpp < 2) throw new RangeError(`pipeline: --schedule interleaved needs --vpp 2 or more; with --vpp 1 use --schedule 1f1b`);
  if (kind === 'interleaved' && m % pp !== 0)
    throw new RangeError(`pipeline: the interleaved schedule needs micro-batches per step (${m}) to be a multiple of --pp ${pp}; change --global-batch or --micro-batch`);
}

/** Rank r's compute order. */
function computeOrder(kind: ScheduleKind, s: PipelineShape, r: number): ComputeAction[] {
  const { pp, vpp, microBatches: m } = s;
  const F = (chunk: number, micro: number): ComputeAction => ({ kind: 'forward', chunk, micro });
  const B = (chunk: number, micro: number): ComputeAction => ({ kind: 'backward', chunk, micro });
  const local = [...Array(vpp).keys()].map((v) => r + v * pp);
  if (kind === 'gpipe') {
    const out: ComputeAction[] = [];
    for (const c of local) for (let i = 0; i < m; i++) out.push(F(c, i));
    for (const c of [...local].reverse()) for (let i = 0; i < m; i++) out.push(B(c, i));
    return out;
  }
  // 1F1B over "virtual" micro-batches k = 0 .. m·vpp-1 (Megatron's forward_backward_pipelining_with_interleaving)
  const total = m * vpp;
  const fwd = (k: number) => F(local[Math.floor((k % (pp * vpp)) / pp)]!, Math.floor(k / (pp * vpp)) * pp + (k % pp));
  const bwd = (k: number) => B(local[vpp - 1 - Math.floor((k % (pp * vpp)) / pp)]!, Math.floor(k / (pp * vpp)) * pp + (k % pp));
  const warmup = Math.min(total, vpp === 1 ? pp - r - 1 : (pp - r - 1) * 2 + (vpp - 1) * pp);
  const out: ComputeAction[] = [];
  for (let k = 0; k < warmup; k++) out.push(fwd(k));
  for (let k = 0; k < total - warmup; k++) out.push(fwd(warmup + k), bwd(k));
  for (let k = total - warmup; k < total; k++) out.push(bwd(k));
  return out;
}

/** Tag of a transfer: distinct per (payload, receiving chunk, micro-batch) within a step. */
export function transferTag(payload: Payload, to: number, micro: number, chunks: number): number {
  return ((micro * chunks + to) * 2 + (payload === 'gradient' ? 1 : 0)) % 32768;
}

/** Builds the schedule: compute order per rank, with receives posted one compute ahead and sends after. */
export function buildSchedule(kind: ScheduleKind, shape: PipelineShape): PipelineSchedule {
  checkScheduleShape(kind, shape);
  const { pp, vpp } = shape;
  const C = pp * vpp;
  const ranks: PipeAction[][] = [];
  for (let r = 0; r < pp; r++) {
    const order = computeOrder(kind, shape, r);
    const needs = (a: ComputeAction): PipeAction[] => {
      if (a.kind === 'forward' && a.chunk > 0) return [{ kind: 'recv', payload: 'activation', from: a.chunk - 1, to: a.chunk, micro: a.micro, peer: chunkRank(a.chunk - 1, pp) }];
      if (a.kind === 'backward' && a.chunk < C - 1) return [{ kind: 'recv', payload: 'gradient', from: a.chunk + 1, to: a.chunk, micro: a.micro, peer: chunkRank(a.chunk + 1, pp) }];
      return [];
    };
    const makes = (a: ComputeAction): PipeAction[] => {
      if (a.kind === 'forward' && a.chunk < C - 1) return [{ kind: 'send', payload: 'activation', from: a.chunk, to: a.chunk + 1, micro: a.micro, peer: chunkRank(a.chunk + 1, pp) }];
      if (a.kind === 'backward' && a.chunk > 0) return [{ kind: 'send', payload: 'gradient', from: a.chunk, to: a.chunk - 1, micro: a.micro, peer: chunkRank(a.chunk - 1, pp) }];
      return [];
    };
    const list: PipeAction[] = [];
    if (order.length) list.push(...needs(order[0]!));
    order.forEach((a, i) => {
      const next = order[i + 1];
      if (next) list.push(...needs(next)); // posted before this compute: arrives while it runs
      list.push(a, ...makes(a));
    });
    ranks.push(list);
  }
  return { kind, ...shape, ranks };
}

export interface Simulation {
  /** finish time of the whole step (forward = 1 unit, backward = `backwardCost` units, transfers free) */
  makespan: number;
  /** idle fraction of the step, averaged over ranks: 1 - busy / (pp · makespan) */
  bubbleFraction: number;
  /** most micro-batch chunks forwarded and not yet backwarded at once, per rank */
  maxInFlight: number[];
}

/**
 * Checks a schedule and measures its ideal timing: every (chunk, micro-batch) is forwarded and
 * backwarded exactly once on the rank holding the chunk, its forward before its backward; every send
 * has exactly one matching receive on the peer; and executing the lists (computes wait for their
 * inputs; sends and receives never block) finishes. Throws a one-line error naming the first problem.
 * `cost(chunk, kind)` gives compute times (default 1 forward, 2 backward).
 */
export function simulate(s: PipelineSchedule, cost: (chunk: number, kind: 'forward' | 'backward') => number = (_c, k) => (k === 'forward' ? 1 : 2)): Simulation {
  const { pp, vpp, microBatches: m } = s;
  const C = pp * vpp;
  const key = (payload: Payload, to: number, micro: number) => `${payload}:${to}:${micro}`;
  const sends = new Map<string, number>(), recvs = new Map<string, number>();
  const seen = new Set<string>();
  s.ranks.forEach((list, r) => {
    const forwarded = new Set<string>();
    for (const a of list) {
      if (isCompute(a)) {
        if (chunkRank(a.chunk, pp) !== r) throw new Error(`schedule: rank ${r} runs chunk ${a.chunk}, which lives on rank ${chunkRank(a.chunk, pp)}`);
        const id = `${a.kind}:${a.chunk}:${a.micro}`;
        if (seen.has(id)) throw new Error(`schedule: ${a.kind} of chunk ${a.chunk}, micro-batch ${a.micro} appears twice`);
        seen.add(id);
        if (a.kind === 'forward') forwarded.add(`${a.chunk}:${a.micro}`);
        else if (!forwarded.has(`${a.chunk}:${a.micro}`)) throw new Error(`schedule: rank ${r} runs the backward of chunk ${a.chunk}, micro-batch ${a.micro} before its forward`);
      } else {
        const owner = a.kind === 'send' ? a.from : a.to;
        const other = a.kind === 'send' ? a.to : a.from;
        if (chunkRank(owner, pp) !== r || chunkRank(other, pp) !== a.peer) throw new Error(`schedule: rank ${r}'s ${a.kind} of ${a.payload} ${a.from}→${a.to} names the wrong ranks`);
        const map = a.kind === 'send' ? sends : recvs;
        const k = key(a.payload, a.to, a.micro);
        map.set(k, (map.get(k) ?? 0) + 1);
      }
    }
  });
  for (let c = 0; c < C; c++)
    for (let i = 0; i < m; i++)
      for (const kind of ['forward', 'backward']) if (!seen.has(`${kind}:${c}:${i}`)) throw new Error(`schedule: nobody runs the ${kind} of chunk ${c}, micro-batch ${i}`);
  for (const [k, n] of sends) if (recvs.get(k) !== n) throw new Error(`schedule: ${n} send(s) of ${k} but ${recvs.get(k) ?? 0} matching receive(s)`);
  for (const [k, n] of recvs) if (sends.get(k) !== n) throw new Error(`schedule: ${n} receive(s) of ${k} but ${sends.get(k) ?? 0} matching send(s)`);

  // event simulation: a compute starts when its rank is free and its input has arrived
  const arrived = new Map<string, number>(); // transfer key → time the sender finished producing it
  const pc = s.ranks.map(() => 0), clock = s.ranks.map(() => 0), busy = s.ranks.map(() => 0);
  const inFlight = s.ranks.map(() => 0), maxInFlight = s.ranks.map(() => 0);
  let progress = true;
  while (progress) {
    progress = false;
    for (let r = 0; r < pp; r++) {
      const list = s.ranks[r]!;
      while (pc[r]! < list.length) {
        const a = list[pc[r]!]!;
        if (!isCompute(a)) {
          if (a.kind === 'send') arrived.set(key(a.payload, a.to, a.micro), clock[r]!);
        } else {
          const input = a.kind === 'forward' ? (a.chunk > 0 ? key('activation', a.chunk, a.micro) : null) : a.chunk < C - 1 ? key('gradient', a.chunk, a.micro) : null;
          if (input !== null && !arrived.has(input)) break;
          const start = Math.max(clock[r]!, input === null ? 0 : arrived.get(input)!);
          const t = cost(a.chunk, a.kind);
          clock[r] = start + t;
          busy[r]! += t;
          inFlight[r]! += a.kind === 'forward' ? 1 : -1;
          maxInFlight[r] = Math.max(maxInFlight[r]!, inFlight[r]!);
        }
        pc[r]!++;
        progress = true;
      }
    }
  }
  const stuck = pc.findIndex((p, r) => p < s.ranks[r]!.length);
  if (stuck >= 0) {
    const a = s.ranks[stuck]![pc[stuck]!]! as ComputeAction;
    throw new Error(`schedule: deadlock — rank ${stuck} waits forever at ${a.kind} of chunk ${a.chunk}, micro-batch ${a.micro}`);
  }
  const makespan = Math.max(...clock);
  const bubbleFraction = 1 - busy.reduce((x, y) => x + y, 0) / (pp * makespan);
  return { makespan, bubbleFraction, maxInFlight };
}
