// `zili export --format hf`: a Hugging Face model folder that transformers loads with
// AutoModelForCausalLM / AutoTokenizer: config.json, model.safetensors (f32, Hugging Face tensor
// names), tokenizer.json, tokenizer_config.json (with the chat template as Jinja),
// generation_config.json, and zili.json (zili's own model config, so an import restores it exactly).
import * as path from 'node:path';
import { tokenizerToString } from '../data/tokenizer-json.js';
import { toJinja } from '../serve/chat-template.js';
import { writeSafetensors } from '../train/safetensors.js';
import { writeFileDurable } from '../util/atomic-fs.js';
import { type ExportSource, freshOutputDir } from './export-source.js';
import { hfConfig, toHfTensors } from './hf-layout.js';

export const ZILI_RECORD_FILE = 'zili.json';

const json = (x: unknown) => JSON.stringify(x, null, 2) + '\n';

/** Fields transformers types as float: written with a decimal point even when whole (its strict configs refuse 0 for 0.0). */
const FLOAT_FIELDS = new Set(['rms_norm_eps', 'rope_theta', 'router_aux_loss_coef', 'initializer_range', 'attention_dropout', 'moe_norm_min', 'temperature', 'top_p']);

/** JSON text of a config, floats as floats. */
export function configJson(x: unknown): string {
  const text = JSON.stringify(x, (k, v) => (FLOAT_FIELDS.has(k) && typeof v === 'number' && Number.isInteger(v) ? `\u0000float:${v}` : v), 2);
  return text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0') + '\n';
}

export function exportHf(src: ExportSource, out: string): string[] {
  const c = src.config;
  const tensors = toHfTensors(c, src.weights, src.routerBias);
  const { tmp, commit } = freshOutputDir(out);
  const eos = src.stopIds.length ? src.stopIds : null;
  const write = (name: string, text: string) => writeFileDurable(path.join(tmp, name), text);
  write('config.json', configJson(hfConfig(c, { bos: src.eot, eos: src.eot })));
  writeSafetensors(path.join(tmp, 'model.safetensors'), tensors, { metadata: { format: 'pt', producer: 'zili', step: String(src.checkpoint.step) } });
  write('tokenizer.json', tokenizerToString(src.tokenizer));
  const tokenName = (id: number | null) => (id === null ? null : src.tokenizer.tokenString(id));
  const addedTokens: Record<string, object> = {};
  for (const s of src.tokenizer.specials) addedTokens[String(s.id)] = { content: s.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  write(
    'tokenizer_config.json',
    json({
      tokenizer_class: 'PreTrainedTokenizerFast',
      added_tokens_decoder: addedTokens,
      bos_token: tokenName(src.eot),
      eos_token: tokenName(src.eot),
      pad_token: null,
      unk_token: null,
      add_bos_token: false,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
      model_max_length: c.seqLen,
      chat_template: toJinja(src.template),
    }),
  );
  write('generation_config.json', configJson({ _from_model_config: false, bos_token_id: src.eot, eos_token_id: eos && eos.length === 1 ? eos[0] : eos, do_sample: true, temperature: 0.8, top_p: 1.0 }));
  write(ZILI_RECORD_FILE, json({ producer: 'zili', modelConfig: c, step: src.checkpoint.step, source: src.checkpoint.dir, chatTemplate: src.template }));
  commit();
  return ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', ZILI_RECORD_FILE];
}
