// zili's model in Hugging Face's terms, both ways: the config.json of the architecture and the
// tensor names and layouts of model.safetensors.
//
// Dense models are LlamaForCausalLM: the same math (RMSNorm, half-split RoPE, GQA, SwiGLU), the
// tensors only renamed. MoE models are Ernie4_5_MoeForCausalLM, the transformers architecture whose
// MoE matches zili's: a softmax router, top-k by probability (plus a selection-only bias,
// e_score_correction_bias, which holds zili's DeepSeek-style routing bias), gates renormalised over
// the k choices, ungated shared experts added to every token, leading dense layers
// (moe_layer_start_index). Where it differs, and how the export bridges it:
//   - ERNIE rotates interleaved pairs (2i, 2i+1) where zili rotates (i, i + d/2): the rows of
//     q_proj and k_proj are permuted within each head (the attention scores are unchanged).
//   - ERNIE has one shared-expert MLP of width s·h where zili has s shared experts of width h: their
//     matrices are concatenated (the sum of s MLPs is one MLP of the concatenated width).
//   - top-1 routing: ERNIE always renormalises (gate 1) where zili keeps the probability, so top-1
//     MoE models cannot be exported exactly and are refused.
//   - the routing bias is f64 in zili and f32 in ERNIE: selection can differ on near-ties.
// Dense FFNs other than SwiGLU (gelu, relu, geglu) have no LLaMA counterpart and are refused.
import type { ModelConfig } from '../nn/config.js';
import { headDim, isMoeLayer, validateModelConfig } from '../nn/config.js';
import type { NamedTensor, NamedTensors } from '../train/safetensors.js';

export class InteropError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'InteropError';
  }
}

export type HfArch = 'LlamaForCausalLM' | 'Ernie4_5_MoeForCausalLM';

/** The Hugging Face architecture a zili model exports to; throws when none matches exactly. */
export function hfArchitecture(c: ModelConfig): HfArch {
  if (c.ffnKind !== 'swiglu')
    throw new InteropError(`model '${c.name}' uses a ${c.ffnKind} FFN; Hugging Face LLaMA-family models use SwiGLU, so only swiglu models can be exported`);
  if (!c.moe) return 'LlamaForCausalLM';
  if (c.moe.topK === 1)
    throw new InteropError(`model '${c.name}' routes each token to 1 expert with the router probability as gate; Ernie4_5_Moe (the matching MoE architecture) renormalises the gate to 1, so top-1 MoE models cannot be exported exactly`);
  return 'Ernie4_5_MoeForCausalLM';
}

export interface TokenIds {
  bos: number | null;
  eos: number | null;
}

/** config.json for the model. */
export function hfConfig(c: ModelConfig, ids: TokenIds): Record<string, unknown> {
  const arch = hfArchitecture(c);
  const common = {
    architectures: [arch],
    vocab_size: c.vocab,
    hidden_size: c.dModel,
    intermediate_size: c.ffnHidden,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    head_dim: headDim(c),
    hidden_act: 'silu',
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_parameters: { rope_type: 'default', rope_theta: c.ropeTheta },
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: ids.bos,
    eos_token_id: ids.eos,
    pad_token_id: null,
    initializer_range: 0.02,
    use_cache: true,
    dtype: 'float32',
  };
  if (arch === 'LlamaForCausalLM') return { ...common, model_type: 'llama', attention_bias: false, attention_dropout: 0, mlp_bias: false, pretraining_tp: 1 };
  const m = c.moe!;
  return {
    ...common,
    model_type: 'ernie4_5_moe',
    use_bias: false,
    moe_intermediate_size: m.expertFfnHidden,
    moe_k: m.topK,
    moe_num_experts: m.experts,
    moe_num_shared_experts: m.sharedExperts,
    moe_layer_start_index: m.denseLayers,
    moe_layer_end_index: c.layers - 1,
    moe_layer_interval: 1,
    moe_norm_min: 1e-12,
    router_aux_loss_coef: m.auxLossCoef,
  };
}

/** A zili model config from a Hugging Face config.json; `base` (zili's own record, when present) fills what HF does not hold. */
export function modelConfigFromHf(j: Record<string, unknown>, name: string, base: ModelConfig | null): ModelConfig {
  const archs = (j.architectures as string[] | undefined) ?? [];
  const arch = archs.find((a) => a === 'LlamaForCausalLM' || a === 'Ernie4_5_MoeForCausalLM') as HfArch | undefined;
  if (!arch)
    throw new InteropError(`config.json names architecture ${JSON.stringify(archs)}; zili imports LlamaForCausalLM (and Ernie4_5_MoeForCausalLM, its MoE export)`);
  const int = (k: string, dflt?: number): number => {
    const v = j[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new InteropError(`config.json: '${k}' must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  if ((j.hidden_act ?? 'silu') !== 'silu') throw new InteropError(`config.json: hidden_act '${j.hidden_act}' is not supported (zili's FFN is SwiGLU: silu)`);
  for (const k of ['attention_bias', 'mlp_bias', 'use_bias']) if (j[k] === true) throw new InteropError(`config.json: '${k}' is true; zili's linear layers have no biases`);
  const rope = (j.rope_parameters ?? j.rope_scaling ?? null) as { rope_type?: string; type?: string; rope_theta?: number } | null;
  const ropeType = rope?.rope_type ?? rope?.type ?? 'default';
  if (ropeType !== 'default') throw new InteropError(`config.json: RoPE type '${ropeType}' is not supported (zili uses plain RoPE)`);
  const ropeTheta = rope?.rope_theta ?? (j.rope_theta as number | undefined) ?? 10000;
  const dModel = int('hidden_size'), heads = int('num_attention_heads');
  const hd = (j.head_dim as number | undefined) ?? dModel / heads;
  if (hd * heads !== dModel) throw new InteropError(`config.json: head_dim ${hd} x ${heads} heads != hidden_size ${dModel}; zili needs head_dim = hidden_size / heads`);
  const layers = int('num_hidden_layers');
  const c: ModelConfig = {
    name: base?.name ?? name,
    layers,
    dModel,
    heads,
    kvHeads: int('num_key_value_heads', heads),
    ffnHidden: int('intermediate_size'),
    ffnKind: 'swiglu',
    vocab: int('vocab_size'),
    seqLen: int('max_position_embeddings'),
    tiedEmbeddings: j.tie_word_embeddings === true || (j.tie_word_embeddings === undefined && arch === 'Ernie4_5_MoeForCausalLM'),
    normEps: typeof j.rms_norm_eps === 'number' ? j.rms_norm_eps : 1e-6,
    ropeTheta,
    moe: null,
  };
  if (arch === 'Ernie4_5_MoeForCausalLM') {
    const start = (j.moe_layer_start_index as number | undefined) ?? 1;
    const end = (j.moe_layer_end_index as number | undefined) ?? -1;
    if ((j.moe_layer_interval ?? 1) !== 1 || (end !== -1 && end !== layers - 1))
      throw new InteropError('config.json: MoE layers must run from moe_layer_start_index to the last layer (moe_layer_interval 1), as in zili');
    c.moe = {
      experts: int('moe_num_experts'),
      topK: int('moe_k'),
      expertFfnHidden: int('moe_intermediate_size'),
      sharedExperts: (j.moe_num_shared_experts as number | undefined) ?? 0,
      denseLayers: start,
      balance: base?.moe?.balance ?? 'aux-loss',
      auxLossCoef: base?.moe?.auxLossCoef ?? ((j.router_aux_loss_coef as number | undefined) ?? 0.01),
      biasUpdateRate: base?.moe?.biasUpdateRate ?? 1e-3,
    };
  }
  try {
    return validateModelConfig(c);
  } catch (e) {
    throw new InteropError(`config.json describes a model zili cannot build: ${(e as Error).message}`);
  }
}

/** Rows of a [heads·hd, d] projection reordered from half-split RoPE pairs (i, i+hd/2) to interleaved ones (2i, 2i+1), or back. */
export function permuteRopeRows(t: NamedTensor, heads: number, toInterleaved: boolean): NamedTensor {
  const [rows, cols] = t.shape as [number, number];
  const hd = rows / heads, half = hd / 2;
  const src = t.data as Float32Array, out = new Float32Array(src.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (const [a, b] of [[i, 2 * i], [i + half, 2 * i + 1]] as const) {
        const [from, to] = toInterleaved ? [a, b] : [b, a];
        out.set(src.subarray((h * hd + from) * cols, (h * hd + from + 1) * cols), (h * hd + to) * cols);
      }
  return { dtype: 'f32', shape: [rows, cols], data: out };
}

function concatRows(ts: NamedTensor[]): NamedTensor {
  const cols = ts[0]!.shape[1]!;
  const rows = ts.reduce((s, t) => s + t.shape[0]!, 0);
  const out = new Float32Array(rows * cols);
  let at = 0;
  for (const t of ts) {
    out.set(t.data as Float32Array, at);
    at += t.data.length;
  }
  return { dtype: 'f32', shape: [rows, cols], data: out };
}

function concatCols(ts: NamedTensor[]): NamedTensor {
  const rows = ts[0]!.shape[0]!;
  const widths = ts.map((t) => t.shape[1]!);
  const cols = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let at = 0;
    ts.forEach((t, i) => {
      out.set((t.data as Float32Array).subarray(r * widths[i]!, (r + 1) * widths[i]!), r * cols + at);
      at += widths[i]!;
    });
  }
  return { dtype: 'f32', shape: [rows, cols], data: out };
}

function splitRows(t: NamedTensor, n: number): NamedTensor[] {
  const [rows, cols] = t.shape as [number, number];
  const r = rows / n;
  return Array.from({ length: n }, (_, i) => ({ dtype: 'f32' as const, shape: [r, cols], data: (t.data as Float32Array).slice(i * r * cols, (i + 1) * r * cols) }));
}

function splitCols(t: NamedTensor, n: number): NamedTensor[] {
  const [rows, cols] = t.shape as [number, number];
  const w = cols / n;
  return Array.from({ length: n }, (_, i) => {
    const out = new Float32Array(rows * w);
    for (let r = 0; r < rows; r++) out.set((t.data as Float32Array).subarray(r * cols + i * w, r * cols + (i + 1) * w), r * w);
    return { dtype: 'f32' as const, shape: [rows, w], data: out };
  });
}

const MLP_NAMES: [string, string][] = [['w1', 'gate_proj'], ['w3', 'up_proj'], ['w2', 'down_proj']];

/** Pairs of (zili name, HF name) for every tensor that is renamed only. */
function renames(c: ModelConfig): [string, string][] {
  const out: [string, string][] = [['tok_embeddings.weight', 'model.embed_tokens.weight'], ['norm.weight', 'model.norm.weight']];
  if (!c.tiedEmbeddings) out.push(['output.weight', 'lm_head.weight']);
  const ernie = c.moe !== null;
  for (let i = 0; i < c.layers; i++) {
    const z = `layers.${i}`, h = `model.layers.${i}`;
    out.push([`${z}.attention_norm.weight`, `${h}.input_layernorm.weight`], [`${z}.ffn_norm.weight`, `${h}.post_attention_layernorm.weight`]);
    for (const p of ernie ? ['v', 'o'] : ['q', 'k', 'v', 'o']) out.push([`${z}.attention.w${p}.weight`, `${h}.self_attn.${p}_proj.weight`]);
    if (!isMoeLayer(c, i)) for (const [zn, hn] of MLP_NAMES) out.push([`${z}.feed_forward.${zn}.weight`, `${h}.mlp.${hn}.weight`]);
    else {
      out.push([`${z}.feed_forward.router.weight`, `${h}.mlp.gate.weight`]);
      for (let e = 0; e < c.moe!.experts; e++)
        for (const [zn, hn] of MLP_NAMES) out.push([`${z}.feed_forward.experts.${e}.${zn}.weight`, `${h}.mlp.experts.${e}.${hn}.weight`]);
    }
  }
  return out;
}

function take(ts: NamedTensors, name: string, where: string): NamedTensor {
  const t = ts[name];
  if (!t) throw new InteropError(`${where} lacks tensor '${name}'`);
  if (t.dtype !== 'f32') throw new InteropError(`${where}: tensor '${name}' is ${t.dtype}, expected f32`);
  return t;
}

/** zili weights (and routing biases by MoE layer) as Hugging Face tensors. */
export function toHfTensors(c: ModelConfig, w: NamedTensors, routerBias: ReadonlyMap<number, Float64Array>): NamedTensors {
  hfArchitecture(c);
  const out: NamedTensors = {};
  const where = 'the checkpoint';
  for (const [z, h] of renames(c)) out[h] = take(w, z, where);
  if (!c.moe) return out;
  const m = c.moe;
  for (let i = 0; i < c.layers; i++) {
    const z = `layers.${i}`, h = `model.layers.${i}`;
    out[`${h}.self_attn.q_proj.weight`] = permuteRopeRows(take(w, `${z}.attention.wq.weight`, where), c.heads, true);
    out[`${h}.self_attn.k_proj.weight`] = permuteRopeRows(take(w, `${z}.attention.wk.weight`, where), c.kvHeads, true);
    if (!isMoeLayer(c, i)) continue;
    const bias = routerBias.get(i);
    out[`${h}.mlp.moe_statics.e_score_correction_bias`] = { dtype: 'f32', shape: [1, m.experts], data: bias ? Float32Array.from(bias) : new Float32Array(m.experts) };
    if (m.sharedExperts === 0) continue;
    const shared = (zn: string) => Array.from({ length: m.sharedExperts }, (_, s) => take(w, `${z}.feed_forward.shared.${s}.${zn}.weight`, where));
    out[`${h}.mlp.shared_experts.gate_proj.weight`] = concatRows(shared('w1'));
    out[`${h}.mlp.shared_experts.up_proj.weight`] = concatRows(shared('w3'));
    out[`${h}.mlp.shared_experts.down_proj.weight`] = concatCols(shared('w2'));
  }
  return out;
}

/** Hugging Face tensors (f32) as zili weights, and the routing biases of MoE layers (all zero: none). */
export function fromHfTensors(c: ModelConfig, hf: NamedTensors, where: string): { weights: NamedTensors; routerBias: Map<number, Float64Array> } {
  const w: NamedTensors = {};
  const routerBias = new Map<number, Float64Array>();
  for (const [z, h] of renames(c)) w[z] = take(hf, h, where);
  if (c.moe) {
    const m = c.moe;
    for (let i = 0; i < c.layers; i++) {
      const z = `layers.${i}`, h = `model.layers.${i}`;
      w[`${z}.attention.wq.weight`] = permuteRopeRows(take(hf, `${h}.self_attn.q_proj.weight`, where), c.heads, false);
      w[`${z}.attention.wk.weight`] = permuteRopeRows(take(hf, `${h}.self_attn.k_proj.weight`, where), c.kvHeads, false);
      if (!isMoeLayer(c, i)) continue;
      const b = hf[`${h}.mlp.moe_statics.e_score_correction_bias`] ?? hf[`${h}.mlp.gate.moe_statics.e_score_correction_bias`];
      if (b && (b.data as Float32Array).some((x) => x !== 0)) routerBias.set(i, Float64Array.from(b.data as Float32Array));
      if (m.sharedExperts === 0) continue;
      const parts = (hn: string, split: (t: NamedTensor, n: number) => NamedTensor[]) => split(take(hf, `${h}.mlp.shared_experts.${hn}.weight`, where), m.sharedExperts);
      const [g, u, d] = [parts('gate_proj', splitRows), parts('up_proj', splitRows), parts('down_proj', splitCols)];
      for (let s = 0; s < m.sharedExperts; s++) {
        w[`${z}.feed_forward.shared.${s}.w1.weight`] = g[s]!;
        w[`${z}.feed_forward.shared.${s}.w3.weight`] = u[s]!;
        w[`${z}.feed_forward.shared.${s}.w2.weight`] = d[s]!;
      }
    }
  }
  return { weights: w, routerBias };
}
