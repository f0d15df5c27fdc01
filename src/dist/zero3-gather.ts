// ZeRO-3 parameter gathering. Between steps a rank holds only its chunk of every parameter; a
// parameter's full tensor exists only while something computes with it.
//
// Units: the parameters of each decoder block form one unit (`layers.<i>.*`); the rest (token
// embedding, final norm, output projection) form the root unit, gathered at the start of the step
// and held to its end (the first and last things the step computes with, as FSDP's root module).
// A unit travels as one all-gather of the ranks' packed chunks (the rank-major layout of
// shard-layout.ts) and is unpacked into fresh leaf tensors that replace the parameter store's
// entries, so the model reads them by name as usual.
//
// LayerwiseGather drives the blocks through the model's block hook: before block i computes it
// waits for unit i (blocking, natively: the collective was issued earlier and progressed while
// JavaScript computed) and issues unit i+1 (the prefetch), after block i it frees unit i. At most
// two units are materialised at once: the one computing and the one arriving. Backward:
//   - with activation recomputation, the graph keeps no weights (each block is re-run in backward),
//     so a pre-backward hook on each block's output gathers unit i again just before the block's
//     backward and prefetches unit i-1; the last block is kept from its forward to its backward.
//     Each re-gathered weight is freed as soon as its gradient is final (the grad-ready hook of
//     data-parallel.ts), so again about two units are live;
//   - without recomputation the graph itself holds each block's weights as saved tensors until the
//     block's backward consumes them (freeing our handle after the block's forward releases nothing
//     then), so backward needs no gather: ZeRO-3 then saves the weights between steps and during the
//     optimizer update, but the forward's peak still holds every weight (see docs/distributed.md).
// All gathers go to a communicator of their own, so their order (units 0..L-1 forward, L-1..0
// backward: the same on every rank) never interleaves with the gradient buckets, whose issue point
// depends on when a rank's gradients become final (MoE routing differs between ranks).
import type { Backend } from '../backend/contract.js';
import type { BlockHook, Transformer } from '../nn/transformer.js';
import { beforeBackward } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';
import { type Bucket, ownedRange, planShards } from './shard-layout.js';

/** An all-gather of one unit in flight: this rank's packed chunks, the gathered buffer, and its Promise. */
export interface UnitGather {
  unit: Bucket;
  mine: Tensor;
  flat: Tensor;
  done: Promise<void>;
}

function copy1d(src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, n: number): void {
  if (n > 0) src.backend.copyStrided(src.buf, srcOffset, [1], dst.buf, dstOffset, [1], [n]);
}

/** The gather unit of a set of parameters: their chunks packed in one region (one bucket with no cap). */
export function gatherUnit(params: readonly { name: string; numel: number }[], world: number, rank: number): Bucket {
  return planShards(params, world, rank, Infinity).buckets[0] ?? { index: 0, slots: [], regionNumel: 0 };
}

/** Packs this rank's chunks of the unit's parameters and issues their all-gather on comm. */
export function issueGather(be: Backend, comm: Communicator, unit: Bucket, chunks: ReadonlyMap<string, Tensor>): UnitGather {
  const mine = keep(T.zeros(be, [unit.regionNumel]));
  for (const s of unit.slots) copy1d(chunks.get(s.name)!, 0, mine, s.offset, s.chunk);
  const flat = keep(T.empty(be, [comm.size * unit.regionNumel]));
  return { unit, mine, flat, done: comm.allGather(mine, flat) };
}

/** After the gather completed: every parameter of the unit into target(name), the buffers freed. */
export function unpackGather(g: UnitGather, world: number, target: (name: string) => Tensor): void {
  for (const s of g.unit.slots) {
    const dst = target(s.name);
    for (let r = 0; r < world; r++) {
      const { start, end } = ownedRange(s.numel, world, r);
      copy1d(g.flat, r * g.unit.regionNumel + s.offset, dst, start, end - start);
    }
  }
  g.mine.dispose();
  g.flat.dispose();
}

/** A gathered parameter: a fresh leaf that takes the parameter's place in the store. */
export function gatheredLeaf(be: Backend, name: string, shape: readonly number[]): Tensor {
  const t = keep(T.empty(be, shape));
  t.requiresGrad = true;
  t.name = name;
  return t;
}

/** Whether a parameter belongs to a decoder block (else to the root unit). */
export function isBlockParam(name: string): boolean {
  return /^layers\.\d+\./.test(name);
}

/** What LayerwiseGather reports (tests count live gathered bytes and check the prefetch order with it). */
export interface GatherEvent {
  /** issue: a unit's all-gather was issued (tensors: its gathered buffer); ready: the unit's leaves are in the store; compute: the block computes now */
  phase: 'issue' | 'ready' | 'compute';
  pass: 'forward' | 'backward';
  block: number;
  tensors: readonly Tensor[];
}

export class LayerwiseGather {
  private readonly units: Bucket[];
  private readonly inflight = new Map<number, UnitGather>();
  private readonly live = new Map<number, Tensor[]>();
  /** every gather's Promise (settled by the end of the step) */
  readonly issued: Promise<void>[] = [];
  /** seconds JavaScript spent blocked waiting for a gather */
  waitS = 0;

  constructor(
    private readonly model: Transformer,
    private readonly comm: Communicator,
    private readonly chunks: ReadonlyMap<string, Tensor>,
    private readonly recompute: boolean,
    /** the gradient accumulated so far over the step's micro-batches, which a re-gathered leaf continues */
    private readonly accumulated: (name: string) => Tensor | undefined,
    private readonly observe?: (e: GatherEvent) => void,
  ) {
    if (!comm.waitSync) throw new Error(`ZeRO-3 layer-by-layer gathering needs a communicator that can wait synchronously ('${comm.name}' cannot)`);
    const layers = model.config.layers;
    this.units = Array.from({ length: layers }, (_, i) =>
      gatherUnit([...model.params.tensors].filter(([n]) => n.startsWith(`layers.${i}.`)).map(([name, t]) => ({ name, numel: t.numel })), comm.size, comm.rank),
    );
  }


  /** The model's block hook while a training forward runs. */
  readonly hook: BlockHook = (i, phase, x) => {
    if (phase === 'before') {
      this.materialise(i, 'forward');
      if (i + 1 < this.units.length) this.issue(i + 1, 'forward');
      this.observe?.({ phase: 'compute', pass: 'forward', block: i, tensors: [] });
      return x;
    }
    // the last block's weights are the first the recomputing backward needs: kept
    if (!(this.recompute && i === this.units.length - 1)) this.release(i);
    return this.recompute ? beforeBackward(x, () => this.beforeBlockBackward(i)) : x;
  };

  /** Before a micro-batch's forward: the first block's gather. */
  startForward(): void {
    this.issue(0, 'forward');
  }

  /** After a micro-batch's backward: frees whatever is left (weights no gradient reached). */
  endBackward(): void {
    for (const i of [...this.live.keys()]) this.release(i);
    for (const [i, g] of this.inflight) {
      this.comm.waitSync!(g.done);
      g.mine.dispose();
      g.flat.dispose();
      this.inflight.delete(i);
    }
  }

  private beforeBlockBackward(i: number): void {
    if (this.live.has(i + 1)) this.release(i + 1);
    this.materialise(i, 'backward');
    if (i > 0) this.issue(i - 1, 'backward');
    this.observe?.({ phase: 'compute', pass: 'backward', block: i, tensors: [] });
  }

  private issue(i: number, pass: GatherEvent['pass']): void {
    if (this.inflight.has(i) || this.live.has(i)) return;
    const g = issueGather(this.model.backend, this.comm, this.units[i]!, this.chunks);
    this.inflight.set(i, g);
    this.issued.push(g.done);
    this.observe?.({ phase: 'issue', pass, block: i, tensors: [g.flat] });
  }

  /** Unit i's leaves in the parameter store (waiting for its gather, issuing it first if nobody did). */
  private materialise(i: number, pass: GatherEvent['pass']): void {
    if (this.live.has(i)) return;
    this.issue(i, pass);
    const g = this.inflight.get(i)!;
    this.inflight.delete(i);
    const t0 = performance.now();
    this.comm.waitSync!(g.done);
    this.waitS += (performance.now() - t0) / 1000;
    const ps = this.model.params;
    const leaves: Tensor[] = [];
    unpackGather(g, this.comm.size, (name) => {
      const t = gatheredLeaf(this.model.backend, name, ps.get(name).shape);
      t.grad = this.accumulated(name) ?? null;
      ps.tensors.set(name, t);
      leaves.push(t);
      return t;
    });
    this.live.set(i, leaves);
    this.observe?.({ phase: 'ready', pass, block: i, tensors: leaves });
  }

  /** Drops this rank's handles on unit i's weights (their gradients were taken by the grad-ready hook). */
  private release(i: number): void {
    for (const t of this.live.get(i) ?? []) t.dispose();
    this.live.delete(i);
  }
}
