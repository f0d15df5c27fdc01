// `zili export`: a checkpoint as a Hugging Face model folder (--format hf) or one GGUF file for
// llama.cpp (--format gguf, f32/f16/bf16).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { readExportSource } from '../interop/export-source.js';
import { exportGguf } from '../interop/gguf-export.js';
import { exportHf } from '../interop/hf-export.js';
import { hfArchitecture, InteropError } from '../interop/hf-layout.js';

const FLAGS = {
  checkpoint: { kind: 'string', help: "a run's --out folder (its newest checkpoint) or one step-NNNNNNNN folder" },
  format: { kind: 'string', help: 'hf (a Hugging Face model folder) or gguf (one llama.cpp file)' },
  out: { kind: 'string', help: 'the folder (hf) or file (gguf) to write; must not exist yet' },
  dtype: { kind: 'string', help: 'gguf weight type: f32, f16 or bf16 (hf is always f32)', default: 'f32' },
  tokenizer: { kind: 'string', help: 'tokenizer.json (default: the one in the run folder)' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'export');
  if (a.help) {
    console.log(formatHelp('export', FLAGS, '--checkpoint DIR --format hf|gguf --out PATH'));
    return 0;
  }
  if (a._.length) throw new UsageError(`unexpected argument '${a._[0]}' (options start with --)`);
  if (!a.checkpoint) throw new UsageError('name the checkpoint with --checkpoint DIR (a run folder or a step folder)');
  if (a.format !== 'hf' && a.format !== 'gguf') throw new UsageError(`--format must be hf or gguf, got ${a.format === undefined ? 'nothing' : `'${a.format}'`}`);
  if (!a.out) throw new UsageError(`name the output with --out ${a.format === 'hf' ? 'FOLDER' : 'FILE.gguf'}`);
  if (!['f32', 'f16', 'bf16'].includes(a.dtype!)) throw new UsageError(`--dtype must be f32, f16 or bf16, got '${a.dtype}'`);
  if (a.format === 'hf' && a.dtype !== 'f32') throw new UsageError('--dtype applies to gguf only; the hf export is f32 (exact)');
  const src = readExportSource(a.checkpoint, a.tokenizer);
  const c = src.config;
  if (a.format === 'hf') {
    const files = exportHf(src, a.out);
    process.stderr.write(`export: '${c.name}' step ${src.checkpoint.step} -> ${a.out} (${hfArchitecture(c)}): ${files.join(', ')}\n`);
  } else {
    if (fs.existsSync(a.out)) throw new InteropError(`${a.out} already exists; choose a fresh --out`);
    fs.mkdirSync(path.dirname(path.resolve(a.out)), { recursive: true });
    const tmp = `${a.out}.tmp-${process.pid}`;
    try {
      const bytes = exportGguf(src, tmp, a.dtype as 'f32' | 'f16' | 'bf16');
      fs.renameSync(tmp, a.out);
      process.stderr.write(`export: '${c.name}' step ${src.checkpoint.step} -> ${a.out} (GGUF llama, ${a.dtype}, ${(bytes / 2 ** 20).toFixed(1)} MiB)\n`);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  return 0;
}
