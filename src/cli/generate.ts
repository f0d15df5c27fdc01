// `zili generate`: text from a checkpoint. Loads the model config, weights and MoE routing biases (a
// run folder means its newest checkpoint), the tokenizer copied into the run folder by `zili train`, then decodes with a
// KV cache — greedy at --temperature 0, else seeded sampling with top-k / top-p — streaming text to
// stdout as tokens arrive (a UTF-8 character split across tokens is printed once complete).
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { getBackend } from '../backend/registry.js';
import { generate, Utf8Stream } from '../infer/generate.js';
import { validateSampling } from '../infer/sample.js';
import { loadForInference } from '../serve/load-model.js';

const FLAGS = {
  checkpoint: { kind: 'string', help: "a run's --out folder (its newest checkpoint) or one step-NNNNNNNN folder" },
  prompt: { kind: 'string', help: 'text to continue (empty: start a new document)', default: '' },
  'max-tokens': { kind: 'int', help: 'new tokens to generate at most', default: 100, min: 0 },
  temperature: { kind: 'number', help: 'sampling temperature (0: greedy)', default: 0.8, min: 0 },
  'top-k': { kind: 'int', help: 'sample from the k most likely tokens (0: all)', default: 40, min: 0 },
  'top-p': { kind: 'number', help: 'sample from the most likely tokens up to this probability (1: all)', default: 1, min: 0, max: 1 },
  seed: { kind: 'int', help: 'sampling seed', default: 0, min: 0 },
  tokenizer: { kind: 'string', help: "tokenizer.json (default: the one in the run folder)" },
  backend: { kind: 'string', help: 'compute backend', default: 'cpu' },
  'no-stop': { kind: 'bool', help: 'keep going past <|endoftext|>' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'generate');
  if (a.help) {
    console.log(formatHelp('generate', FLAGS, '--checkpoint DIR --prompt TEXT [options]'));
    return 0;
  }
  if (a._.length) throw new UsageError(`unexpected argument '${a._[0]}' (options start with --)`);
  if (!a.checkpoint) throw new UsageError('name the checkpoint with --checkpoint DIR (a run folder or a step folder)');
  const sampling = { temperature: a.temperature!, topK: a['top-k']!, topP: a['top-p']! };
  try {
    validateSampling(sampling);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (a['max-tokens']! < 0) throw new UsageError(`--max-tokens must be >= 0, got ${a['max-tokens']}`);

  const { model, tokenizer, checkpoint: ckpt, eotId: eot } = loadForInference(a.checkpoint, await getBackend(a.backend!), { tokenizer: a.tokenizer });
  const cfg = model.config;
  let prompt = tokenizer.encode(a.prompt!);
  if (prompt.length === 0) {
    if (eot === null) throw new UsageError('give a --prompt: this tokenizer has no <|endoftext|> token to start from');
    prompt = [eot];
  }
  process.stderr.write(`generate: model '${cfg.name}' at step ${ckpt.step} (${ckpt.dir}), prompt ${prompt.length} tokens, ` +
    (sampling.temperature === 0 ? 'greedy' : `temperature ${sampling.temperature}, top-k ${sampling.topK}, top-p ${sampling.topP}, seed ${a.seed}`) + '\n');
  const text = new Utf8Stream();
  process.stdout.write(a.prompt!);
  const t0 = performance.now();
  const ids = await generate(model, prompt, {
    ...sampling,
    maxTokens: a['max-tokens']!,
    seed: a.seed!,
    stopId: a['no-stop'] ? null : eot,
    onToken: (id) => process.stdout.write(text.push(tokenizer.tokenBytes(id))),
  });
  process.stdout.write(text.end() + '\n');
  const s = (performance.now() - t0) / 1000;
  process.stderr.write(`generate: ${ids.length} tokens in ${s.toFixed(2)} s (${(ids.length / s).toFixed(1)} tokens/s)\n`);
  model.dispose();
  return 0;
}
