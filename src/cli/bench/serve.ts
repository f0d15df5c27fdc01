// `zili bench serve`: a load test of `zili serve` on loopback. Starts the server as a child process
// (a checkpoint, or seeded random weights of a preset with the built-in tokenizer), then for each
// concurrency level C runs C clients that each send R streamed completions of exactly N tokens
// (ignore_eos, greedy) one after another; with --repeat, the levels run round-robin and each
// reports its fastest round. Reports per level: requests completed, aggregate
// tokens/s, the speed-up over one client, p50/p99 time to first token and inter-token latency, and
// tokens per CPU-second of the server process (from /proc: on a shared, oversubscribed machine
// wall-clock rates mostly measure the other processes; CPU time shows the work batching saves).
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from '../args.js';
import { getBackend } from '../../backend/registry.js';
import { ensureBuiltinData } from '../../data/builtin.js';
import { preset } from '../../nn/presets.js';
import { Transformer } from '../../nn/transformer.js';
import { DecodeSlots, decodeStep, feedBatch } from '../../infer/batch-decode.js';
import { loadForInference } from '../../serve/load-model.js';
import { saveCheckpoint } from '../../train/checkpoint.js';
import { modelTensors } from '../../train/train-state.js';
import { repoRoot } from '../../util/paths.js';

const FLAGS = {
  checkpoint: { kind: 'string', help: 'serve this checkpoint (default: random weights of --preset)' },
  preset: { kind: 'string', help: 'model preset for random weights', default: 'small' },
  clients: { kind: 'string', help: 'concurrency levels, comma-separated', default: '1,16,32' },
  requests: { kind: 'int', help: 'requests per client, one after another', default: 4 },
  repeat: { kind: 'int', help: 'rounds over all levels; each level reports its fastest round (noisy machines)', default: 1 },
  'max-tokens': { kind: 'int', help: 'tokens generated per request', default: 64 },
  'max-batch': { kind: 'int', help: "the server's --max-batch", default: 32 },
  threads: { kind: 'int', help: "the server's CPU threads (default: its default)" },
  'decode-only': { kind: 'bool', help: 'no server: time one batched decoding step in-process at each --clients batch size (best of 8 steps)' },
  json: { kind: 'bool', help: 'print the results as JSON' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

const PROMPTS = ['The old man and the sea', 'In the beginning the city was', 'She opened the letter and read', 'A small boat crossed the bay', 'When the rain stopped, the children'];

interface RequestStats {
  ok: boolean;
  tokens: number;
  ttft: number;
  gaps: number[];
}

export interface LevelResult {
  clients: number;
  requests: number;
  completed: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** tokens per CPU-second of the server process (NaN where /proc is unavailable) */
  tokensPerCpuSecond: number;
  ttftP50: number;
  ttftP99: number;
  itlP50: number;
  itlP99: number;
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function randomRun(presetName: string): Promise<string> {
  const cfg = preset(presetName);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-bench-serve-'));
  const data = await ensureBuiltinData({ vocab: cfg.vocab, log: () => {} });
  const model = new Transformer(cfg, await getBackend('cpu'), { seed: 1 });
  saveCheckpoint(dir, { modelConfig: cfg, step: 0, trainConfig: null, tensors: await modelTensors(model), data: null, rng: null });
  model.dispose();
  fs.copyFileSync(data.tokenizerPath, path.join(dir, 'tokenizer.json'));
  return dir;
}

function startServer(checkpoint: string, maxBatch: number, threads: number | undefined): Promise<{ proc: ChildProcess; base: string; model: string }> {
  const args = ['serve', '--checkpoint', checkpoint, '--port', '0', '--max-batch', String(maxBatch), '--max-queue', '1024'];
  if (threads !== undefined) args.push('--threads', String(threads));
  const proc = spawn(path.join(repoRoot(), 'bin', 'zili'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      const name = /model '([^']+)'/.exec(err);
      if (m && name) resolve({ proc, base: m[1]!, model: name[1]! });
    });
    proc.on('exit', (code) => reject(new Error(`zili serve exited with ${code}: ${err}`)));
  });
}

async function oneRequest(base: string, model: string, prompt: string, maxTokens: number): Promise<RequestStats> {
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true }, ignore_eos: true }),
  });
  const stats: RequestStats = { ok: false, tokens: 0, ttft: NaN, gaps: [] };
  if (r.status !== 200 || !r.body) return stats;
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = '', last = NaN;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const data = buf.slice(6, i);
      buf = buf.slice(i + 2);
      if (data === '[DONE]') {
        stats.ok = true;
        continue;
      }
      const j = JSON.parse(data) as { choices: { finish_reason: string | null }[]; usage?: { completion_tokens: number } | null };
      if (j.usage) stats.tokens = j.usage.completion_tokens;
      if (j.choices[0] && j.choices[0].finish_reason === null) {
        const now = performance.now();
        if (Number.isNaN(last)) stats.ttft = now - t0;
        else stats.gaps.push(now - last);
        last = now;
      }
    }
  }
  stats.ok &&= stats.tokens === maxTokens;
  return stats;
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN when unavailable. */
function cpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

async function level(base: string, model: string, pid: number, clients: number, requests: number, maxTokens: number): Promise<LevelResult> {
  const all: RequestStats[] = [];
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let k = 0; k < requests; k++) all.push(await oneRequest(base, model, PROMPTS[(c + k) % PROMPTS.length]!, maxTokens));
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const tokens = all.reduce((s, r) => s + r.tokens, 0);
  const gaps = all.flatMap((r) => r.gaps);
  const ttfts = all.map((r) => r.ttft).filter((x) => !Number.isNaN(x));
  return {
    clients, requests: clients * requests, completed: all.filter((r) => r.ok).length, tokens, seconds, tokensPerSecond: tokens / seconds, tokensPerCpuSecond: tokens / cpu,
    ttftP50: quantile(ttfts, 0.5), ttftP99: quantile(ttfts, 0.99), itlP50: quantile(gaps, 0.5), itlP99: quantile(gaps, 0.99),
  };
}

/** Times decodeStep in-process: batch B from the levels, every row at position 8 + step. */
async function decodeOnly(checkpoint: string | null, presetName: string, levels: number[], json: boolean): Promise<number> {
  const be = await getBackend('cpu');
  const model = checkpoint ? loadForInference(checkpoint, be).model : new Transformer(preset(presetName), be, { seed: 1 });
  const out: { batch: number; msPerStep: number; tokensPerSecond: number }[] = [];
  for (const B of levels) {
    const slots = new DecodeSlots(model, B, model.config.seqLen);
    const { cache } = await feedBatch(model, Array.from({ length: B }, (_, b) => [1 + b, 2, 3, 4, 5, 6, 7, 8]));
    for (let b = 0; b < B; b++) slots.load(b, cache, b, 8);
    cache.dispose();
    let best = Infinity;
    for (let i = 0; i < 8; i++) {
      const t0 = performance.now();
      await decodeStep(model, slots, Array.from({ length: B }, (_, b) => 10 + b));
      best = Math.min(best, performance.now() - t0);
    }
    slots.dispose();
    out.push({ batch: B, msPerStep: best, tokensPerSecond: (B * 1000) / best });
    if (!json) console.log(`batch ${String(B).padStart(3)}: ${best.toFixed(1)} ms per step, ${((B * 1000) / best).toFixed(0)} tokens/s (x${((B * 1000) / best / out[0]!.tokensPerSecond).toFixed(2)})`);
  }
  if (json) console.log(JSON.stringify({ model: model.config.name, decode: out }, null, 2));
  model.dispose();
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'bench serve');
  if (a.help) {
    console.log(formatHelp('bench serve', FLAGS, '[--checkpoint DIR | --preset small] [--clients 1,16,32] [options]'));
    return 0;
  }
  const levels = a.clients!.split(',').map((s) => Number(s.trim()));
  if (levels.some((n) => !Number.isInteger(n) || n < 1)) throw new UsageError(`--clients must be whole numbers >= 1, comma-separated, got '${a.clients}'`);
  if (a['decode-only']) return decodeOnly(a.checkpoint ?? null, a.preset!, levels, a.json ?? false);
  const checkpoint = a.checkpoint ?? (await randomRun(a.preset!));
  const removeRun = () => a.checkpoint === undefined && fs.rmSync(checkpoint, { recursive: true, force: true });
  const { proc, base, model } = await startServer(checkpoint, a['max-batch']!, a.threads).catch((e) => {
    removeRun();
    throw e;
  });
  const results: LevelResult[] = [];
  const rounds: number[][] = levels.map(() => []);
  try {
    await oneRequest(base, model, 'warm up', 4);
    for (let round = 0; round < a.repeat!; round++)
      for (const [i, c] of levels.entries()) {
        const r = await level(base, model, proc.pid!, c, a.requests!, a['max-tokens']!);
        rounds[i]!.push(r.tokensPerSecond);
        if (!results[i] || r.completed < r.requests || (results[i]!.completed === results[i]!.requests && r.tokensPerSecond > results[i]!.tokensPerSecond)) results[i] = r;
      }
    for (const [i, r] of results.entries()) {
      if (!a.json)
        console.log(
          `clients ${String(r.clients).padStart(3)}: ${r.completed}/${r.requests} requests, ${r.tokens} tokens in ${r.seconds.toFixed(1)} s = ${r.tokensPerSecond.toFixed(1)} tok/s` +
            ` (x${(r.tokensPerSecond / results[0]!.tokensPerSecond).toFixed(2)} of ${results[0]!.clients} client(s)), ${r.tokensPerCpuSecond.toFixed(1)} tok per server CPU-s` +
            ` (x${(r.tokensPerCpuSecond / results[0]!.tokensPerCpuSecond).toFixed(2)}); TTFT p50 ${r.ttftP50.toFixed(0)} ms p99 ${r.ttftP99.toFixed(0)} ms; inter-token p50 ${r.itlP50.toFixed(1)} ms p99 ${r.itlP99.toFixed(1)} ms` +
            (a.repeat! > 1 ? `; rounds ${rounds[i]!.map((x) => x.toFixed(1)).join(', ')} tok/s` : ''),
        );
    }
  } finally {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    removeRun();
  }
  if (a.json) console.log(JSON.stringify({ model, checkpoint, results, rounds }, null, 2));
  return results.every((r) => r.completed === r.requests) ? 0 : 1;
}
