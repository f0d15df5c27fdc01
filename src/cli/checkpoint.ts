// `zili checkpoint consolidate`: rewrites a checkpoint saved by data-parallel ranks (each rank's
// shards, any ZeRO stage) as a one-process checkpoint (one model.safetensors, one
// optimizer.safetensors) in a new run folder, verified by sha256 on the way in; `zili generate`,
// export tools and a one-process --resume read it like any other. The tokenizer copy comes along.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { CheckpointError, loadCheckpoint, saveCheckpoint } from '../train/checkpoint.js';
import { RUN_TOKENIZER_FILE } from '../train/trainer.js';

const FLAGS = {
  out: { kind: 'string', help: 'the run folder to write the one-process checkpoint into (must not hold one of the same step)' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

const SYNOPSIS = 'consolidate CHECKPOINT --out DIR   (CHECKPOINT: a run folder, meaning its newest checkpoint, or one step-NNNNNNNN folder)';

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'checkpoint');
  if (a.help) {
    console.log(formatHelp('checkpoint', FLAGS, SYNOPSIS));
    return 0;
  }
  const [sub, src, ...rest] = a._;
  if (sub !== 'consolidate') throw new UsageError(sub ? `unknown subcommand '${sub}'; usage: zili checkpoint ${SYNOPSIS}` : `usage: zili checkpoint ${SYNOPSIS}`);
  if (!src) throw new UsageError('name the checkpoint to consolidate (a run folder or a step folder)');
  if (rest.length) throw new UsageError(`unexpected argument '${rest[0]}'`);
  if (!a.out) throw new UsageError('name the output run folder with --out DIR');
  const ck = loadCheckpoint(src);
  const shards = ck.manifest.shards;
  const out = path.resolve(a.out);
  if (path.resolve(path.dirname(ck.dir)) === out) throw new CheckpointError(`--out ${a.out} is the checkpoint's own run folder; choose a new folder`);
  const dir = saveCheckpoint(out, {
    modelConfig: ck.modelConfig,
    step: ck.step,
    trainConfig: ck.trainConfig,
    tensors: ck.tensors,
    optimizer: ck.optimizer,
    data: ck.data,
    rng: ck.rng,
    metrics: ck.metrics,
  });
  const tok = path.join(path.dirname(ck.dir), RUN_TOKENIZER_FILE);
  if (fs.existsSync(tok)) fs.copyFileSync(tok, path.join(out, RUN_TOKENIZER_FILE));
  console.log(`zili checkpoint: ${ck.dir} (${shards ? `${shards.world} ranks, ZeRO-${shards.zero}` : 'one process'}) -> ${dir}`);
  return 0;
}
