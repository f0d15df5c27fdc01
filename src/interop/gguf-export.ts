// `zili export --format gguf`: one GGUF file for llama.cpp (architecture `llama`), weights in f32,
// f16 or bf16 (norm vectors stay f32, as llama.cpp's converter keeps them), the byte-level BPE
// tokenizer in the metadata (`gpt2` model, `gpt-2` pre-tokenizer, every vocabulary string
// including the 256 byte tokens, merges, special tokens as control tokens) and the chat template.
// llama.cpp rotates interleaved RoPE pairs where zili rotates (i, i + d/2), so the rows of the Q and
// K projections are permuted within each head (as llama.cpp's own Hugging Face converter does).
// The llama architecture has no shared experts or leading dense layers: MoE models are refused
// (export them with --format hf).
import type { NamedTensor } from '../train/safetensors.js';
import { toJinja } from '../serve/chat-template.js';
import type { ExportSource } from './export-source.js';
import { type GgufTensor, type GgufTensorType, type GgufValue, writeGguf } from './gguf-writer.js';
import { toHalf } from './half.js';
import { InteropError, permuteRopeRows } from './hf-layout.js';

const TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_UNUSED = 5;
const FILE_TYPE: Record<GgufTensorType, number> = { f32: 0, f16: 1, bf16: 32 };

export function exportGguf(src: ExportSource, file: string, dtype: GgufTensorType): number {
  const c = src.config;
  if (c.moe) throw new InteropError(`model '${c.name}' is a Mixture-of-Experts model; GGUF's llama architecture has no shared experts or leading dense layers, so export it with --format hf`);
  if (c.ffnKind !== 'swiglu') throw new InteropError(`model '${c.name}' uses a ${c.ffnKind} FFN; llama.cpp's llama architecture is SwiGLU only`);
  const hd = c.dModel / c.heads;
  const meta = new Map<string, GgufValue>();
  const u32 = (k: string, v: number) => meta.set(k, { type: 'u32', value: v });
  meta.set('general.architecture', { type: 'string', value: 'llama' });
  meta.set('general.name', { type: 'string', value: c.name });
  u32('general.file_type', FILE_TYPE[dtype]);
  u32('general.alignment', 32);
  u32('llama.context_length', c.seqLen);
  u32('llama.embedding_length', c.dModel);
  u32('llama.block_count', c.layers);
  u32('llama.feed_forward_length', c.ffnHidden);
  u32('llama.attention.head_count', c.heads);
  u32('llama.attention.head_count_kv', c.kvHeads);
  u32('llama.rope.dimension_count', hd);
  u32('llama.vocab_size', c.vocab);
  meta.set('llama.rope.freq_base', { type: 'f32', value: c.ropeTheta });
  meta.set('llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: c.normEps });

  // the tokenizer: one entry per model row; ids the tokenizer does not use are unused padding
  const tok = src.tokenizer;
  const tokens: string[] = [], types: number[] = [];
  const strings = new Map(tok.vocabEntries().map(([s, id]) => [id, s]));
  for (let id = 0; id < c.vocab; id++) {
    const s = strings.get(id);
    tokens.push(s ?? `[PAD${id}]`);
    types.push(s === undefined ? TOKEN_UNUSED : tok.isSpecial(id) ? TOKEN_CONTROL : TOKEN_NORMAL);
  }
  meta.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
  meta.set('tokenizer.ggml.pre', { type: 'string', value: 'gpt-2' });
  meta.set('tokenizer.ggml.tokens', { type: 'string[]', value: tokens });
  meta.set('tokenizer.ggml.token_type', { type: 'i32[]', value: types });
  meta.set('tokenizer.ggml.merges', { type: 'string[]', value: tok.mergeStrings().map(([a, b]) => `${a} ${b}`) });
  if (src.eot !== null) {
    u32('tokenizer.ggml.bos_token_id', src.eot);
    u32('tokenizer.ggml.eos_token_id', src.eot);
  }
  const eotStop = src.stopIds.find((id) => id !== src.eot);
  if (eotStop !== undefined) u32('tokenizer.ggml.eot_token_id', eotStop);
  meta.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: false });
  meta.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: false });
  meta.set('tokenizer.chat_template', { type: 'string', value: toJinja(src.template) });

  const w = (name: string): NamedTensor => {
    const t = src.weights[name];
    if (!t || t.dtype !== 'f32') throw new InteropError(`the checkpoint lacks f32 weight '${name}'`);
    return t;
  };
  const tensors: GgufTensor[] = [];
  const add = (name: string, t: NamedTensor) => {
    const data = t.data as Float32Array;
    const keepF32 = t.shape.length === 1 || dtype === 'f32';
    tensors.push({ name, shape: t.shape, type: keepF32 ? 'f32' : dtype, data: keepF32 ? data : toHalf(data, dtype as 'f16' | 'bf16') });
  };
  add('token_embd.weight', w('tok_embeddings.weight'));
  for (let i = 0; i < c.layers; i++) {
    const z = `layers.${i}`, g = `blk.${i}`;
    add(`${g}.attn_norm.weight`, w(`${z}.attention_norm.weight`));
    add(`${g}.attn_q.weight`, permuteRopeRows(w(`${z}.attention.wq.weight`), c.heads, true));
    add(`${g}.attn_k.weight`, permuteRopeRows(w(`${z}.attention.wk.weight`), c.kvHeads, true));
    add(`${g}.attn_v.weight`, w(`${z}.attention.wv.weight`));
    add(`${g}.attn_output.weight`, w(`${z}.attention.wo.weight`));
    add(`${g}.ffn_norm.weight`, w(`${z}.ffn_norm.weight`));
    add(`${g}.ffn_gate.weight`, w(`${z}.feed_forward.w1.weight`));
    add(`${g}.ffn_up.weight`, w(`${z}.feed_forward.w3.weight`));
    add(`${g}.ffn_down.weight`, w(`${z}.feed_forward.w2.weight`));
  }
  add('output_norm.weight', w('norm.weight'));
  if (!c.tiedEmbeddings) add('output.weight', w('output.weight'));
  return writeGguf(file, meta, tensors);
}
