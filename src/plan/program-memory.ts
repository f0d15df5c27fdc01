// Peak memory per chip of a real training program: what lives at the same time, phase by phase,
// rather than the sum of everything. memory.ts gives the pieces (weights, gradients, optimizer state,
// activations, logits of a stage); a ProgramModel says how a program allocates them — Megatron keeps
// gradients in persistent buffers and fuses the loss in place, so its peak is the plain sum; zili
// creates gradients during backward and frees them after the update, materialises the loss gradient
// beside the logits, stages data-parallel buckets at full size and (ZeRO-3) gathers weights either
// all at once or layer by layer. The peak is the largest of three phases:
//   activation: the start of backward (every in-flight activation, the logits and their gradient);
//   update:     the end of backward and the optimizer (gradients, reduction and all-gather staging);
//   gather:     ZeRO-3's all-gather of the weights at the start of the step (gather 'all' only).
import { type ModelConfig, headDim } from '../nn/config.js';
import type { Layout } from './layout.js';
import { microBatches } from './layout.js';
import { BYTES, type StageComponents, type StateBytes, stageComponents } from './memory.js';
import type { PlanModel } from './model.js';

export type PipelineScheduleKind = 'gpipe' | '1f1b' | 'interleaved';

export interface ProgramModel {
  name: string;
  /** gradients in persistent buffers all step long (Megatron's main_grad), or created in backward and freed after the update */
  persistentGrads: boolean;
  /** logits-sized buffers beside the saved logits at the start of backward (zili's fused loss: its gradient, scaled as the kernel writes it) */
  logitsGradBuffers: number;
  /**
   * under tensor parallelism, logits-sized buffers live at the start of backward in all (zili's
   * vocab-parallel loss is composed of ops: logits, shifted logits, their exp, the one-hot mask and
   * the masked product, then three gradients), replacing 1 + logitsGradBuffers
   */
  vocabParallelLogitsBuffers: number;
  /**
   * zili's tensor-parallel layer (src/dist/tensor-parallel.ts): with SP the projections keep their
   * all-gathered inputs (Megatron keeps the shard and gathers again in backward), and the norms'
   * outputs, the blocks' pre-reduction outputs and the reductions' outputs stay until the end of the
   * micro-batch; per layer, in h-wide token rows
   */
  tpLayerExtra: boolean;
  /** the backward of one layer: FFN input/gate gradients (2 F / t) and two hidden-size rows per token, beside what is stored */
  layerBackwardWorkingSet: boolean;
  /**
   * full recompute: one layer's recomputed working set counted beside the logits at the start of
   * backward (Megatron's plain sum), or only during that layer's own backward, after the loss's
   * logits-sized buffers are freed (zili: the start of backward holds the block inputs and the logits)
   */
  recomputeBesideLogits: boolean;
  /**
   * data parallelism by gradient buckets (zili's DataParallel, used when tp = pp = 1): ZeRO 0-1 keep every
   * bucket at full size until its all-reduce completes, ZeRO-2 reduce-scatters each inside backward,
   * ZeRO 1-2 all-gather the updated chunks into full-size staging. False: gradients reduced in place.
   */
  bucketedDataParallel: boolean;
  /** one bucket's full-size staging buffer (bytes) */
  bucketBytes: number;
  /** ZeRO-2 reduce-scatters each bucket inside backward with a blocking call (MPI); false: asynchronously, all buckets held until backward ends */
  blockingReduceScatter: boolean;
  /** ZeRO-3: every weight gathered at the start of the step, or one layer at a time with the next one prefetched */
  zero3Gather: 'all' | 'layer';
  /** pipeline schedule: gpipe keeps every micro-batch in flight, 1F1B/interleaved what memory.ts counts */
  schedule: PipelineScheduleKind;
}

/** Megatron-LM: the plain sum of memory.ts (persistent gradient buffers, loss fused in place, layer-wise gathers). */
export const MEGATRON_PROGRAM: ProgramModel = {
  name: 'megatron', persistentGrads: true, logitsGradBuffers: 0, vocabParallelLogitsBuffers: 1, tpLayerExtra: false, layerBackwardWorkingSet: false, recomputeBesideLogits: true, bucketedDataParallel: false, bucketBytes: 0, blockingReduceScatter: true, zero3Gather: 'layer', schedule: '1f1b',
};

/** zili's own training program (src/train/step.ts, src/dist/*) for a layout; `zero3Gather` follows src/dist/data-parallel.ts. */
export function ziliProgram(l: Layout, o: { bucketBytes: number; zero3Gather: 'all' | 'layer'; schedule?: PipelineScheduleKind; blockingReduceScatter?: boolean }): ProgramModel {
  return {
    // the pipeline executor (pp > 1, or tp with ZeRO-1 as one stage) holds only the loss's five forward logits shards at once
    name: 'zili', persistentGrads: false, logitsGradBuffers: 1, vocabParallelLogitsBuffers: l.pp > 1 || (l.tp > 1 && l.zero === 1) ? 5 : 8, tpLayerExtra: true, layerBackwardWorkingSet: true, recomputeBesideLogits: false, bucketedDataParallel: l.tp === 1 && l.pp === 1 && l.ep === 1 && l.dp * l.cp > 1,
    bucketBytes: o.bucketBytes, blockingReduceScatter: o.blockingReduceScatter ?? true, zero3Gather: o.zero3Gather, schedule: o.schedule ?? (l.vpp > 1 ? 'interleaved' : '1f1b'),
  };
}

export interface PhaseMemory {
  /** bytes per chip in each phase (gather: 0 when the program has none) */
  activation: number;
  update: number;
  gather: number;
}

export interface ProgramMemory {
  /** the stage with the largest peak */
  stage: number;
  /** the training state this chip keeps between steps */
  weights: number;
  optimizer: number;
  /** gradients at their largest (full before ZeRO-2 shards them) */
  grads: number;
  /** activations in flight at the start of backward, logits and their gradient buffers included */
  activations: number;
  /** ZeRO-3's gathered weights at the activation peak */
  gathered: number;
  phases: PhaseMemory;
  peak: number;
  peakPhase: keyof PhaseMemory;
}

/** Bytes zili's tensor-parallel layer keeps beyond memory.ts's count, per layer and micro-batch (see ProgramModel.tpLayerExtra). */
export function tpLayerExtraBytes(c: ModelConfig, l: Layout, tokens: number): number {
  if (l.tp === 1) return 0;
  const row = 4 * tokens * c.dModel; // one f32 row of h per token
  // SP: the two pre-reduction block outputs whole, the two norm outputs and two reduce-scatter outputs
  // split (the gathered projection inputs are not kept: backward gathers them again); without SP, the
  // two norm outputs (copied into the group) and the two all-reduce outputs
  return l.sequenceParallel ? 2 * row + (4 * row) / l.tp : 4 * row;
}

/** Bytes of one layer's backward working set beside what the layer stores: two F/t-wide and two h-wide f32 rows per token. */
export function layerBackwardBytes(c: ModelConfig, l: Layout, tokens: number): number {
  return 4 * tokens * ((2 * c.ffnHidden) / l.tp + 2 * c.dModel);
}

function stagePhases(c: ModelConfig, l: Layout, s: StageComponents, p: ProgramModel): Omit<ProgramMemory, 'stage'> {
  const D = s.shardGroup;
  const m = microBatches(l);
  // gpipe runs every forward before the first backward: every micro-batch of every chunk in flight
  const inFlight = p.schedule === 'gpipe' ? m * l.vpp : s.inFlight;
  const layers = s.inFlight > 0 ? (s.layersInFlight * inFlight) / s.inFlight : 0;
  const logitsBuffers = l.tp > 1 ? p.vocabParallelLogitsBuffers : 1 + p.logitsGradBuffers;
  // the last stage keeps the logits of every micro-batch in flight (gpipe: all of them) until its backward
  const logitsKept = s.logits * Math.max(0, inFlight / l.vpp - 1);
  // full recompute: what stays in flight is each layer's input; one layer's whole working set comes
  // back during its own backward (with the plain sum, beside the logits)
  const recomputed = p.recomputeBesideLogits ? 0 : s.recomputeWorkingSet;
  // the tensor-parallel layer's extra tensors live while their chunk's forward runs (one chunk's layers)
  const chunkLayers = s.inFlight > 0 ? s.layersInFlight / s.inFlight : 0;
  // ring attention (cp > 1) saves each layer's causal mask of its chunk pair (s / 2cp squared, f32) and
  // its block backward holds eight f32 score-sized temporaries per head (src/dist/ring-attention.ts)
  const ringChunk = l.cp > 1 ? c.seqLen / (2 * l.cp) : 0;
  // (and the merged attention output in its chunk layout, for the backward ring: a d / t f32 per token)
  const ringMasks = l.cp > 1 ? layers * (4 * ringChunk ** 2 + 4 * s.tokens * ((c.heads / l.tp) * headDim(c))) : 0;
  const ringBackward = 8 * 4 * l.microBatch * Math.ceil(c.heads / l.tp) * ringChunk ** 2;
  const stored = s.activations - recomputed + s.chunkActivations * (inFlight - s.inFlight) + logitsKept + ringMasks + (p.tpLayerExtra ? chunkLayers * tpLayerExtraBytes(c, l, s.tokens) : 0);
  // the backward's extra working set: the logits' gradients at the start of backward on the last
  // stage, or one layer's backward (its recomputed activations included)
  // (ZeRO-2/3 on MPI reduce-scatter buckets during backward, two full-size buffers in flight and one
  // filling: beside a layer's recomputed backward, not at the start of backward where none exists yet)
  const bucketsInFlight = p.bucketedDataParallel && l.zero >= 1 && p.blockingReduceScatter && recomputed > 0 ? 3 * Math.min(p.bucketBytes, s.fullGrads) : 0;
  // gradients accumulated at the peak: a backward has run before the most micro-batches are in flight
  // (one process: from the second micro-batch on; 1F1B: when there are more than its warm-up; gpipe: never)
  const accumulated = m * l.vpp > inFlight;
  // then each weight's gradient is made fresh and added into the accumulated one: the output layer's
  // beside the logits' gradient on the last stage, a layer matrix's beside its layer's backward
  const workingSet = (fresh: boolean) => {
    const layerWorking = recomputed + bucketsInFlight + (p.layerBackwardWorkingSet && layers > 0 ? layerBackwardBytes(c, l, s.tokens) + ringBackward : 0) + (fresh ? s.layerMatrixGrad : 0);
    return Math.max(s.logits * logitsBuffers, fresh ? s.logits + s.headGrad : 0, layerWorking);
  };
  const gathered = l.zero >= 3 ? (p.zero3Gather === 'all' ? s.fullWeights : 2 * s.unitWeights) : 0;
  // gradients alive during the forward/backward peak: persistent buffers, or the full gradients that
  // earlier micro-batches of the step accumulated (zili accumulates locally before reducing; ZeRO-2
  // reduce-scatters every micro-batch into its chunks)
  const accumulatedGrads = l.zero === 2 && p.bucketedDataParallel ? s.grads : s.fullGrads;
  const gradsLive = p.persistentGrads ? s.grads : accumulated ? accumulatedGrads : 0;
  const base = s.weights + s.optimizer;
  const bucket = Math.min(p.bucketBytes, s.fullGrads); // a bucket holds whole parameters, at most all of them
  let acts = stored + workingSet(!p.persistentGrads && accumulated);
  let activation = base + gathered + gradsLive + acts;
  let grads = gradsLive;
  if (!p.persistentGrads && !accumulated && m > 1) {
    // every micro-batch in flight before the first backward: right after it, one chunk fewer is in
    // flight beside the whole gradients it made (the larger of the two when gradients outweigh a chunk's activations)
    const after = stored - s.chunkActivations - (logitsKept > 0 ? s.logits : 0) + workingSet(true);
    if (base + gathered + accumulatedGrads + after > activation) {
      acts = after;
      grads = accumulatedGrads;
      activation = base + gathered + accumulatedGrads + after;
    }
  }
  let update: number;
  let gather = 0;
  if (p.persistentGrads) update = base + s.grads;
  else if (!p.bucketedDataParallel && l.zero === 1 && D > 1) {
    // ZeRO-1 under tp/pp (src/dist/zero-one.ts): every whole gradient beside its reduce-scattered chunk,
    // then every chunk updated and all-gathered into whole-size staging, the gradient chunks kept until
    // every all-gather completes
    update = base + Math.max(s.fullGrads * (1 + 1 / D), s.fullWeights * (1 + 1 / D) + s.fullGrads / D);
  } else if (!p.bucketedDataParallel) update = base + s.fullGrads + s.largestGrad; // + one scaled gradient (the largest weight's) in the update
  else if (l.zero === 0) update = base + 2 * s.fullGrads; // gradients + their full-size buckets until the all-reduce completes
  else if (l.zero <= 2) {
    // end of backward (both reduce-scatter): the full-size buckets and the reduced chunks, or one
    // bucket beside the reduced chunks when each reduce-scatter completes before the next;
    // update: each chunk copied out, packed, and all-gathered into full-size staging
    const endOfBackward = !p.blockingReduceScatter ? s.fullGrads + 2 * (s.fullGrads / D) : (l.zero === 1 ? s.fullGrads / D : s.grads) + bucket;
    update = base + Math.max(endOfBackward, s.fullWeights * (1 + 2 / D));
  } else {
    update = base + (p.blockingReduceScatter ? s.grads + bucket : s.fullGrads + 2 * s.grads);
    // gather 'all': full weights + full-size staging + this rank's packed chunks, all at once
    if (p.zero3Gather === 'all') gather = base + 2 * s.fullWeights + s.fullWeights / D;
  }
  const phases = { activation, update, gather };
  const peakPhase = (Object.keys(phases) as (keyof PhaseMemory)[]).reduce((a, b) => (phases[b] > phases[a] ? b : a));
  return {
    weights: s.weights, optimizer: s.optimizer, grads: Math.max(grads, p.persistentGrads ? s.grads : s.fullGrads),
    activations: acts, gathered, phases, peak: phases[peakPhase], peakPhase,
  };
}

/** Peak memory per chip of a program over the pipeline stages (first and last; bytes, no runtime reserve). */
export function programMemoryPerChip(m: PlanModel, l: Layout, p: ProgramModel, bytes: StateBytes = BYTES): ProgramMemory {
  const stages = l.pp > 1 ? [0, l.pp - 1] : [0];
  let best: ProgramMemory | null = null;
  for (const st of stages) {
    const r = { stage: st, ...stagePhases(m.config, l, stageComponents(m, l, st, bytes), p) };
    if (!best || r.peak > best.peak) best = r;
  }
  return best!;
}

/** Every stage's program peak (pipeline layouts: stage i of pp). */
export function programMemoryPerStage(m: PlanModel, l: Layout, p: ProgramModel, bytes: StateBytes = BYTES): ProgramMemory[] {
  return Array.from({ length: l.pp }, (_, st) => ({ stage: st, ...stagePhases(m.config, l, stageComponents(m, l, st, bytes), p) }));
}
