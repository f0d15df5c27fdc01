// `zili serve`: an OpenAI-compatible HTTP server for a checkpoint, with continuous batching.
// SIGTERM or Ctrl-C drains: no new requests, the running ones finish, then the process exits.
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { getBackend } from '../backend/registry.js';
import { bytesPerPosition } from '../infer/batch-decode.js';
import { Engine } from '../serve/engine.js';
import { loadForInference } from '../serve/load-model.js';
import { ZiliServer } from '../serve/server.js';

const FLAGS = {
  checkpoint: { kind: 'string', help: "a run's --out folder (its newest checkpoint) or one step-NNNNNNNN folder" },
  host: { kind: 'string', help: 'address to listen on', default: '127.0.0.1' },
  port: { kind: 'int', help: 'TCP port (0: any free port, printed)', default: 8080 },
  'model-name': { kind: 'string', help: "the model's id in the API (default: the checkpoint's model name)" },
  'max-batch': { kind: 'int', help: 'sequences decoded together at most', default: 32 },
  'kv-cache': { kind: 'size', help: 'KV-cache memory in bytes (e.g. 512M): full-context slots, at most --max-batch (default: --max-batch slots)' },
  'max-queue': { kind: 'int', help: 'requests waiting for a slot at most; beyond, 429 with Retry-After', default: 64 },
  'max-body': { kind: 'size', help: 'largest request body in bytes', default: 1_000_000 },
  'default-max-tokens': { kind: 'int', help: 'max_tokens of a completion request that gives none', default: 16 },
  tokenizer: { kind: 'string', help: 'tokenizer.json (default: the one in the run folder)' },
  backend: { kind: 'string', help: 'compute backend', default: 'cpu' },
  threads: { kind: 'int', help: 'CPU threads (default: ZILI_THREADS or 2)' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'serve');
  if (a.help) {
    console.log(formatHelp('serve', FLAGS, '--checkpoint DIR [--host 127.0.0.1] [--port 8080] [options]'));
    return 0;
  }
  if (a._.length) throw new UsageError(`unexpected argument '${a._[0]}' (options start with --)`);
  if (!a.checkpoint) throw new UsageError('name the checkpoint with --checkpoint DIR (a run folder or a step folder)');
  if (a.port! < 0 || a.port! > 65535) throw new UsageError(`--port must be between 0 and 65535, got ${a.port}`);
  for (const k of ['max-batch', 'max-body', 'default-max-tokens'] as const) if (!(a[k]! >= 1)) throw new UsageError(`--${k} must be >= 1, got ${a[k]}`);
  if (a['max-queue']! < 0) throw new UsageError(`--max-queue must be >= 0, got ${a['max-queue']}`);

  const be = await getBackend(a.backend!);
  const native = (be as { native?: { setThreads(n: number): void } }).native;
  if (a.threads !== undefined && native) native.setThreads(a.threads);
  const m = loadForInference(a.checkpoint, be, { tokenizer: a.tokenizer });
  const cfg = m.model.config;
  const slotBytes = cfg.seqLen * bytesPerPosition(m.model);
  const kvBudget = a['kv-cache'] ?? a['max-batch']! * slotBytes;
  if (kvBudget < slotBytes) throw new UsageError(`--kv-cache ${kvBudget} bytes cannot hold one sequence of the model's context (${cfg.seqLen} positions: ${slotBytes} bytes); raise it`);
  const engine = new Engine(m.model, { maxBatch: a['max-batch']!, kvBudgetBytes: kvBudget, maxQueue: a['max-queue']! });
  const name = a['model-name'] ?? cfg.name;
  const server = new ZiliServer(
    { name, tokenizer: m.tokenizer, template: m.template, eotId: m.eotId, chatStopIds: m.chatStopIds },
    engine,
    { maxBodyBytes: a['max-body']!, defaultCompletionTokens: a['default-max-tokens']! },
  );
  const addr = await server.listen(a.port!, a.host!).catch((e: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot listen on ${a.host}:${a.port}: ${e.code === 'EADDRINUSE' ? 'the port is in use; choose another with --port (0: any free port)' : e.message}`);
  });
  const st = engine.stats();
  process.stderr.write(
    `serve: model '${name}' (step ${m.checkpoint.step}, ${m.checkpoint.dir}), context ${cfg.seqLen}, batch up to ${st.slots}, ` +
      `KV cache ${(st.kvBytesBudget / 2 ** 20).toFixed(1)} MiB, queue ${a['max-queue']}\n`,
  );
  // the address on stdout, alone, so scripts and tests can read it
  console.log(`listening on http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}`);

  await new Promise<void>((resolve) => {
    let draining = false;
    const onSignal = (sig: string) => {
      if (draining) {
        process.stderr.write(`serve: ${sig} again: exiting now\n`);
        process.exit(130);
      }
      draining = true;
      const s = engine.stats();
      process.stderr.write(`serve: ${sig}: draining (${s.active} running, ${s.queued} queued), no new requests\n`);
      void server.drain().then(resolve);
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
  process.stderr.write('serve: drained, exiting\n');
  engine.dispose();
  m.model.dispose();
  return 0;
}
