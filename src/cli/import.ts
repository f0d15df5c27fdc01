// `zili import --from hf DIR --out RUN`: a Hugging Face LLaMA-style model folder as a zili run
// folder that generate, serve, chat and `train --init` accept.
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { importHf } from '../interop/hf-import.js';

const FLAGS = {
  from: { kind: 'string', help: 'source format: hf (a Hugging Face model folder); the folder follows it' },
  out: { kind: 'string', help: 'the run folder to create' },
  name: { kind: 'string', help: "the model's name (default: zili's record in the folder, else the folder's name)" },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'import');
  if (a.help) {
    console.log(formatHelp('import', FLAGS, '--from hf DIR --out RUN'));
    return 0;
  }
  if (a.from !== 'hf') throw new UsageError(`--from must be hf (a Hugging Face model folder), got ${a.from === undefined ? 'nothing' : `'${a.from}'`}`);
  if (a._.length !== 1) throw new UsageError('name exactly one model folder: zili import --from hf DIR --out RUN');
  if (!a.out) throw new UsageError('name the run folder to create with --out RUN');
  const r = importHf(a._[0]!, a.out, { name: a.name });
  for (const n of r.notes) process.stderr.write(`import: note: ${n}\n`);
  process.stderr.write(`import: '${r.config.name}' (${r.config.layers} layers, d_model ${r.config.dModel}${r.config.moe ? `, ${r.config.moe.experts} experts` : ''}) -> ${r.checkpoint}\n`);
  return 0;
}
