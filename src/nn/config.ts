// The model configuration shared by the engine (src/nn), the trainer and the planner (src/plan):
// one typed description of a decoder-only LLaMA-family transformer, dense or Mixture-of-Experts.

/** swiglu/geglu: gated FFN with three matrices; gelu/relu: two matrices (GPT style). */
export type FfnKind = 'swiglu' | 'gelu' | 'relu' | 'geglu';

/** True for the gated FFN kinds, which have three weight matrices (gate, up, down). */
export function isGatedFfn(kind: FfnKind): boolean {
  return kind === 'swiglu' || kind === 'geglu';
}

export interface MoEConfig {
  /** routed experts per MoE layer */
  experts: number;
  /** experts each token is routed to */
  topK: number;
  /** hidden width of one expert's FFN */
  expertFfnHidden: number;
  /** always-on shared experts (DeepSeek style), each of width expertFfnHidden */
  sharedExperts: number;
  /** the first `denseLayers` layers use a dense FFN of width ffnHidden */
  denseLayers: number;
  /** load balancing: auxiliary loss (Switch/GShard) or DeepSeek-V3's bias adjustment */
  balance: 'aux-loss' | 'bias';
  /** weight of the auxiliary balancing loss (balance = 'aux-loss') */
  auxLossCoef: number;
  /** step size of the router bias update (balance = 'bias') */
  biasUpdateRate: number;
}

export interface ModelConfig {
  name: string;
  layers: number;
  dModel: number;
  heads: number;
  kvHeads: number;
  /** dense FFN hidden width (all layers when moe is null; the first moe.denseLayers otherwise) */
  ffnHidden: number;
  ffnKind: FfnKind;
  vocab: number;
  /** training context length */
  seqLen: number;
  tiedEmbeddings: boolean;
  normEps: number;
  ropeTheta: number;
  moe: MoEConfig | null;
}

export class ConfigError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function headDim(c: ModelConfig): number {
  return c.dModel / c.heads;
}

/** Validates a model config at the boundary; throws ConfigError naming the field and the fix. */
export function validateModelConfig(c: ModelConfig): ModelConfig {
  const posInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`model '${c.name}': ${name} must be a positive integer, got ${v}`);
  };
  posInt('layers', c.layers);
  posInt('dModel', c.dModel);
  posInt('heads', c.heads);
  posInt('kvHeads', c.kvHeads);
  posInt('ffnHidden', c.ffnHidden);
  posInt('vocab', c.vocab);
  posInt('seqLen', c.seqLen);
  if (c.dModel % c.heads !== 0)
    throw new ConfigError(`model '${c.name}': dModel ${c.dModel} is not divisible by heads ${c.heads}; pick heads that divide dModel`);
  if (c.heads % c.kvHeads !== 0)
    throw new ConfigError(`model '${c.name}': heads ${c.heads} is not a multiple of kvHeads ${c.kvHeads} (grouped-query attention needs heads = g * kvHeads)`);
  if (headDim(c) % 2 !== 0) throw new ConfigError(`model '${c.name}': head dimension ${headDim(c)} must be even for RoPE`);
  if (!['swiglu', 'gelu', 'relu', 'geglu'].includes(c.ffnKind))
    throw new ConfigError(`model '${c.name}': ffnKind must be 'swiglu', 'gelu', 'relu' or 'geglu', got '${c.ffnKind}'`);
  if (c.moe) {
    const m = c.moe;
    posInt('moe.experts', m.experts);
    posInt('moe.topK', m.topK);
    posInt('moe.expertFfnHidden', m.expertFfnHidden);
    if (m.topK > m.experts) throw new ConfigError(`model '${c.name}': moe.topK ${m.topK} exceeds moe.experts ${m.experts}`);
    if (!Number.isInteger(m.sharedExperts) || m.sharedExperts < 0) throw new ConfigError(`model '${c.name}': moe.sharedExperts must be >= 0`);
    if (!Number.isInteger(m.denseLayers) || m.denseLayers < 0 || m.denseLayers > c.layers)
      throw new ConfigError(`model '${c.name}': moe.denseLayers must be between 0 and layers (${c.layers})`);
  }
  return c;
}

/** True when layer i (0-based) is a Mixture-of-Experts layer. */
export function isMoeLayer(c: ModelConfig, i: number): boolean {
  return c.moe !== null && i >= c.moe.denseLayers;
}
