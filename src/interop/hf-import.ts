// `zili import --from hf`: a Hugging Face LlamaForCausalLM folder (or zili's own MoE export,
// Ernie4_5_MoeForCausalLM) becomes a zili run folder: a step-00000000 checkpoint (f32 weights; f16
// and bf16 are widened exactly), tokenizer.json and chat_template.json, which generate, serve,
// chat and `train --init` take. Weights exported by zili come back bit-identical.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { saveTokenizer, loadTokenizer } from '../data/tokenizer-json.js';
import type { ModelConfig } from '../nn/config.js';
import { isMoeLayer } from '../nn/config.js';
import { type ChatTemplate, DEFAULT_CHAT_TEMPLATE, fromJinja, saveChatTemplate, toJinja } from '../serve/chat-template.js';
import { ROUTER_BIAS_TENSOR } from '../serve/load-model.js';
import { latestCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { type NamedTensors, readSafetensors } from '../train/safetensors.js';
import { RUN_TOKENIZER_FILE } from '../train/trainer.js';
import { fromHalf } from './half.js';
import { fromHfTensors, InteropError, modelConfigFromHf } from './hf-layout.js';
import { ZILI_RECORD_FILE } from './hf-export.js';

function readJson(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new InteropError(`${file} is missing: a Hugging Face model folder needs ${what}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new InteropError(`${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** Every tensor of the folder's model.safetensors (or its shards), as f32. */
function readWeights(dir: string): NamedTensors {
  const index = path.join(dir, 'model.safetensors.index.json');
  let files: string[];
  if (fs.existsSync(index)) {
    const map = (readJson(index, 'its shard index').weight_map ?? {}) as Record<string, string>;
    files = [...new Set(Object.values(map))];
  } else files = ['model.safetensors'];
  const out: NamedTensors = {};
  for (const f of files) {
    const file = path.join(dir, f);
    if (!fs.existsSync(file)) throw new InteropError(`${file} is missing (zili reads safetensors weights, not PyTorch .bin files)`);
    for (const [name, t] of Object.entries(readSafetensors(file).tensors)) {
      if (t.dtype === 'f32') out[name] = t;
      else if (t.dtype === 'f16' || t.dtype === 'bf16') out[name] = { dtype: 'f32', shape: t.shape, data: fromHalf(t.data as Uint16Array, t.dtype) };
      else throw new InteropError(`${file}: tensor '${name}' is ${t.dtype}; zili imports f32, f16 and bf16 weights (quantized checkpoints are not supported)`);
    }
  }
  return out;
}

function chatTemplateOf(dir: string, record: { chatTemplate?: ChatTemplate } | null): { template: ChatTemplate; note: string | null } {
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  const jinja = fs.existsSync(cfgFile) ? (readJson(cfgFile, 'a tokenizer config').chat_template as string | undefined) : undefined;
  if (record?.chatTemplate && (jinja === undefined || toJinja(record.chatTemplate) === jinja)) return { template: record.chatTemplate, note: null };
  if (typeof jinja === 'string') {
    const t = fromJinja(jinja, DEFAULT_CHAT_TEMPLATE.stop);
    if (t) return { template: t, note: null };
    return { template: DEFAULT_CHAT_TEMPLATE, note: 'the folder\'s chat template is not one zili can render; the run uses the default ChatML template (edit chat_template.json to change it)' };
  }
  return { template: DEFAULT_CHAT_TEMPLATE, note: 'the folder has no chat template; the run uses the default ChatML template' };
}

export interface ImportResult {
  checkpoint: string;
  config: ModelConfig;
  notes: string[];
}

export function importHf(dir: string, out: string, opts: { name?: string } = {}): ImportResult {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InteropError(`${dir} is not a folder (expected a Hugging Face model folder with config.json)`);
  if (latestCheckpoint(out, { warn: () => {} })) throw new InteropError(`${out} already holds a run; choose a fresh --out`);
  const notes: string[] = [];
  const recordFile = path.join(dir, ZILI_RECORD_FILE);
  const record = fs.existsSync(recordFile) ? (readJson(recordFile, 'zili\'s record') as { modelConfig?: ModelConfig; chatTemplate?: ChatTemplate }) : null;
  const name = opts.name ?? path.basename(path.resolve(dir));
  const config = modelConfigFromHf(readJson(path.join(dir, 'config.json'), 'config.json'), name, record?.modelConfig ?? null);
  if (opts.name) config.name = opts.name;
  const { weights, routerBias } = fromHfTensors(config, readWeights(dir), dir);
  const tokFile = path.join(dir, 'tokenizer.json');
  if (!fs.existsSync(tokFile)) throw new InteropError(`${tokFile} is missing: zili needs the fast tokenizer (byte-level BPE tokenizer.json)`);
  const { tokenizer } = loadTokenizer(tokFile);
  if (tokenizer.vocabSize > config.vocab) throw new InteropError(`${tokFile} has ${tokenizer.vocabSize} tokens but the model only ${config.vocab} embedding rows`);
  const { template, note } = chatTemplateOf(dir, record);
  if (note) notes.push(note);

  const extra: NamedTensors = {};
  if (config.moe?.balance === 'bias') {
    for (let i = 0; i < config.layers; i++)
      if (isMoeLayer(config, i)) extra[ROUTER_BIAS_TENSOR(i)] = { dtype: 'f64', shape: [config.moe.experts], data: routerBias.get(i) ?? new Float64Array(config.moe.experts) };
  } else if (routerBias.size) notes.push('the folder has routing biases but the model balances by auxiliary loss; they were dropped');
  fs.mkdirSync(out, { recursive: true });
  saveTokenizer(tokenizer, path.join(out, RUN_TOKENIZER_FILE));
  saveChatTemplate(out, template);
  const checkpoint = saveCheckpoint(out, {
    modelConfig: config,
    step: 0,
    trainConfig: { importedFrom: path.resolve(dir) },
    tensors: weights,
    optimizer: Object.keys(extra).length ? { m: {}, v: {}, tensors: extra, state: null } : null,
    data: null,
    rng: null,
  });
  return { checkpoint, config, notes };
}
