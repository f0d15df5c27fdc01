// Pipeline-parallel training step over the pipeline group (mesh.pp), composed with tensor and data
// parallelism on the process mesh (mesh.ts, tp-cp-dp-pp). This rank holds the model chunks of its
// pipeline position (pipeline-partition.ts) — the same Transformer, with the parameters of the other
// ranks' chunks dropped, and with --tp the remaining ones cut to its tensor-parallel shards by the tp
// plan (tensor-parallel.ts, whose block forward the chunks then run) — and runs its list of the
// step's schedule (pipeline-schedule.ts):
//   recv      posts a nonblocking receive of an activation or gradient (one compute ahead)
//   forward   chunk 0 embeds the micro-batch's ids, others run their layers on the received
//             activation (a leaf collecting its gradient, `stageInput`); the last chunk adds the head
//             and the cross-entropy. Every micro-batch's graph stays live until its backward.
//   send      issues a nonblocking send of the output (activation) or of the input's gradient
//   backward  `backward(loss)` on the last chunk, `backward(output, receivedGradient)` elsewhere:
//             only that micro-batch's graph is walked and freed. A chunk's MoE balancing loss is
//             added to its backward root (its gradient does not travel between stages).
// Each tp rank exchanges activations with the same tp rank of the neighbouring stages (with --sp its
// own block of tokens). After the schedule: tied embeddings (held by the first and last chunk)
// exchange and add their gradients; with --sp the replicated norms' gradients are summed over tp;
// every gradient is summed over the data-parallel replicas (dp group; with ZeRO-1 reduce-scattered,
// each replica getting its chunk, zero-one.ts); the global gradient norm sums the squares over tp × pp
// (the mesh's mp group; with ZeRO-1 over dp too), replicated norms and the tied weight counted once;
// each rank runs AdamW on its own parameters (with ZeRO-1 on its dp chunk of them).
// The step's loss is the last chunk's, summed over the pipeline and averaged over the replicas.
// What a chunk computes (whole layers or tp shards) is pipeline-compute.ts; MoE layers with their
// experts over the ep group (composed with tp, cp, pp and dp, ZeRO-1 per replica group) are
// expert-layers.ts. With --cp each rank of a stage (and tp shard) holds its two load-balanced chunks
// of every row and attends by ring over the cp group (context-parallel-compute.ts; its MoE layers'
// routed experts run through expert-layers.ts's dispatcher under --ep); the activations passed are
// its tokens (/cp, /tp with --sp) and its replicas are the dp·cp group (gradients summed, ZeRO-1
// sharded, loss averaged over them).
import type { TokenLoader } from '../data/loader.js';
import type { Transformer } from '../nn/transformer.js';
import { type AdamWConfig, AdamW, clippedGradScale } from '../optim/adamw.js';
import { detach, noGrad, noGradAsync, stageInput } from '../tensor/autograd.js';
import type { ValLoaderFactory } from '../train/evaluate.js';
import * as T from '../tensor/ops.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { StepOptions, StepResult } from '../train/step.js';
import type { NamedTensor, NamedTensors } from '../train/safetensors.js';
import { boxPiece, rankFileName, type ShardedTensor } from '../train/checkpoint-shards.js';
import type { ShardSource } from './dist-checkpoint.js';
import type { OptimizerState } from '../train/checkpoint.js';
import { restoreModel, restoreOptimizer, routerBiasTensors } from '../train/train-state.js';
import type { Communicator } from './communicator.js';
import { type ChunkPart, partitionChunks } from './pipeline-partition.js';
import { type ChunkCompute, get, runFlow, shardedLayers, wholeLayers } from './pipeline-compute.js';
import { contextParallelLayers } from './context-parallel-compute.js';
import { type PipelineSchedule, type ScheduleKind, buildSchedule, chunkRank, isCompute, transferTag } from './pipeline-schedule.js';
import { ProcessMesh } from './mesh.js';
import { reduceGradsOverReplicas } from './replica-grads.js';
import { TensorParallel } from './tensor-parallel.js';
import { shardDimOf, shardKindOf, type TensorParallelConfig } from './tensor-parallel-plan.js';
import { ZeroOneAdamW } from './zero-one.js';
import { ExpertLayers, isExpertParam, replicaGroupOf } from './expert-layers.js';
import type { PipelineTrace } from './pipeline-trace.js';
import { zeroCopy } from './buffers.js';

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

/** The groups a pipeline stage composes with (all optional: a pipeline alone over `comm`). */
export interface PipelineGroups {
  /** cuts the stage's parameters to this rank's tensor-parallel shards (called once the other stages' are dropped) */
  tensorParallel?: ((model: Transformer) => TensorParallel) | null;
  /** the data-parallel replicas of this stage and shard (gradients summed, loss averaged) */
  dp?: Communicator | null;
  /** tp × pp: where the gradient norm's squares are summed (default: the pipeline group) */
  mp?: Communicator;
  /** optimizer over the stage's parameters (default: AdamW; ZeRO-1 passes its sharded one) */
  optimizer?: ((model: Transformer, config: AdamWConfig) => AdamW) | null;
  /** drops the routed experts this rank does not hold and runs MoE layers over the ep group (called after the tp cut) */
  experts?: ((model: Transformer) => ExpertLayers) | null;
  /** context parallel: the ring this rank's sequence chunks attend over (context-parallel-compute.ts); `dp` is then dp·cp */
  cp?: Communicator | null;
}

/** The run's layout for PipelineParallel.open. */
export interface PipelineLayout extends PipelineOptions {
  tensorParallel: TensorParallelConfig | null;
  dp: number;
  /** context-parallel ranks per replica (default 1) */
  cp?: number;
  /** tokens of a micro-batch (checked against --sp) */
  microBatchTokens: number;
  /** 1: AdamW moments sharded over the dp replicas (zero-one.ts); 0: whole on every replica */
  zero: number;
  /** expert parallel degree (folds inside tp·dp; default 1) */
  ep?: number;
}

interface InFlight {
  /** the chunk's input leaf (null on chunk 0) */
  input: Tensor | null;
  /** the chunk's output (an activation) or, on the last chunk, the loss */
  output: Tensor;
  /** the chunk's MoE balancing loss (null: none, or already in the last chunk's output) */
  aux: Tensor | null;
}

export class PipelineParallel {
  readonly parts: ChunkPart[];
  /** this rank's chunks */
  readonly local: number[];
  readonly opt: AdamW;
  /** this stage's tensor-parallel shards (null: whole layers) */
  readonly tp: TensorParallel | null;
  /** MoE layers over the ep group (null: none, or MoE with every expert on every rank) */
  readonly experts: ExpertLayers | null;
  private readonly compute: ChunkCompute;
  private readonly dp: Communicator | null;
  private readonly mp: Communicator;
  /** the context-parallel ring (null: none) */
  private readonly cp: Communicator | null;
  /** the parameter this rank holds only as a duplicate for the norm (tied embedding on the last stage) */
  private readonly duplicate: string | null;
  private readonly tiedPeer: number | null;
  private readonly dModel: number;
  /** seconds this rank waited for inputs in the last step (exposed communication + bubble) */
  lastWaitS = 0;
  /** seconds of the last step's schedule (forwards, backwards and transfers; without the optimizer) */
  lastPipelineS = 0;
  /** when set, each compute of the schedule is timed into it (pipeline-trace.ts; bench/pipeline-bubble.ts) */
  trace: PipelineTrace | null = null;
  /** every parameter of the whole model: its shape and the pipeline rank that saves it (the first chunk using it) */
  readonly owners = new Map<string, { rank: number; shape: number[] }>();
  /** the pipeline rank running each decoder layer (saves its routing bias) */
  private readonly layerStage: number[] = [];

  /** Splits the mesh (tp-cp-dp-pp, collective over `world`) and builds this rank's stage of the layout. */
  static async open(model: Transformer, world: Communicator, l: PipelineLayout): Promise<PipelineParallel> {
    const tp = l.tensorParallel?.tp ?? 1, cp = l.cp ?? 1, pp = world.size / (tp * cp * l.dp), ep = l.ep ?? 1;
    // MoE under tp runs each tp rank's share of the tokens through the experts (expert-layers.ts), as does ep > 1
    const experts = !!model.config.moe && (ep > 1 || tp > 1);
    // experts whole (etp 1): expert parallelism folds inside tp·cp·dp
    const mesh = await ProcessMesh.create(world, { tp, cp, dp: l.dp, pp, ep, ...(experts ? { etp: 1 } : {}) });
    const t = l.tensorParallel;
    // the replicas are dp·cp: every rank holding the same weights sums its gradients with them
    const replicas = mesh.dpCp;
    const groupOf = experts ? replicaGroupOf(replicas, mesh.edp) : undefined;
    return new PipelineParallel(model, mesh.pp, l, {
      tensorParallel: t && t.tp > 1 ? (m) => new TensorParallel(m, mesh.tp, t.sp, l.microBatchTokens / cp) : null,
      dp: replicas.size > 1 ? replicas : null,
      mp: mesh.mp,
      optimizer: l.zero === 1 && replicas.size > 1 ? (m, config) => new ZeroOneAdamW(m.params, config, replicas, groupOf) : null,
      experts: experts ? (m) => new ExpertLayers(m, { ep: mesh.ep, edp: mesh.edp, stageRanks: world.size / pp }) : null,
      cp: cp > 1 ? mesh.cp : null,
    });
  }

  constructor(
    readonly model: Transformer,
    readonly comm: Communicator,
    readonly opts: PipelineOptions,
    groups: PipelineGroups = {},
  ) {
    const c = model.config;
    const pp = comm.size;
    this.parts = partitionChunks(c.layers, pp * opts.vpp);
    this.local = this.parts.map((_, j) => j).filter((j) => chunkRank(j, pp) === comm.rank);
    this.parts.forEach((part, j) => {
      for (let i = part.lo; i < part.hi; i++) this.layerStage[i] = chunkRank(j, pp);
      for (const name of chunkParamNames(model, [part]))
        if (!this.owners.has(name)) this.owners.set(name, { rank: chunkRank(j, pp), shape: [...model.params.get(name).shape] });
    });
    const mine = chunkParamNames(model, this.local.map((j) => this.parts[j]!));
    for (const [name, t] of [...model.params.tensors]) {
      if (mine.has(name)) continue;
      t.dispose();
      model.params.tensors.delete(name);
    }
    this.tp = groups.tensorParallel?.(model) ?? null;
    this.experts = groups.experts?.(model) ?? null;
    this.cp = groups.cp && groups.cp.size > 1 ? groups.cp : null;
    // under cp the MoE layers are context-parallel-compute.ts's (their routed experts through the ep dispatcher)
    const base = this.cp ? contextParallelLayers(model, this.cp, this.tp, this.experts?.runner()) : this.tp ? shardedLayers(this.tp) : wholeLayers(model);
    this.compute = this.experts && !this.cp ? this.experts.compute(base, this.tp) : base;
    this.dp = groups.dp && groups.dp.size > 1 ? groups.dp : null;
    this.mp = groups.mp ?? comm;
    const last = chunkRank(this.parts.length - 1, pp);
    const tiedShared = c.tiedEmbeddings && last !== 0;
    this.tiedPeer = !tiedShared ? null : comm.rank === 0 ? last : comm.rank === last ? 0 : null;
    this.duplicate = tiedShared && comm.rank === last ? 'tok_embeddings.weight' : null;
    this.dModel = c.dModel;
    const adamw = { ...opts.adamw, clipNorm: 0 };
    this.opt = groups.optimizer ? groups.optimizer(model, adamw) : new AdamW(model.params, adamw);
  }

  private get tpRank(): number {
    return this.tp?.comm.rank ?? 0;
  }

  /** The world rank (file) of mesh coordinates tp, dp, pp (Megatron order; `dp` indexes the replicas, the dp·cp group, cp fastest). */
  private worldRank(tp: number, dp: number, pp: number): number {
    const tps = this.tp?.comm.size ?? 1;
    return tp + tps * (dp + (this.dp?.size ?? 1) * pp);
  }

  /**
   * The layout as a checkpoint shard source (collective: with ZeRO-1 the moments are gathered over
   * the replicas first): data-parallel replica 0 writes, each parameter and its moments in the files
   * of its owner stage's tp ranks — whole, or each tp rank's shard as a box of the global tensor
   * (replicated norms from tp rank 0) — and each layer's routing bias from the stage running it.
   */
  shards(): ShardSource {
    const names = [...this.owners.keys()].sort();
    const tps = this.tp?.comm.size ?? 1;
    const writer = (this.dp?.rank ?? 0) === 0;
    const dimOf = (name: string) => (this.tp ? shardDimOf(shardKindOf(name)) : null);
    const host = async (t: Tensor): Promise<NamedTensor> => ({ dtype: 'f32', shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) });
    const biases = routerBiasTensors(this.model);
    return {
      pieces: async () => {
        const out: NamedTensors = {};
        // ZeRO-1: the replicas' chunks of the moments gathered whole (collective over dp)
        const moments = this.opt instanceof ZeroOneAdamW ? await this.opt.wholeMoments() : this.opt;
        // an expert: the rank holding it in the first expert-data-parallel replica; the rest: replica 0
        const writes = (name: string) => (this.experts && isExpertParam(name) ? this.experts.writes(name) : writer && (dimOf(name) !== null || this.tpRank === 0));
        for (const [name, o] of this.owners) {
          if (o.rank !== this.comm.rank || !writes(name)) continue;
          out[name] = await host(this.model.params.get(name));
          out[`${name}.m`] = await host(moments.m.get(name)!);
          out[`${name}.v`] = await host(moments.v.get(name)!);
        }
        if (writer && this.tpRank === 0) for (const [key, t] of Object.entries(biases)) if (this.layerStage[biasLayer(key)] === this.comm.rank) out[key] = t;
        if (moments !== this.opt) for (const t of [...moments.m.values(), ...moments.v.values()]) t.dispose();
        return out;
      },
      index: () => {
        const tensors: Record<string, ShardedTensor> = {};
        for (const [name, o] of this.owners) {
          const d = dimOf(name);
          const block = o.shape.map((n, i) => (i === d ? n / tps : n));
          const tpRanks = d === null ? [0] : Array.from({ length: tps }, (_, r) => r);
          const file = (r: number) => rankFileName(this.experts && isExpertParam(name) ? this.experts.ownerRank(name, o.rank) : this.worldRank(r, 0, o.rank));
          for (const key of [name, `${name}.m`, `${name}.v`])
            tensors[key] = { shape: o.shape, dtype: 'f32', pieces: tpRanks.map((r) => boxPiece(file(r), key, o.shape, block, o.shape.map((n, i) => (i === d ? r * block[i]! : 0)))) };
        }
        for (const [key, t] of Object.entries(biases))
          tensors[key] = { shape: t.shape, dtype: 'f64', pieces: [{ file: rankFileName(this.worldRank(0, 0, this.layerStage[biasLayer(key)]!)), key, start: 0, numel: t.data.length }] };
        return { world: this.worldRank(tps - 1, (this.dp?.size ?? 1) - 1, this.comm.size - 1) + 1, zero: 0, tensors };
      },
      params: names,
      extra: Object.keys(biases).sort(),
      state: { step: this.opt.step, config: this.opts.adamw },
    };
  }

  /** Runs one optimizer step of `accum` micro-batches through the pipeline. */
  async runStep(loader: TokenLoader, accum: number, lr: number, opts: StepOptions = {}): Promise<StepResult> {
    const be = this.model.backend;
    const pp = this.comm.size;
    const C = this.parts.length;
    const schedule: PipelineSchedule = buildSchedule(this.opts.schedule, { pp, vpp: this.opts.vpp, microBatches: accum });
    // every stage reads the same rows (the first needs the ids, the last the targets) so the loader advances alike
    const batches = Array.from({ length: accum }, () => loader.next());
    const B = loader.batch, S = loader.seqLen;
    const rows = this.compute.hiddenRows(B * S);
    const inflight = new Map<string, InFlight>();
    const pending = new Map<string, { buf: Tensor; done: Promise<void>; peer: number; tag: number }>();
    const sends: Promise<void>[] = [];
    /** the send of each activation still travelling (its output is freed once both it and the chunk's backward are done) */
    const sending = new Map<Tensor, Promise<void>>();
    const ces: Tensor[] = [];
    const auxes: Tensor[] = [];
    const loads = new Map<number, number[]>();
    const id = (chunk: number, micro: number) => `${chunk}:${micro}`;
    let waitS = 0;
    const t0 = performance.now();
    /** waits for a receive (`from`: the one, so a receive posted ahead is not hurried) or for every send */
    const wait = async (p: Promise<void>, from?: { peer: number; tag: number }) => {
      const t0 = performance.now();
      this.comm.expedite?.(from?.peer, from?.tag); // idle until the transfer is done: the transport may poll without backoff
      await p;
      waitS += (performance.now() - t0) / 1000;
    };
    const trace = this.trace;
    trace?.begin();
    /** runs a compute, timed into the trace when one is attached (ready: waiting for its input from; input: in hand at) */
    const timed = <R>(a: { kind: 'forward' | 'backward'; chunk: number; micro: number }, ready: number, input: number, run: () => R | Promise<R>) =>
      trace ? trace.compute(a.kind, a.chunk, a.micro, ready, input, run) : run();

    // a send or receive on host memory is handed to MPI at its call (base.ts); one on a device buffer
    // is staged first, in promise callbacks, so it reaches MPI only when JavaScript yields: yield
    // before a compute that follows one, or a chain of forwards without a wait would hold every send
    // back until its end and serialise the pipeline (a yield when nothing needs it costs the step an
    // event-loop turn per action)
    let unposted = false;
    for (const a of schedule.ranks[this.comm.rank]!) {
      if (isCompute(a) && unposted) {
        await new Promise((r) => setImmediate(r));
        unposted = false;
      }
      if (!isCompute(a)) {
        const tag = transferTag(a.payload, a.to, a.micro, C);
        if (a.kind === 'recv') {
          const buf = keep(T.empty(be, [rows, this.dModel]));
          unposted ||= !zeroCopy(buf);
          pending.set(`${a.payload}:${id(a.to, a.micro)}`, { buf, done: this.comm.recv(buf, a.peer, tag), peer: a.peer, tag });
        } else {
          const f = inflight.get(id(a.from, a.micro))!;
          const buf = a.payload === 'activation' ? f.output : f.input!.grad!;
          unposted ||= !zeroCopy(buf);
          const sent = this.comm.send(buf, a.peer, tag);
          sends.push(sent);
          // a gradient is sent after its backward: nothing reads it once it has left (a failure surfaces through `sends`)
          if (a.payload === 'gradient') void sent.then(() => buf.dispose(), () => {});
          else sending.set(buf, sent);
        }
        continue;
      }
      const part = this.parts[a.chunk]!;
      const ready = trace?.now() ?? 0;
      if (a.kind === 'forward') {
        let input: Tensor | null = null;
        if (a.chunk > 0) {
          const r = pending.get(`activation:${id(a.chunk, a.micro)}`)!;
          pending.delete(`activation:${id(a.chunk, a.micro)}`);
          await wait(r.done, r);
          input = stageInput(r.buf);
        }
        const b = batches[a.micro]!;
        const cc = this.compute;
        const { output, aux } = await timed(a, ready, trace?.now() ?? 0, () => runFlow(cc.sync, function* () {
          const layers = yield* get(cc.layers(input ?? (yield* get(cc.embed(b.input, B, S))), part.lo, part.hi, B, S));
          if (layers.aux) auxes.push(keep(detach(layers.aux)));
          if (!part.head) return { output: layers.x, aux: layers.aux };
          const ce = yield* get(cc.headLoss(layers.x, b.target, B, S));
          ces.push(keep(detach(ce)));
          return { output: layers.aux ? T.add(ce, layers.aux) : ce, aux: null };
        }));
        for (let i = part.lo; i < part.hi; i++) addLoads(loads, i, this.model.lastLoads.get(i));
        inflight.set(id(a.chunk, a.micro), { input, output: keep(output), aux: aux && keep(aux) });
      } else {
        const f = inflight.get(id(a.chunk, a.micro))!;
        const cc = this.compute;
        if (part.head) await timed(a, ready, ready, () => runFlow(cc.sync, () => get(cc.backward(f.output))));
        else {
          const r = pending.get(`gradient:${id(a.chunk, a.micro)}`)!;
          pending.delete(`gradient:${id(a.chunk, a.micro)}`);
          await wait(r.done, r);
          if (f.output.node) {
            // with a balancing loss the root is Σ(output · received gradient) + aux: the output's gradient is exactly the received one
            await timed(a, ready, trace?.now() ?? 0, () => runFlow(cc.sync, () => get(f.aux ? cc.backward(T.add(T.sum(T.mul(f.output, r.buf)), f.aux)) : cc.backward(f.output, r.buf))));
            r.buf.dispose();
          } else f.input!.grad = r.buf; // a chunk without layers passes its gradient through
        }
        f.aux?.dispose();
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
    if (this.tp?.sequenceParallel) await this.tp.reduceReplicatedGrads();
    if (this.experts && this.tp) await this.experts.reduceSplitTokenGrads(this.tp.comm);
    // ZeRO-1: each replica gets only its chunk of the summed gradients (the norm's squares then sum over dp too)
    const zeroOne = this.opt instanceof ZeroOneAdamW ? this.opt : null;
    if (zeroOne) await zeroOne.reduceScatterGrads();
    else if (this.experts) await this.experts.reduceOverReplicas(this.dp);
    else if (this.dp) await reduceGradsOverReplicas(this.model.params.tensors, this.dp);
    // global gradient norm over tp × pp (replicated norms and the tied weight counted once), with the
    // step's loss sums (from tp rank 0 only: every tp rank holds the same), one all-reduce
    const once = (name: string) => name === this.duplicate || (this.tp !== null && this.tpRank !== 0 && shardKindOf(name) === 'replicate') || (this.experts?.outOfDenseNorm(name, this.tpRank) ?? false);
    const stats = Float32Array.of((await this.opt.gradNorm(once)) ** 2, 0, 0);
    if (this.tpRank === 0) {
      for (const ce of ces) stats[1]! += await ce.item();
      for (const aux of auxes) stats[2]! += await aux.item();
    }
    for (const t of [...ces, ...auxes]) t.dispose();
    // fault injection (world rank 0 only): the NaN reaches every rank through the sums' all-reduces
    if (opts.poisonLoss) stats[1] = NaN;
    await this.mp.allReduce(stats);
    const replicas = this.dp?.size ?? 1;
    if (this.dp) {
      const sums = zeroOne ? stats : stats.subarray(1);
      await this.dp.allReduce(sums);
    }
    // the experts' squares, each expert once (over ep, edp under ZeRO-1, and pp)
    const expertSq = this.experts ? await this.experts.expertSquares(this.opt, zeroOne !== null, this.comm) : 0;
    const gradScale = 1 / (accum * replicas);
    const rawNorm = Math.sqrt(stats[0]! + expertSq) * gradScale;
    const loss = stats[1]! / (accum * replicas), aux = stats[2]! / (accum * replicas);
    if (opts.skipNonFinite && !(Number.isFinite(loss) && Number.isFinite(rawNorm))) {
      // every rank holds the same sums, so all skip together: the step's gradients (ZeRO-1: its chunks) are dropped
      if (zeroOne) zeroOne.dropGradChunks();
      this.model.params.zeroGrad();
      return { loss, aux, gradNorm: rawNorm, skipped: true };
    }
    await this.opt.update(lr, clippedGradScale(rawNorm, gradScale, this.opts.adamw.clipNorm));
    await this.moveRouterBias(loads);
    this.model.params.zeroGrad();
    return { loss, aux, gradNorm: rawNorm };
  }

  /** Bias balancing: this stage's layers move their routing biases by the step's loads (summed over the replicas). */
  private async moveRouterBias(loads: Map<number, number[]>): Promise<void> {
    if (this.model.config.moe?.balance !== 'bias') return;
    const layers = [...loads.keys()].sort((a, b) => a - b);
    const flat = Float32Array.from(layers.flatMap((i) => loads.get(i)!));
    if (this.dp && flat.length) await this.dp.allReduce(flat);
    let at = 0;
    for (const i of layers) {
      const n = loads.get(i)!.length;
      this.model.lastLoads.set(i, Array.from(flat.subarray(at, at + n)));
      at += n;
    }
    for (const i of [...this.model.lastLoads.keys()]) if (!loads.has(i)) this.model.lastLoads.delete(i);
    this.model.updateRouterBias();
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
            input = keep(T.empty(be, [this.compute.hiddenRows(B * S), this.dModel]));
            await this.comm.recv(input, chunkRank(j - 1, pp), transferTag('activation', j, 0, C));
          }
          const cc = this.compute;
          const forward = () =>
            runFlow(cc.sync, function* () {
              const { x } = yield* get(cc.layers(input ?? (yield* get(cc.embed(b.input, B, S))), part.lo, part.hi, B, S));
              return part.head ? yield* get(cc.headLoss(x, b.target, B, S)) : x;
            });
          const out = await (cc.sync ? noGrad(forward) : noGradAsync(async () => forward()));
          if (part.head) sum += await out.item();
          else await this.comm.send(out, chunkRank(j + 1, pp), transferTag('activation', j + 1, 0, C));
          out.dispose();
        }
      }
      const total = Float32Array.of(sum);
      await this.comm.allReduce(total);
      // under cp each rank's loss is its token share's (× cp): their mean is the rows'
      if (this.cp) await this.cp.allReduce(total);
      return total[0]! / (batches * (this.cp?.size ?? 1));
    } finally {
      loader.close();
    }
  }

  /**
   * Loads this rank's parameters, moments and step from a whole checkpoint (any layout it was saved
   * under): the stage's parameters, cut to this rank's tensor-parallel shards; all routing biases.
   */
  restore(tensors: NamedTensors, s: OptimizerState | null, where: string): void {
    const cut = (all: NamedTensors) => (this.tp ? this.tp.cutTensors(this.restoreTensors(all)) : this.restoreTensors(all));
    restoreModel(this.model, cut(tensors), where);
    if (this.opt instanceof ZeroOneAdamW) this.opt.restore(this.model, s, { m: cut(s?.m ?? {}), v: cut(s?.v ?? {}) }, where);
    else restoreOptimizer(this.opt, this.model, s && { ...s, m: cut(s.m), v: cut(s.v) }, where);
  }

  /** The entries of a whole checkpoint's tensors that are this stage's parameters. */
  restoreTensors(tensors: NamedTensors): NamedTensors {
    const out: NamedTensors = {};
    for (const name of this.model.params.tensors.keys()) if (tensors[name]) out[name] = tensors[name]!;
    return out;
  }

  dispose(): void {
    this.opt.dispose();
  }
}

function biasLayer(key: string): number {
  return Number(key.slice(key.lastIndexOf('.') + 1));
}

function addLoads(acc: Map<number, number[]>, layer: number, l: readonly number[] | undefined): void {
  if (!l) return;
  const a = acc.get(layer);
  if (a) for (let e = 0; e < l.length; e++) a[e]! += l[e]!;
  else acc.set(layer, [...l]);
}
