// Pipeline-parallel training step over the pipeline group (mesh.pp): this rank holds the model chunks
// of its pipeline position (pipeline-partition.ts) — the same Transformer, with the parameters of the
// other ranks' chunks dropped — and runs its list of the step's schedule (pipeline-schedule.ts):
//   recv      posts a nonblocking receive of an activation or gradient (one compute ahead)
//   forward   chunk 0 embeds the micro-batch's ids, others run their layers on the received
//             activation (a leaf collecting its gradient, `stageInput`); the last chunk adds the head
//             and the cross-entropy. Every micro-batch's graph stays live until its backward.
//   send      issues a nonblocking send of the output (activation) or of the input's gradient
//   backward  `backward(loss)` on the last chunk, `backward(output, receivedGradient)` elsewhere:
//             only that micro-batch's graph is walked and freed.
// After the schedule: tied embeddings (held by the first and last chunk) exchange and add their
// gradients, the global gradient norm sums every stage's squares over the group (the tied weight
// counted once), and each rank runs AdamW on its own parameters. The step's loss is the last chunk's,
// summed over the group so every rank reports it.
import type { TokenLoader } from '../data/loader.js';
import type { Transformer } from '../nn/transformer.js';
import { type AdamWConfig, AdamW, clippedGradScale } from '../optim/adamw.js';
import { backward, detach, noGrad, stageInput } from '../tensor/autograd.js';
import type { ValLoaderFactory } from '../train/evaluate.js';
import * as T from '../tensor/ops.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { StepResult } from '../train/step.js';
import type { NamedTensor, NamedTensors } from '../train/safetensors.js';
import { rankFileName, type ShardedTensor } from '../train/checkpoint-shards.js';
import type { ShardSource } from './dist-checkpoint.js';
import type { Communicator } from './communicator.js';
import { type ChunkPart, partitionChunks } from './pipeline-partition.js';
import { type PipelineSchedule, type ScheduleKind, buildSchedule, chunkRank, isCompute, transferTag } from './pipeline-schedule.js';

export interface PipelineOptions {
  vpp: number;
  schedule: ScheduleKind;
  adamw: AdamWConfig;
}

/** Names of the parameters the chunks `parts` use. */
export function chunkParamNames(model: Transformer, parts: readonly ChunkPart[]): Set<string> {
  const names = new Set<string>();
  const tied = model.config.tiedEmbeddings;
  for (const p of parts) {
    if (p.embedding) names.add('tok_embeddings.weight');
    for (let i = p.lo; i < p.hi; i++) for (const n of model.params.tensors.keys()) if (n.startsWith(`layers.${i}.`)) names.add(n);
    if (p.head) {
      names.add('norm.weight');
      names.add(tied ? 'tok_embeddings.weight' : 'output.weight');
    }
  }
  return names;
}

interface InFlight {
  /** the chunk's input leaf (null on chunk 0) */
  input: Tensor | null;
  /** the chunk's output (an activation) or, on the last chunk, the loss */
  output: Tensor;
}

export class PipelineParallel {
  readonly parts: ChunkPart[];
  /** this rank's chunks */
  readonly local: number[];
  readonly opt: AdamW;
  /** the parameter this rank holds only as a duplicate for the norm (tied embedding on the last stage) */
  private readonly duplicate: string | null;
  private readonly tiedPeer: number | null;
  private readonly dModel: number;
  /** seconds this rank waited for inputs in the last step (exposed communication + bubble) */
  lastWaitS = 0;
  /** seconds of the last step's schedule (forwards, backwards and transfers; without the optimizer) */
  lastPipelineS = 0;
  /** every parameter of the whole model: its shape and the pipeline rank that saves it (the first chunk using it) */
  readonly owners = new Map<string, { rank: number; shape: number[] }>();

  constructor(
    readonly model: Transformer,
    readonly comm: Communicator,
    readonly opts: PipelineOptions,
  ) {
    const c = model.config;
    const pp = comm.size;
    if (c.moe) throw new Error('pipeline parallelism does not run Mixture-of-Experts models yet (their balancing loss and routing loads span stages); use --pp 1');
    this.parts = partitionChunks(c.layers, pp * opts.vpp);
    this.local = this.parts.map((_, j) => j).filter((j) => chunkRank(j, pp) === comm.rank);
    this.parts.forEach((part, j) => {
      for (const name of chunkParamNames(model, [part]))
        if (!this.owners.has(name)) this.owners.set(name, { rank: chunkRank(j, pp), shape: [...model.params.get(name).shape] });
    });
    const mine = chunkParamNames(model, this.local.map((j) => this.parts[j]!));
    for (const [name, t] of [...model.params.tensors]) {
      if (mine.has(name)) continue;
      t.dispose();
      model.params.tensors.delete(name);
    }
    const last = chunkRank(this.parts.length - 1, pp);
    const tiedShared = c.tiedEmbeddings && last !== 0;
    this.tiedPeer = !tiedShared ? null : comm.rank === 0 ? last : comm.rank === last ? 0 : null;
    this.duplicate = tiedShared && comm.rank === last ? 'tok_embeddings.weight' : null;
    this.dModel = c.dModel;
    this.opt = new AdamW(model.params, { ...opts.adamw, clipNorm: 0 });
  }

  /** The layout as a checkpoint shard source: each parameter (and its moments) whole, in its owner's file. */
  shards(): ShardSource {
    const names = [...this.owners.keys()].sort();
    const flat = async (t: Tensor): Promise<NamedTensor> => ({ dtype: 'f32', shape: [t.numel], data: Float32Array.from((await t.data()) as Float32Array) });
    return {
      pieces: async () => {
        const out: NamedTensors = {};
        for (const [name, o] of this.owners) {
          if (o.rank !== this.comm.rank) continue;
          out[name] = await flat(this.model.params.get(name));
          out[`${name}.m`] = await flat(this.opt.m.get(name)!);
          out[`${name}.v`] = await flat(this.opt.v.get(name)!);
        }
        return out;
      },
      index: () => {
        const tensors: Record<string, ShardedTensor> = {};
        for (const [name, o] of this.owners) {
          const numel = o.shape.reduce((a, b) => a * b, 1);
          for (const key of [name, `${name}.m`, `${name}.v`]) tensors[key] = { shape: o.shape, dtype: 'f32', pieces: [{ file: rankFileName(o.rank), key, start: 0, numel }] };
        }
        return { world: this.comm.size, zero: 0, tensors };
      },
      params: names,
      extra: [],
      state: { step: this.opt.step, config: this.opts.adamw },
    };
  }

  /** Runs one optimizer step of `accum` micro-batches through the pipeline. */
  async runStep(loader: TokenLoader, accum: number, lr: number): Promise<StepResult> {
    const be = this.model.backend;
    const pp = this.comm.size;
    const C = this.parts.length;
    const schedule: PipelineSchedule = buildSchedule(this.opts.schedule, { pp, vpp: this.opts.vpp, microBatches: accum });
    // every stage reads the same rows (the first needs the ids, the last the targets) so the loader advances alike
    const batches = Array.from({ length: accum }, () => loader.next());
    const B = loader.batch, S = loader.seqLen;
    const inflight = new Map<string, InFlight>();
    const pending = new Map<string, { buf: Tensor; done: Promise<void> }>();
    const sends: Promise<void>[] = [];
    /** the send of each activation still travelling (its output is freed once both it and the chunk's backward are done) */
    const sending = new Map<Tensor, Promise<void>>();
    const ces: Tensor[] = [];
    const id = (chunk: number, micro: number) => `${chunk}:${micro}`;
    let waitS = 0;
    const t0 = performance.now();
    const wait = async (p: Promise<void>) => {
      const t0 = performance.now();
      await p;
      waitS += (performance.now() - t0) / 1000;
    };

    // a send or receive reaches MPI only when JavaScript yields (the communicator issues calls in
    // promise callbacks): yield before each compute that follows one, or a chain of forwards without
    // a wait would hold every send back until its end and serialise the pipeline
    let unposted = false;
    for (const a of schedule.ranks[this.comm.rank]!) {
      if (isCompute(a) && unposted) {
        await new Promise((r) => setImmediate(r));
        unposted = false;
      }
      if (!isCompute(a)) {
        unposted = true;
        const tag = transferTag(a.payload, a.to, a.micro, C);
        if (a.kind === 'recv') {
          const buf = keep(T.empty(be, [B * S, this.dModel]));
          pending.set(`${a.payload}:${id(a.to, a.micro)}`, { buf, done: this.comm.recv(buf, a.peer, tag) });
        } else {
          const f = inflight.get(id(a.from, a.micro))!;
          const buf = a.payload === 'activation' ? f.output : f.input!.grad!;
          const sent = this.comm.send(buf, a.peer, tag);
          sends.push(sent);
          // a gradient is sent after its backward: nothing reads it once it has left (a failure surfaces through `sends`)
          if (a.payload === 'gradient') void sent.then(() => buf.dispose(), () => {});
          else sending.set(buf, sent);
        }
        continue;
      }
      const part = this.parts[a.chunk]!;
      if (a.kind === 'forward') {
        let input: Tensor | null = null;
        if (a.chunk > 0) {
          const r = pending.get(`activation:${id(a.chunk, a.micro)}`)!;
          pending.delete(`activation:${id(a.chunk, a.micro)}`);
          await wait(r.done);
          input = stageInput(r.buf);
        }
        const b = batches[a.micro]!;
        const output = tidy(() => {
          // the layers consume (dispose) their input; the leaf object still collects its gradient
          let x = input ?? this.model.embed(T.tensor(be, b.input, [B, S], 'i32'));
          x = this.model.forwardLayers(x, part.lo, part.hi, B, S).x;
          if (!part.head) return x;
          const ce = T.crossEntropy(this.model.head(x), T.tensor(be, b.target, [b.target.length], 'i32'));
          ces.push(keep(detach(ce)));
          return ce;
        });
        inflight.set(id(a.chunk, a.micro), { input, output: keep(output) });
      } else {
        const f = inflight.get(id(a.chunk, a.micro))!;
        if (part.head) tidy(() => backward(f.output));
        else {
          const r = pending.get(`gradient:${id(a.chunk, a.micro)}`)!;
          pending.delete(`gradient:${id(a.chunk, a.micro)}`);
          await wait(r.done);
          if (f.output.node) {
            tidy(() => backward(f.output, r.buf));
            r.buf.dispose();
          } else f.input!.grad = r.buf; // a chunk without layers passes its gradient through
        }
        // freed as soon as they can be, not at the end of the step (which would hold every micro-batch's
        // boundary tensors at once): the output once its send is done, the input now, its gradient once sent
        const out = f.output;
        void (sending.get(out) ?? Promise.resolve()).then(() => out.dispose(), () => {});
        sending.delete(out);
        if (f.input && f.input !== f.output) f.input.dispose();
      }
    }
    await wait(Promise.all(sends).then(() => undefined));
    this.lastWaitS = waitS;
    this.lastPipelineS = (performance.now() - t0) / 1000;

    if (this.tiedPeer !== null) await this.addTiedGradient(this.tiedPeer);
    // global gradient norm over the group (the tied weight counted once), one all-reduce
    const stats = Float32Array.of((await this.opt.gradNorm((name) => name === this.duplicate)) ** 2, 0);
    for (const ce of ces) stats[1]! += await ce.item();
    for (const ce of ces) ce.dispose();
    await this.comm.allReduce(stats);
    const gradScale = 1 / accum;
    const rawNorm = Math.sqrt(stats[0]!) * gradScale;
    await this.opt.update(lr, clippedGradScale(rawNorm, gradScale, this.opts.adamw.clipNorm));
    this.model.params.zeroGrad();
    return { loss: stats[1]! / accum, aux: 0, gradNorm: rawNorm };
  }

  /** First and last stage both hold the tied embedding: each adds the other's gradient. */
  private async addTiedGradient(peer: number): Promise<void> {
    const p = this.model.params.get('tok_embeddings.weight');
    const mine = p.grad ?? keep(T.zerosLike(p));
    p.grad = mine;
    const theirs = keep(T.empty(p.backend, p.shape));
    const tag = 32767;
    await Promise.all([this.comm.send(mine, peer, tag), this.comm.recv(theirs, peer, tag)]);
    // rank 0 adds (first + last), the last stage (last + first): the same f32 sum either way
    T.accumulateInto(mine, theirs);
    theirs.dispose();
  }

  /**
   * Validation loss through the pipeline: each batch goes chunk by chunk (forward only, no
   * schedule), the last chunk's cross-entropy is shared by all ranks. Same batches as validationLoss.
   */
  async validationLoss(openVal: ValLoaderFactory, batches: number): Promise<number> {
    const loader = openVal();
    try {
      const be = this.model.backend, B = loader.batch, S = loader.seqLen, pp = this.comm.size, C = this.parts.length;
      let sum = 0;
      for (let i = 0; i < batches; i++) {
        const b = loader.next();
        for (const j of this.local) {
          const part = this.parts[j]!;
          let input: Tensor | null = null;
          if (j > 0) {
            input = keep(T.empty(be, [B * S, this.dModel]));
            await this.comm.recv(input, chunkRank(j - 1, pp), transferTag('activation', j, 0, C));
          }
          const out = noGrad(() =>
            tidy(() => {
              const x = this.model.forwardLayers(input ?? this.model.embed(T.tensor(be, b.input, [B, S], 'i32')), part.lo, part.hi, B, S).x;
              return part.head ? T.crossEntropy(this.model.head(x), T.tensor(be, b.target, [b.target.length], 'i32')) : x;
            }),
          );
          if (part.head) sum += await out.item();
          else await this.comm.send(out, chunkRank(j + 1, pp), transferTag('activation', j + 1, 0, C));
          out.dispose();
        }
      }
      const total = Float32Array.of(sum);
      await this.comm.allReduce(total);
      return total[0]! / batches;
    } finally {
      loader.close();
    }
  }

  /** Loads this rank's parameters and moments from a whole checkpoint (any layout it was saved under). */
  restoreTensors(tensors: NamedTensors): NamedTensors {
    const out: NamedTensors = {};
    for (const name of this.model.params.tensors.keys()) if (tensors[name]) out[name] = tensors[name]!;
    return out;
  }

  dispose(): void {
    this.opt.dispose();
  }
}
