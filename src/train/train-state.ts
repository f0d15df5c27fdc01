// Moving a run's state between the engine and checkpoint files: model weights, AdamW moments and
// step count, and the MoE routing biases (fp64, kept bit-exact as F64 tensors in the optimizer
// file). Restoring writes host data straight into the existing device buffers.
import type { NamedTensor, NamedTensors } from './safetensors.js';
import type { OptimizerState } from './checkpoint.js';
import { CheckpointError } from './checkpoint.js';
import type { Transformer } from '../nn/transformer.js';
import type { AdamW } from '../optim/adamw.js';
import type { Tensor } from '../tensor/tensor.js';

const ROUTER_BIAS_PREFIX = 'router_bias.layers.';

async function toNamed(t: Tensor): Promise<NamedTensor> {
  if (t.dtype !== 'f32') throw new Error(`checkpoint: tensor ${t.name ?? ''} is ${t.dtype}; weights and moments are saved in f32`);
  return { dtype: 'f32', shape: [...t.shape], data: (await t.data()) as Float32Array };
}

/** Model weights by parameter name (fp32 host copies). */
export async function modelTensors(model: Transformer): Promise<NamedTensors> {
  const out: NamedTensors = {};
  for (const [name, p] of model.params.tensors) out[name] = await toNamed(p);
  return out;
}

/** AdamW moments, the MoE routing biases and the optimizer's JSON state. */
export async function optimizerState(opt: AdamW, model: Transformer): Promise<OptimizerState> {
  const m: NamedTensors = {};
  const v: NamedTensors = {};
  for (const [name, t] of opt.m) m[name] = await toNamed(t);
  for (const [name, t] of opt.v) v[name] = await toNamed(t);
  const tensors = routerBiasTensors(model);
  return { m, v, tensors, state: { step: opt.step, config: opt.config } };
}

export function writeInto(dst: Tensor, src: NamedTensor | undefined, what: string, where: string): void {
  if (!src) throw new CheckpointError(`checkpoint ${where} lacks ${what}`);
  if (src.dtype !== 'f32' || src.shape.join(',') !== dst.shape.join(','))
    throw new CheckpointError(`checkpoint ${where}: ${what} is ${src.dtype} [${src.shape.join(', ')}], this model needs f32 [${dst.shape.join(', ')}]`);
  dst.backend.write(dst.buf, src.data as Float32Array);
}

/** Copies saved weights into the model's parameters (names and shapes must match). */
export function restoreModel(model: Transformer, tensors: NamedTensors, where: string): void {
  for (const [name, p] of model.params.tensors) writeInto(p, tensors[name], `weight '${name}'`, where);
  const extra = Object.keys(tensors).filter((n) => !model.params.tensors.has(n));
  if (extra.length) throw new CheckpointError(`checkpoint ${where} holds weights this model does not have: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`);
}

/** Restores AdamW moments and step, and the routing biases. */
export function restoreOptimizer(opt: AdamW, model: Transformer, s: OptimizerState | null, where: string): void {
  const step = savedOptimizerStep(s, where);
  for (const [name, t] of opt.m) writeInto(t, s!.m[name], `AdamW moment '${name}.m'`, where);
  for (const [name, t] of opt.v) writeInto(t, s!.v[name], `AdamW moment '${name}.v'`, where);
  opt.step = step;
  restoreRouterBias(model, s!, where);
}

/** The optimizer's saved step count (throws when the state lacks it or is absent). */
export function savedOptimizerStep(s: OptimizerState | null, where: string): number {
  if (!s) throw new CheckpointError(`checkpoint ${where} has no optimizer state; it cannot be resumed (it can still be used by zili generate)`);
  const st = s.state as { step?: unknown } | null;
  if (!st || !Number.isSafeInteger(st.step)) throw new CheckpointError(`checkpoint ${where}: optimizer state lacks its step count`);
  return st.step as number;
}

/** The MoE routing biases (saved with the optimizer state as f64 tensors). */
export function routerBiasTensors(model: Transformer): NamedTensors {
  const tensors: NamedTensors = {};
  for (const [layer, bias] of model.routerBias) tensors[`${ROUTER_BIAS_PREFIX}${layer}`] = { dtype: 'f64', shape: [bias.length], data: Float64Array.from(bias) };
  return tensors;
}

/** Restores the MoE routing biases from saved optimizer state. */
export function restoreRouterBias(model: Transformer, s: OptimizerState, where: string): void {
  for (const [layer, bias] of model.routerBias) {
    const t = s.tensors?.[`${ROUTER_BIAS_PREFIX}${layer}`];
    if (!t || t.dtype !== 'f64' || t.data.length !== bias.length) throw new CheckpointError(`checkpoint ${where} lacks the routing bias of MoE layer ${layer}`);
    bias.set(t.data as Float64Array);
  }
}
