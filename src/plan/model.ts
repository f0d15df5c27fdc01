// The model as the planner sees it: the engine's ModelConfig (so parameter counts are the engine's)
// plus the few training facts the engine config does not carry (dropout), and the mapping from the
// planner-io JSON schema (hidden, ffnKind gelu|relu|swiglu|geglu, moe {...}).
import { readFileSync } from 'node:fs';
import { type FfnKind, type ModelConfig, ConfigError, isGatedFfn, validateModelConfig } from '../nn/config.js';
import { countParams, type ParamCount } from '../nn/param-count.js';
import { preset, presetNames } from '../nn/presets.js';
import { PlanError } from './hardware.js';
import { jsonBoolean, jsonChoice, jsonNumber } from './json-fields.js';

export interface PlanModel {
  config: ModelConfig;
  /**
   * Dropout after attention softmax and on residual branches (GPT/Megatron style). It adds masks to the
   * activation memory (Korthikanti's 34 s b h + 5 a s^2 b assumes it). Engine presets have none.
   */
  dropout: boolean;
  params: ParamCount;
  /** bytes of a weight, gradient or activation word: 2 (bf16/fp16 mixed precision) or 4 (f32) */
  wordBytes: 2 | 4;
}

export function planModel(config: ModelConfig, dropout = false, wordBytes: 2 | 4 = 2): PlanModel {
  return { config, dropout, params: countParams(config), wordBytes };
}

/** Weight matrices in one FFN: gated kinds (swiglu, geglu) have three, gelu/relu two. */
export function ffnMatrices(kind: FfnKind): number {
  return isGatedFfn(kind) ? 3 : 2;
}

const IO_KEYS = ['name', 'layers', 'hidden', 'dModel', 'heads', 'kvHeads', 'ffnHidden', 'ffnKind', 'vocab', 'seqLen', 'tiedEmbeddings', 'moe', 'dropout', 'normEps', 'ropeTheta'];

/**
 * Maps the planner-io `model` object onto ModelConfig. `hidden` (or `dModel`) is the model width;
 * kvHeads defaults to heads; dropout defaults to true for gelu/relu models (GPT style, as in the
 * published runs and Korthikanti's memory formula) and false for gated ones (LLaMA style).
 */
export function modelFromJson(obj: unknown, origin = 'model JSON'): PlanModel {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new PlanError(`${origin}: expected an object describing the model`);
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!IO_KEYS.includes(k)) throw new PlanError(`${origin}: unknown model field '${k}'. Fields: ${IO_KEYS.join(', ')}`);
  const num = (k: string, def?: number, src: Record<string, unknown> = o, min = 1): number => {
    const v = src[k] ?? def;
    if (v === undefined) throw new PlanError(`${origin}: model field '${k}' is required`);
    return jsonNumber(v, k, origin, { min, integer: k !== 'normEps' && k !== 'ropeTheta' });
  };
  const ffnKind = o['ffnKind'] === undefined ? 'swiglu' : jsonChoice(o['ffnKind'], 'ffnKind', origin, ['gelu', 'relu', 'swiglu', 'geglu'] as const) as FfnKind;
  let moe: ModelConfig['moe'] = null;
  if (o['moe'] !== null && o['moe'] !== undefined) {
    const m = o['moe'];
    if (typeof m !== 'object' || Array.isArray(m)) throw new PlanError(`${origin}: moe must be an object {experts, topK, expertFfnHidden, sharedExperts, denseLayers} or null`);
    const mo = m as Record<string, unknown>;
    moe = {
      experts: num('experts', undefined, mo), topK: num('topK', undefined, mo), expertFfnHidden: num('expertFfnHidden', undefined, mo),
      sharedExperts: num('sharedExperts', 0, mo, 0), denseLayers: num('denseLayers', 0, mo, 0),
      balance: 'aux-loss', auxLossCoef: 0.01, biasUpdateRate: 1e-3,
    };
  }
  const heads = num('heads');
  const config: ModelConfig = {
    name: String(o['name'] ?? 'custom'),
    layers: num('layers'),
    dModel: num('hidden', o['dModel'] as number | undefined),
    heads,
    kvHeads: num('kvHeads', heads),
    ffnHidden: num('ffnHidden', moe ? moe.expertFfnHidden : undefined),
    ffnKind,
    vocab: num('vocab'),
    seqLen: num('seqLen'),
    tiedEmbeddings: o['tiedEmbeddings'] === undefined ? false : jsonBoolean(o['tiedEmbeddings'], 'tiedEmbeddings', origin),
    normEps: num('normEps', 1e-5, o, 0),
    ropeTheta: num('ropeTheta', 10000),
    moe,
  };
  try {
    validateModelConfig(config);
  } catch (e) {
    if (e instanceof ConfigError) throw new PlanError(`${origin}: ${e.message}`);
    throw e;
  }
  const dropout = o['dropout'] === undefined ? !isGatedFfn(ffnKind) : jsonBoolean(o['dropout'], 'dropout', origin);
  return planModel(config, dropout);
}

/** `--model`: a preset name from src/nn/presets.ts, or a JSON file (planner-io model object or ModelConfig). */
export function loadModel(spec: string, seqLen?: number): PlanModel {
  let m: PlanModel;
  if (presetNames().includes(spec)) m = planModel(preset(spec));
  else if (spec.endsWith('.json')) {
    let text: string;
    try {
      text = readFileSync(spec, 'utf8');
    } catch {
      throw new PlanError(`cannot read model file '${spec}'`);
    }
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(text);
    } catch (e) {
      throw new PlanError(`model file '${spec}' is not valid JSON: ${(e as Error).message}`);
    }
    if (obj && typeof obj === 'object' && 'model' in obj) obj = obj['model'] as Record<string, unknown>;
    m = modelFromJson(obj, spec);
  } else {
    throw new PlanError(`unknown model '${spec}'. Use a preset (${presetNames().join(', ')}) or a JSON file (planner-io model schema).`);
  }
  if (seqLen !== undefined) m = planModel({ ...m.config, seqLen }, m.dropout);
  return m;
}
