// `zili train --init CKPT`: start a new run from a checkpoint's weights (an imported Hugging Face
// model, or another run) instead of random ones — fine-tuning or continued pre-training. Only the
// weights (and MoE routing biases) come over: the optimizer, schedule, data position and step
// start fresh. The run's data must be tokenized with the checkpoint's tokenizer.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig } from '../nn/config.js';
import type { Transformer } from '../nn/transformer.js';
import { CHAT_TEMPLATE_FILE, loadChatTemplate, saveChatTemplate } from '../serve/chat-template.js';
import { restoreRouterBias } from '../serve/load-model.js';
import { assertCompatible, CheckpointError, latestCheckpoint, loadCheckpoint, MANIFEST_FILE, verifyCheckpoint } from './checkpoint.js';
import { restoreModel } from './train-state.js';

/** The step folder a --init path names (a step folder, or a run folder's newest checkpoint). */
function stepDirOf(init: string): string {
  if (fs.existsSync(path.join(init, MANIFEST_FILE))) return init;
  const dir = latestCheckpoint(init);
  if (!dir) throw new CheckpointError(`--init ${init}: no complete checkpoint there (a run folder, a step-NNNNNNNN folder, or the --out of zili import)`);
  return dir;
}

/** The model config of the --init checkpoint (read from its manifest). */
export function initModelConfig(init: string): ModelConfig {
  return verifyCheckpoint(stepDirOf(init), { hash: false }).modelConfig;
}

/**
 * Copies the --init checkpoint's weights into a freshly built model; checks that the run's data
 * uses the checkpoint's tokenizer, and carries its chat template into the new run folder.
 */
export function initWeights(model: Transformer, init: string, out: string, dataTokenizer: string, log: (l: string) => void): void {
  const ckpt = loadCheckpoint(stepDirOf(init));
  assertCompatible(ckpt.modelConfig, model.config, ckpt.dir);
  const runDir = path.dirname(ckpt.dir);
  const theirs = path.join(runDir, 'tokenizer.json');
  if (fs.existsSync(theirs) && fs.existsSync(dataTokenizer) && fs.readFileSync(theirs, 'utf8') !== fs.readFileSync(dataTokenizer, 'utf8'))
    throw new CheckpointError(`--init ${init}: the model was trained with ${theirs} but the data is tokenized with ${dataTokenizer}; prepare the data with the model's tokenizer (zili prepare --tokenizer ${theirs})`);
  restoreModel(model, ckpt.tensors, ckpt.dir);
  restoreRouterBias(model, ckpt);
  if (fs.existsSync(path.join(runDir, CHAT_TEMPLATE_FILE))) saveChatTemplate(out, loadChatTemplate(runDir).template);
  log(`train: initialised from ${ckpt.dir} (weights only: a new run from step 0)`);
}
