// The model-shape flags shared by `zili train` and `zili bench train`: start from a preset and
// override its layers, width, heads, FFN width or vocabulary (e.g. `--vocab 4008` to match a
// tokenizer trained on a small corpus). A derived model is named `<preset>-custom` and validated.
import { type ModelConfig, validateModelConfig } from '../nn/config.js';
import type { FlagSpecs } from './args.js';

export const SHAPE_FLAGS = {
  layers: { kind: 'int', help: "transformer layers (default: the preset's)", min: 1 },
  'd-model': { kind: 'int', help: "model width (default: the preset's)", min: 1 },
  heads: { kind: 'int', help: "attention heads (default: the preset's)", min: 1 },
  'kv-heads': { kind: 'int', help: 'key/value heads, GQA (default: the preset\'s, or --heads when given)', min: 1 },
  'ffn-hidden': { kind: 'int', help: "FFN hidden width (default: the preset's)", min: 1 },
  vocab: { kind: 'int', help: "vocabulary size, the data's tokenizer's (default: the preset's)", min: 1 },
} satisfies FlagSpecs;

export interface ShapeFlagValues {
  layers?: number;
  'd-model'?: number;
  heads?: number;
  'kv-heads'?: number;
  'ffn-hidden'?: number;
  vocab?: number;
}

/** The preset with the shape flags applied (unchanged, name included, when none differs). */
export function applyShapeFlags(base: ModelConfig, a: ShapeFlagValues, name = `${base.name}-custom`): ModelConfig {
  const c: ModelConfig = {
    ...base,
    layers: a.layers ?? base.layers,
    dModel: a['d-model'] ?? base.dModel,
    heads: a.heads ?? base.heads,
    kvHeads: a['kv-heads'] ?? a.heads ?? base.kvHeads,
    ffnHidden: a['ffn-hidden'] ?? base.ffnHidden,
    vocab: a.vocab ?? base.vocab,
  };
  const changed = (['layers', 'dModel', 'heads', 'kvHeads', 'ffnHidden', 'vocab'] as const).some((k) => c[k] !== base[k]);
  return validateModelConfig(changed ? { ...c, name } : base);
}
