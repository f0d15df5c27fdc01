// Expert parallelism (Megatron-Core's EP, folded inside the data-parallel ranks) applied to the
// unchanged Transformer: its parameters are created whole from the run's seed (so every layout starts
// from the same weights as one process), then each rank drops the routed experts it does not hold,
// keeping experts/ep consecutive experts of every MoE layer (ep rank q: [q·E/ep, (q+1)·E/ep)).
// Attention, norms, router and shared experts stay replicated over the data-parallel ranks. Each MoE
// layer runs moe.ts's phases with the all-to-all dispatcher of expert-dispatch.ts between them; the
// dense layers run the model's own forwardLayers.
// Gradients: replicated parameters are summed over the dp ranks (as plain data parallelism does);
// expert parameters already hold the gradient of every token of their ep group (the all-to-all's
// backward brought it home) and are summed over the expert-data-parallel ranks (edp = dp/ep, the
// replicas of the same experts). The global gradient norm counts the replicated parameters once and
// adds the experts' squares over the ep ranks (each expert once). Routing-bias updates use the
// expert loads summed over all dp ranks. This step loop runs plain dp × ep (ZeRO 0, and one process on
// an asynchronous backend with ep 1); with --tp, --pp or --zero 1 the pipeline executor runs the MoE
// layers with the same dispatcher (expert-layers.ts).
import type { ModelConfig } from '../nn/config.js';
import { isMoeLayer } from '../nn/config.js';
import { type ComputeDtype } from '../nn/linear.js';
import { addLoads, type BalanceStats, combineMoe, expertOf, type MoeOutput, routeMoe, routerProbs } from '../nn/moe.js';
import type { ParameterStore } from '../nn/parameters.js';
import type { Transformer } from '../nn/transformer.js';
import { AdamW, type AdamWConfig } from '../optim/adamw.js';
import { backwardAsync } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { recompute } from '../tensor/recompute.js';
import { keep, tidyAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TokenLoader } from '../data/loader.js';
import type { OptimizerState } from '../train/checkpoint.js';
import { rankFileName, type ShardedTensor } from '../train/checkpoint-shards.js';
import type { NamedTensors } from '../train/safetensors.js';
import type { StepOptions, StepResult } from '../train/step.js';
import { validationLossAsync } from '../train/evaluate.js';
import { meanOverRanks } from './rank-agreement.js';
import { restoreModel, restoreOptimizer, routerBiasTensors } from '../train/train-state.js';
import { ConfigError } from '../nn/config.js';
import type { Communicator } from './communicator.js';
import type { ShardSource } from './dist-checkpoint.js';
import { reduceFromGroup } from './differentiable.js';
import { dispatchedExperts, dropOtherExperts, ExpertDispatcher, type ExpertRunner } from './expert-dispatch.js';
import { LocalCommunicator } from './local.js';
import { meshGroups } from './mesh-layout.js';
import { ProcessMesh } from './mesh.js';

/**
 * x [N, d] → [N, d]: one MoE layer whose routed experts run through `experts` (local, or over an ep
 * group). With `split` (MoE under tensor parallelism) x is this rank's share of a micro-batch whose
 * tokens are split over that group: the balancing loss and the returned loads are over the whole
 * micro-batch (loads and the probabilities' sums added over the group, the latter differentiably,
 * since the tp ranks compute one loss). With `cp` (context parallelism) the balancing loss uses the
 * routed fractions of the whole rows (loads summed over the cp group) and this rank's own mean
 * probability (the executor averages over dp·cp, so a cp-summed P would scale the loss by 1/cp; the
 * Switch loss is linear in P); the returned loads stay the cp rank's, which the executor sums.
 */
export async function routedMoe(ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, dtype: ComputeDtype, bias: Float64Array | null, experts: ExpertRunner, groups: { split?: Communicator | null; cp?: Communicator | null } = {}): Promise<MoeOutput> {
  const { split, cp } = groups;
  const probs = routerProbs(ps, prefix, x);
  // the routing decision's one host read, asynchronous (no dataSync: runs on asynchronous backends)
  const host = x.backend.name === 'meta' ? null : ((await probs.data()) as Float32Array);
  const r = routeMoe(c, x, probs, host, bias);
  const mine = split && split.size > 1 ? await balanceOverGroup(probs, r.loads, split) : null;
  const routed = await experts(prefix, r.rows, r.loads);
  const acrossCp = !!cp && cp.size > 1;
  let over: BalanceStats | undefined = mine ?? undefined;
  if (acrossCp) {
    // f_e of one process over the whole rows: Σ_cp loads / (tokens·cp·k)
    const loads = Float32Array.from(mine?.loads ?? r.loads);
    await cp!.allReduce(loads, 'sum');
    over = { loads: Array.from(loads), tokens: (mine?.tokens ?? x.shape[0]!) * cp.size, P: mine?.P ?? T.mean(r.probs, 0) };
  }
  const out = combineMoe(ps, c, prefix, x, r, routed, dtype, over);
  routed.dispose();
  // under cp the loads reported are the rank's own (summed over tp), not the cp-summed ones the loss used
  return acrossCp ? { ...out, loads: [...(mine?.loads ?? r.loads)] } : out;
}

/** routedMoe with its routed experts spread over the ep ranks of `d`. */
export function moeExpertParallel(ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, dtype: ComputeDtype, bias: Float64Array | null, d: ExpertDispatcher, split: Communicator | null = null): Promise<MoeOutput> {
  return routedMoe(ps, c, prefix, x, dtype, bias, dispatchedExperts(ps, c, dtype, d), { split });
}

/** A micro-batch's balancing statistics from its shares on the ranks of `group`: loads and tokens summed, P = Σ probabilities / tokens (all-reduced forward, its gradient passed through). */
export async function balanceOverGroup(probs: Tensor, loads: readonly number[], group: Communicator): Promise<BalanceStats> {
  const sums = Int32Array.from([...loads, probs.shape[0]!]);
  await group.allReduce(sums, 'sum');
  const tokens = sums[loads.length]!;
  const local = T.sum(probs, 0);
  const total = await reduceFromGroup(local, group);
  local.dispose();
  const P = T.mulScalar(total, 1 / tokens);
  total.dispose();
  return { loads: Array.from(sums.subarray(0, loads.length)), tokens, P };
}

/**
 * The layout checks of --ep, before anything is allocated: one-line refusals naming the fix. `worldSize`
 * null: the layout runs in the pipeline executor (with --tp, --pp or --zero 1), whose own check
 * (pipeline-config.ts) matches the ranks.
 */
export function assertExpertParallelFits(c: { model: ModelConfig; dp: number; zero: number; tensorParallel?: { tp: number } | null; contextParallel?: { cp: number } | null }, ep: number, worldSize: number | null): void {
  const m = c.model.moe;
  if (!m) throw new ConfigError(`--ep ${ep}: model '${c.model.name}' has no MoE layers; use --ep 1 or an MoE model (e.g. --preset tiny-moe)`);
  if (m.experts % ep !== 0) throw new ConfigError(`--ep ${ep} does not divide the ${m.experts} experts of model '${c.model.name}'; use an --ep that divides ${m.experts}`);
  if (c.zero > 1) throw new ConfigError(`--ep ${ep} with --zero ${c.zero}: ZeRO-2/3 under expert parallelism are not implemented (gradients are reduced after the whole step); use --zero 1 or 0`);
  const tp = c.tensorParallel?.tp ?? 1, cp = c.contextParallel?.cp ?? 1;
  if (tp * cp > 1 && (tp * cp * c.dp) % ep !== 0) {
    const what = [tp > 1 ? `--tp ${tp}` : '', cp > 1 ? `--cp ${cp}` : '', `--dp ${c.dp}`].filter(Boolean).join(' x ');
    throw new ConfigError(`--ep ${ep} must divide ${what} = ${tp * cp * c.dp} (expert parallelism folds inside the tensor-, context- and data-parallel ranks of a stage); use an --ep that divides ${tp * cp * c.dp}`);
  }
  if (tp * cp === 1 && c.dp % ep !== 0) throw new ConfigError(`--ep ${ep} must divide the data-parallel ranks (--dp ${c.dp}): expert parallelism folds inside dp; use --dp ${ep * Math.max(1, Math.round(c.dp / ep))} (mpirun -np ${ep * Math.max(1, Math.round(c.dp / ep))})`);
  if (worldSize !== null && c.dp !== worldSize)
    throw new ConfigError(worldSize === 1 ? `--ep ${ep} --dp ${c.dp} needs ${c.dp} ranks but this process runs alone; launch it with mpirun -np ${c.dp}` : `--ep ${ep} --dp ${c.dp} does not match the job's ${worldSize} ranks; use --dp ${worldSize}`);
}

/** AdamW whose global gradient norm counts replicated parameters once and each expert once (squares summed over the ep ranks). */
class ExpertParallelAdamW extends AdamW {
  constructor(
    params: ParameterStore,
    config: AdamWConfig,
    private readonly ep: Communicator,
  ) {
    super(params, config);
  }

  override async gradNorm(): Promise<number> {
    const isExpert = (name: string) => expertOf(name) !== null;
    const experts = Float32Array.of((await super.gradNorm((n) => !isExpert(n))) ** 2);
    const replicated = await super.gradNorm(isExpert);
    await this.ep.allReduce(experts, 'sum');
    return Math.sqrt(experts[0]! + replicated ** 2);
  }
}

export class ExpertParallel {
  readonly dispatcher: ExpertDispatcher;

  /**
   * A run's expert-parallel layout, or null: --ep > 1 over the job's ranks; or, for an MoE model on an
   * asynchronous backend in one process, ep 1 on a local world (the MoE path that reads without dataSync).
   */
  static async forRun(model: Transformer, comm: Communicator | null, c: { dp: number; expertParallel?: { ep: number } | null }): Promise<ExpertParallel | null> {
    if (comm && c.expertParallel) return ExpertParallel.open(model, comm, c.dp, c.expertParallel.ep);
    if (!comm && model.config.moe && model.backend.asynchronous) return ExpertParallel.open(model, new LocalCommunicator('world', 0), 1, 1);
    return null;
  }

  /** Splits the mesh's dp, ep and edp groups of `world` (dp ranks, ep inside them; collective) and drops the experts this rank does not hold. */
  static async open(model: Transformer, world: Communicator, dp: number, ep: number): Promise<ExpertParallel> {
    const mesh = await ProcessMesh.create(world, { tp: 1, cp: 1, dp, pp: 1, ep });
    return new ExpertParallel(model, mesh);
  }

  constructor(
    readonly model: Transformer,
    readonly mesh: ProcessMesh,
  ) {
    this.dispatcher = new ExpertDispatcher(mesh.ep, model.config.moe!.experts);
    dropOtherExperts(model.params, this.dispatcher);
  }

  /** AdamW over this rank's parameters (its gradient norm spans the ep ranks' experts). */
  optimizer(config: AdamWConfig): AdamW {
    return new ExpertParallelAdamW(this.model.params, config, this.mesh.ep);
  }

  /** Restores a checkpoint of any layout (whole tensors): this rank's experts and the replicated parameters, their moments, the routing biases. */
  restore(opt: AdamW, tensors: NamedTensors, s: OptimizerState | null, where: string): void {
    const held = (key: string) => this.model.params.tensors.has(key.replace(/\.(m|v)$/, '')) || expertOf(key) === null;
    const mine = (all: NamedTensors) => Object.fromEntries(Object.entries(all).filter(([k]) => held(k)));
    restoreModel(this.model, mine(tensors), where);
    restoreOptimizer(opt, this.model, s && { ...s, m: mine(s.m), v: mine(s.v) }, where);
  }

  /**
   * What this rank saves: world rank 0 the replicated parameters (and routing biases), the first
   * expert-data-parallel replica of each ep rank its experts; each tensor whole in one file.
   */
  shards(opt: AdamW): ShardSource {
    const params = this.model.params.tensors, mesh = this.mesh;
    const c = this.model.config, E = c.moe!.experts, El = this.dispatcher.count;
    const owners = meshGroups(mesh.layout, 'ep')[0]!; // ep rank q of the first edp replica
    const shapes = new Map<string, number[]>();
    // every parameter of the whole model (the Transformer's creation order), from the held ones' shapes
    for (const [name, p] of params) {
      const e = expertOf(name);
      if (e === null) shapes.set(name, [...p.shape]);
      else if (e === this.dispatcher.first) for (let o = 0; o < E; o++) shapes.set(name.replace(`.experts.${e}.`, `.experts.${o}.`), [...p.shape]);
    }
    const ownerOf = (name: string) => {
      const e = expertOf(name);
      return e === null ? 0 : owners[Math.floor(e / El)]!;
    };
    return {
      pieces: async () => {
        const out: NamedTensors = {};
        for (const [name, p] of params) {
          if (ownerOf(name) !== mesh.world.rank) continue;
          for (const [key, t] of [[name, p], [`${name}.m`, opt.m.get(name)!], [`${name}.v`, opt.v.get(name)!]] as const)
            out[key] = { dtype: 'f32', shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) };
        }
        if (mesh.world.rank === 0) Object.assign(out, routerBiasTensors(this.model));
        return out;
      },
      index: () => {
        const tensors: Record<string, ShardedTensor> = {};
        for (const [name, shape] of shapes) {
          const numel = shape.reduce((a, b) => a * b, 1);
          for (const key of [name, `${name}.m`, `${name}.v`]) tensors[key] = { shape, dtype: 'f32', pieces: [{ file: rankFileName(ownerOf(name)), key, start: 0, numel }] };
        }
        for (const [key, t] of Object.entries(routerBiasTensors(this.model))) tensors[key] = { shape: t.shape, dtype: 'f64', pieces: [{ file: rankFileName(0), key, start: 0, numel: t.data.length }] };
        return { world: mesh.world.size, zero: 0, tensors };
      },
      params: [...shapes.keys()].sort(),
      extra: Object.keys(routerBiasTensors(this.model)).sort(),
      state: { step: opt.step, config: opt.config },
    };
  }

  /** Mean next-token cross-entropy of one micro-batch (ids/targets host, [batch·seq]) plus the MoE balancing loss. */
  async loss(ids: Int32Array, targets: Int32Array, batch: number, seq: number): Promise<{ loss: Tensor; ce: Tensor; aux: Tensor | null }> {
    const model = this.model, c = model.config, ps = model.params, be = model.backend;
    let x = model.embed(T.tensor(be, ids, [batch, seq], 'i32'));
    let aux: Tensor | null = null;
    for (let i = 0; i < c.layers; i++) {
      if (!isMoeLayer(c, i)) {
        x = model.forwardLayers(x, i, i + 1, batch, seq).x;
        continue;
      }
      const attn = (h0: Tensor) => model.attentionResidual(h0, i, batch, seq);
      const h = model.recomputeMode === 'full' ? recompute(attn, x) : attn(x);
      const n = T.rmsnorm(h, ps.get(`layers.${i}.ffn_norm.weight`), c.normEps);
      const r = await moeExpertParallel(ps, c, `layers.${i}.feed_forward`, n, model.dtype, model.routerBias.get(i) ?? null, this.dispatcher);
      model.lastLoads.set(i, r.loads);
      if (r.aux) aux = aux ? T.add(aux, r.aux) : r.aux;
      const next = T.add(h, r.y);
      for (const t of [x, h, n, r.y]) t.dispose();
      x = next;
    }
    const ce = T.crossEntropy(model.head(x), T.tensor(be, targets, [targets.length], 'i32'));
    return { loss: aux ? T.add(ce, aux) : ce, ce, aux };
  }

  /** Mean validation cross-entropy over `batches` batches of this rank's rows, averaged over the dp ranks. */
  async validationLoss(openVal: () => TokenLoader, batches: number): Promise<number> {
    const mine = await validationLossAsync(openVal, batches, async (b, loader) => (await this.loss(b.input, b.target, loader.batch, loader.seqLen)).ce);
    return meanOverRanks(this.mesh.dp, mine);
  }

  /** One optimizer step over `accum` micro-batches of this rank's rows; the loss, norm and update are those of one process with the global batch. */
  async runStep(opt: AdamW, loader: TokenLoader, accum: number, lr: number, opts: StepOptions = {}): Promise<StepResult> {
    const model = this.model, dp = this.mesh.dp;
    let ceSum = 0, auxSum = 0;
    const loads = new Map<number, number[]>();
    for (let micro = 0; micro < accum; micro++) {
      const b = loader.next();
      const [ce, aux] = await tidyAsync(async () => {
        const r = await this.loss(b.input, b.target, loader.batch, loader.seqLen);
        await backwardAsync(r.loss);
        return [r.ce, r.aux] as const;
      });
      ceSum += await ce.item();
      auxSum += aux ? await aux.item() : 0;
      ce.dispose();
      aux?.dispose();
      addLoads(loads, model.lastLoads);
    }
    await this.reduceGrads();
    const scalars = Float32Array.of(opts.poisonLoss ? NaN : ceSum / accum, auxSum / accum);
    const layers = [...loads.keys()].sort((a, b) => a - b);
    const loadBuf = Int32Array.from(layers.flatMap((l) => loads.get(l)!));
    await Promise.all([dp.allReduce(scalars, 'sum'), loadBuf.length ? dp.allReduce(loadBuf, 'sum') : null]);
    const loss = scalars[0]! / dp.size, auxMean = scalars[1]! / dp.size;
    if (opts.skipNonFinite && !Number.isFinite(loss)) {
      model.params.zeroGrad();
      return { loss, aux: auxMean, gradNorm: NaN, skipped: true };
    }
    const gradNorm = await opt.update(lr, 1 / (accum * dp.size), opts.skipNonFinite);
    if (opts.skipNonFinite && !Number.isFinite(gradNorm)) {
      model.params.zeroGrad();
      return { loss, aux: auxMean, gradNorm, skipped: true };
    }
    layers.forEach((l, i) => model.lastLoads.set(l, Array.from(loadBuf.subarray(i * loads.get(l)!.length, (i + 1) * loads.get(l)!.length))));
    model.updateRouterBias();
    model.params.zeroGrad();
    return { loss, aux: auxMean, gradNorm };
  }

  /**
   * Replicated parameters: gradients summed over the dp ranks. Experts: summed over the edp replicas;
   * an expert no token of any replica chose keeps no gradient (AdamW leaves it untouched, as one process does).
   */
  private async reduceGrads(): Promise<void> {
    const { dp, edp } = this.mesh, be = this.model.backend;
    const all = [...this.model.params.tensors];
    const experts = all.filter(([n]) => expertOf(n) !== null);
    const present = Int32Array.from(experts, ([, p]) => (p.grad ? 1 : 0));
    const work: Promise<void>[] = [];
    if (dp.size > 1) for (const [name, p] of all) if (expertOf(name) === null && p.grad) work.push(dp.allReduce(p.grad, 'sum'));
    if (edp.size > 1) {
      await edp.allReduce(present, 'max');
      experts.forEach(([, p], i) => {
        if (!present[i]) return;
        p.grad ??= keep(T.zeros(be, p.shape));
        work.push(edp.allReduce(p.grad, 'sum'));
      });
    }
    await Promise.all(work);
  }
}
