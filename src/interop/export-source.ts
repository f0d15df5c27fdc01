// What an export reads from a run: the checkpoint's weights and config, the MoE routing biases, the
// tokenizer and chat template beside it, and the special tokens that begin and end text.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { END_OF_TEXT, type Tokenizer } from '../data/tokenizer.js';
import { loadTokenizer } from '../data/tokenizer-json.js';
import type { ModelConfig } from '../nn/config.js';
import { isMoeLayer } from '../nn/config.js';
import { type ChatTemplate, loadChatTemplate } from '../serve/chat-template.js';
import { findTokenizer, ROUTER_BIAS_TENSOR } from '../serve/load-model.js';
import { type Checkpoint, loadCheckpoint } from '../train/checkpoint.js';
import type { NamedTensors } from '../train/safetensors.js';
import { InteropError } from './hf-layout.js';

export interface ExportSource {
  checkpoint: Checkpoint;
  config: ModelConfig;
  weights: NamedTensors;
  routerBias: Map<number, Float64Array>;
  tokenizer: Tokenizer;
  template: ChatTemplate;
  /** <|endoftext|>: begins an empty document and ends text */
  eot: number | null;
  /** ids that end a reply: <|endoftext|> and the template's stop strings that are special tokens */
  stopIds: number[];
}

export function readExportSource(checkpointDir: string, tokenizerFile?: string): ExportSource {
  const ckpt = loadCheckpoint(checkpointDir);
  const c = ckpt.modelConfig;
  const tokPath = tokenizerFile ?? findTokenizer(ckpt.dir);
  const { tokenizer } = loadTokenizer(tokPath);
  if (tokenizer.vocabSize > c.vocab) throw new InteropError(`the tokenizer ${tokPath} has ${tokenizer.vocabSize} tokens but the model only ${c.vocab}`);
  const { template } = loadChatTemplate(path.dirname(tokPath));
  const routerBias = new Map<number, Float64Array>();
  if (c.moe?.balance === 'bias')
    for (let i = 0; i < c.layers; i++) {
      const t = isMoeLayer(c, i) ? ckpt.optimizer?.tensors?.[ROUTER_BIAS_TENSOR(i)] : undefined;
      if (t) routerBias.set(i, t.data as Float64Array);
    }
  const eot = tokenizer.specials.find((s) => s.content === END_OF_TEXT)?.id ?? null;
  const stopIds = tokenizer.specials.filter((s) => s.content === END_OF_TEXT || template.stop.includes(s.content)).map((s) => s.id);
  return { checkpoint: ckpt, config: c, weights: ckpt.tensors, routerBias, tokenizer, template, eot, stopIds };
}

/** A fresh output folder: refuses one that holds files; returns the temporary folder to fill and a commit function. */
export function freshOutputDir(out: string): { tmp: string; commit: () => void } {
  if (fs.existsSync(out) && (!fs.statSync(out).isDirectory() || fs.readdirSync(out).length > 0))
    throw new InteropError(`${out} already exists and is not an empty folder; choose a fresh --out`);
  const tmp = `${out.replace(/\/+$/, '')}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  return {
    tmp,
    commit: () => {
      fs.rmSync(out, { recursive: true, force: true });
      fs.renameSync(tmp, out);
    },
  };
}
