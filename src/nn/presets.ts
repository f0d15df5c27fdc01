// Model presets: functions that return validated configs, from `tiny` (trains in minutes on two CPU
// cores) to `dense-1t` (Megatron-LM's 1T shape) and `moe-1t` (a Kimi-K2-like 1T MoE shape).
import { type ModelConfig, type MoEConfig, ConfigError, validateModelConfig } from './config.js';

const base = { ffnKind: 'swiglu' as const, normEps: 1e-5, ropeTheta: 10000, moe: null, tiedEmbeddings: false };

function moe(p: Partial<MoEConfig> & Pick<MoEConfig, 'experts' | 'topK' | 'expertFfnHidden'>): MoEConfig {
  return { sharedExperts: 0, denseLayers: 0, balance: 'aux-loss', auxLossCoef: 0.01, biasUpdateRate: 1e-3, ...p };
}

const PRESETS: Record<string, () => ModelConfig> = {
  tiny: () => ({ ...base, name: 'tiny', layers: 4, dModel: 128, heads: 4, kvHeads: 2, ffnHidden: 384, vocab: 2048, seqLen: 128, tiedEmbeddings: true }),
  'tiny-moe': () => ({
    ...base, name: 'tiny-moe', layers: 4, dModel: 128, heads: 4, kvHeads: 2, ffnHidden: 384, vocab: 2048, seqLen: 128, tiedEmbeddings: true,
    moe: moe({ experts: 8, topK: 2, expertFfnHidden: 128, sharedExperts: 1, denseLayers: 1 }),
  }),
  /** the `bench train` reference config */
  small: () => ({ ...base, name: 'small', layers: 6, dModel: 384, heads: 6, kvHeads: 6, ffnHidden: 1024, vocab: 4096, seqLen: 256 }),
  '125m': () => ({ ...base, name: '125m', layers: 12, dModel: 768, heads: 12, kvHeads: 12, ffnHidden: 2048, vocab: 32000, seqLen: 1024, tiedEmbeddings: true }),
  '1b': () => ({ ...base, name: '1b', layers: 16, dModel: 2048, heads: 32, kvHeads: 8, ffnHidden: 8192, vocab: 32000, seqLen: 2048 }),
  '7b': () => ({ ...base, name: '7b', layers: 32, dModel: 4096, heads: 32, kvHeads: 32, ffnHidden: 11008, vocab: 32000, seqLen: 4096 }),
  '70b': () => ({ ...base, name: '70b', layers: 80, dModel: 8192, heads: 64, kvHeads: 8, ffnHidden: 28672, vocab: 32000, seqLen: 4096, ropeTheta: 500000 }),
  /** Megatron-LM's 1T shape (128 layers, hidden 25600, 160 heads), LLaMA-style: SwiGLU at 8/3 h. */
  'dense-1t': () => ({ ...base, name: 'dense-1t', layers: 128, dModel: 25600, heads: 160, kvHeads: 160, ffnHidden: 68352, vocab: 51200, seqLen: 2048 }),
  /** 61 layers, hidden 7168, 64 heads (GQA 8), 384 experts of FFN 2048, top-8 + 1 shared, first layer dense. */
  'moe-1t': () => ({
    ...base, name: 'moe-1t', layers: 61, dModel: 7168, heads: 64, kvHeads: 8, ffnHidden: 18432, vocab: 163840, seqLen: 4096, ropeTheta: 50000,
    moe: moe({ experts: 384, topK: 8, expertFfnHidden: 2048, sharedExperts: 1, denseLayers: 1, balance: 'bias' }),
  }),
};

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

export function preset(name: string): ModelConfig {
  const f = PRESETS[name];
  if (!f) throw new ConfigError(`unknown preset '${name}'. Known presets: ${presetNames().join(', ')}`);
  return validateModelConfig(f());
}
