// Dispatches `zili <command> ...` to src/cli/<command>.ts. Each command module exports
// `run(argv: string[]): Promise<number>` returning the process exit code.
import { UsageError } from './args.js';
import { isBrokenPipe, userMessage } from '../util/errors.js';

const COMMANDS: Record<string, { file: string; summary: string }> = {
  train: { file: './train.js', summary: 'train a model (built-in corpus when no data is named)' },
  run: { file: './run.js', summary: 'supervise a training job: restart it from its last checkpoint when it fails' },
  prepare: { file: './prepare.js', summary: 'turn text into binary token shards' },
  tokenizer: { file: './tokenizer.js', summary: 'train or inspect a byte-level BPE tokenizer' },
  generate: { file: './generate.js', summary: 'generate text from a checkpoint' },
  checkpoint: { file: './checkpoint.js', summary: 'consolidate a data-parallel checkpoint into one process\'s' },
  serve: { file: './serve.js', summary: 'OpenAI-compatible HTTP server (continuous batching)' },
  chat: { file: './chat.js', summary: 'chat with a checkpoint in the terminal' },
  export: { file: './export.js', summary: 'export a checkpoint as a Hugging Face folder or a GGUF file' },
  import: { file: './import.js', summary: 'import a Hugging Face LLaMA-style folder as a zili checkpoint' },
  bench: { file: './bench.js', summary: 'benchmarks: gemm, kernels, train, serve' },
  plan: { file: './plan.js', summary: 'plan a training run on N chips of a kind' },
  selftest: { file: './selftest.js', summary: 'backend conformance kit' },
  info: { file: './info.js', summary: 'model presets and exact parameter counts' },
  dashboard: { file: './dashboard.js', summary: 'live web page of training runs (curves, checkpoints, per-rank times)' },
};

function usage(): string {
  const lines = ['usage: zili <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', 'Run `zili <command> --help` for the options of one command.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 2;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    console.error(`zili: unknown command '${cmd}'.\n\n${usage()}`);
    return 2;
  }
  let mod: { run(argv: string[]): Promise<number> };
  try {
    mod = await import(entry.file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(e).includes(entry.file.slice(2))) {
      console.error(`zili: command '${cmd}' is not built into this version.`);
      return 2;
    }
    throw e;
  }
  // `zili generate | head`: the reader went away; stop at once, quietly (as a SIGPIPE would)
  process.stdout.on('error', (e) => {
    if (!isBrokenPipe(e)) console.error(`zili ${cmd}: cannot write the output: ${userMessage(e) ?? e.message}`);
    process.exit(isBrokenPipe(e) ? 0 : 1);
  });
  try {
    return await mod.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`zili ${cmd}: ${e.message}`);
      return 2;
    }
    const line = userMessage(e);
    if (line !== null) {
      console.error(`zili ${cmd}: ${line}`);
      return 1;
    }
    throw e;
  }
}
