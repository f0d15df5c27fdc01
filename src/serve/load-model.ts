// Loading a checkpoint for inference (generate, serve, chat, export): the model with its weights
// and MoE routing biases, the tokenizer and chat template found beside it in the run folder, and
// the token ids that end a reply.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backend/contract.js';
import { DataError } from '../data/errors.js';
import { END_OF_TEXT, type Tokenizer } from '../data/tokenizer.js';
import { loadTokenizer } from '../data/tokenizer-json.js';
import { Transformer } from '../nn/transformer.js';
import { type Checkpoint, CheckpointError, loadCheckpoint } from '../train/checkpoint.js';
import { restoreModel } from '../train/train-state.js';
import { RUN_TOKENIZER_FILE } from '../train/trainer.js';
import { type ChatTemplate, loadChatTemplate } from './chat-template.js';

/** Where routing biases of bias-balanced MoE layers are kept in a checkpoint's optimizer file. */
export const ROUTER_BIAS_TENSOR = (layer: number) => `router_bias.layers.${layer}`;

export interface LoadedModel {
  model: Transformer;
  tokenizer: Tokenizer;
  template: ChatTemplate;
  checkpoint: Checkpoint;
  /** the folder holding tokenizer.json (the run folder, usually) */
  tokenizerDir: string;
  /** <|endoftext|>'s id, or null */
  eotId: number | null;
  /** ids that end a chat reply: <|endoftext|> and the template's stop strings that are special tokens */
  chatStopIds: Set<number>;
}

/** tokenizer.json in the step folder or the run folder above it. */
export function findTokenizer(stepDir: string): string {
  const candidates = [path.join(stepDir, RUN_TOKENIZER_FILE), path.join(path.dirname(stepDir), RUN_TOKENIZER_FILE)];
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) throw new DataError(`no tokenizer found for checkpoint ${stepDir} (looked for ${candidates.join(' and ')}); name one with --tokenizer FILE`);
  return found;
}

/** The checkpoint's routing biases (bias-balanced MoE) copied into the model. */
export function restoreRouterBias(model: Transformer, ckpt: Checkpoint): void {
  for (const [layer, bias] of model.routerBias) {
    const t = ckpt.optimizer?.tensors?.[ROUTER_BIAS_TENSOR(layer)];
    if (!t || t.dtype !== 'f64') throw new CheckpointError(`checkpoint ${ckpt.dir} lacks the routing bias of MoE layer ${layer} (it routes with one); use a checkpoint saved with its optimizer state`);
    if (t.data.length !== bias.length) throw new CheckpointError(`checkpoint ${ckpt.dir}: the routing bias of MoE layer ${layer} has ${t.data.length} entries, the model ${bias.length} experts`);
    bias.set(t.data as Float64Array);
  }
}

export function loadForInference(checkpointDir: string, backend: Backend, opts: { tokenizer?: string } = {}): LoadedModel {
  const ckpt = loadCheckpoint(checkpointDir);
  const tokPath = opts.tokenizer ?? findTokenizer(ckpt.dir);
  const { tokenizer } = loadTokenizer(tokPath);
  const cfg = ckpt.modelConfig;
  if (tokenizer.vocabSize !== cfg.vocab)
    throw new DataError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model in ${ckpt.dir} has ${cfg.vocab}; use the tokenizer the model was trained with (the run folder's tokenizer.json)`);
  const model = new Transformer(cfg, backend, { seed: 0 });
  restoreModel(model, ckpt.tensors, ckpt.dir);
  restoreRouterBias(model, ckpt);
  const tokenizerDir = path.dirname(tokPath);
  const { template } = loadChatTemplate(tokenizerDir);
  const eotId = tokenizer.specials.find((s) => s.content === END_OF_TEXT)?.id ?? null;
  const chatStopIds = new Set<number>();
  if (eotId !== null) chatStopIds.add(eotId);
  for (const s of tokenizer.specials) if (template.stop.includes(s.content)) chatStopIds.add(s.id);
  return { model, tokenizer, template, checkpoint: ckpt, tokenizerDir, eotId, chatStopIds };
}
