// The OpenAI-compatible server over real HTTP on loopback: completions and chat completions (JSON
// and server-sent events, usage chunk, [DONE]) agree with `generate`; every bad request gets a 4xx
// OpenAI error object while a stream in flight carries on; a client that disconnects frees its
// slot; a full queue answers 429 with Retry-After; stop strings; /health and /metrics; drain.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/registry.js';
import { generate } from '../src/infer/generate.js';
import { bytesPerPosition } from '../src/infer/batch-decode.js';
import { renderChat } from '../src/serve/chat-template.js';
import { Engine } from '../src/serve/engine.js';
import { type LoadedModel, loadForInference } from '../src/serve/load-model.js';
import { ZiliServer } from '../src/serve/server.js';
import { DENSE, makeRun } from './serve-helpers.js';

let m: LoadedModel;
let server: ZiliServer;
let base = '';
const NAME = 'fixture';

function startServer(opts: { maxBatch?: number; maxQueue?: number } = {}): Promise<{ server: ZiliServer; base: string }> {
  const engine = new Engine(m.model, { maxBatch: opts.maxBatch ?? 8, kvBudgetBytes: 8 * m.model.config.seqLen * bytesPerPosition(m.model), maxQueue: opts.maxQueue ?? 8 });
  const s = new ZiliServer({ name: NAME, tokenizer: m.tokenizer, template: m.template, eotId: m.eotId, chatStopIds: m.chatStopIds }, engine, { maxBodyBytes: 4096, defaultCompletionTokens: 16 });
  return s.listen(0, '127.0.0.1').then((a) => ({ server: s, base: `http://127.0.0.1:${a.port}` }));
}

before(async () => {
  m = loadForInference(await makeRun(DENSE), await getBackend('cpu'));
  ({ server, base } = await startServer());
});

after(async () => {
  await server.drain();
  m.model.dispose();
});

const post = (path: string, body: unknown, b = base) =>
  fetch(`${b}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** The JSON payloads of an SSE response, in order ('[DONE]' as a string). */
async function events(r: Response): Promise<unknown[]> {
  const text = await r.text();
  const out: unknown[] = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    assert.ok(block.startsWith('data: '), `SSE block ${JSON.stringify(block)}`);
    const data = block.slice(6);
    out.push(data === '[DONE]' ? data : JSON.parse(data));
  }
  return out;
}

async function greedy(prompt: number[], n: number): Promise<string> {
  const ids = await generate(m.model, prompt, { temperature: 0, maxTokens: n, stopId: m.eotId });
  return m.tokenizer.decode(ids);
}

test('completions: greedy text equals generate; usage counts; streamed chunks add up to the same text', async () => {
  const prompt = 'The sea was calm';
  const want = await greedy(m.tokenizer.encode(prompt), 12);
  const r = await post('/v1/completions', { model: NAME, prompt, max_tokens: 12, temperature: 0 });
  assert.equal(r.status, 200);
  const j = (await r.json()) as { object: string; choices: { text: string; finish_reason: string }[]; usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
  assert.equal(j.object, 'text_completion');
  assert.equal(j.choices[0]!.text, want);
  assert.equal(j.usage.prompt_tokens, m.tokenizer.encode(prompt).length);
  assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
  const s = await post('/v1/completions', { model: NAME, prompt, max_tokens: 12, temperature: 0, stream: true });
  assert.match(s.headers.get('content-type') ?? '', /text\/event-stream/);
  const ev = await events(s);
  assert.equal(ev.at(-1), '[DONE]');
  const chunks = ev.slice(0, -1) as { choices: { text: string; finish_reason: string | null }[] }[];
  assert.equal(chunks.map((c) => c.choices[0]!.text).join(''), want);
  assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, j.choices[0]!.finish_reason);
});

test('chat: the prompt is the chat template; the stream has a role chunk, text, finish, usage chunk, [DONE]', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Tell me about the sea.' }];
  const want = await greedy(m.tokenizer.encode(renderChat(m.template, messages)), 10);
  const r = await post('/v1/chat/completions', { model: NAME, messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
  const ev = await events(r);
  assert.equal(ev.at(-1), '[DONE]');
  const usageChunk = ev.at(-2) as { choices: unknown[]; usage: { completion_tokens: number; prompt_tokens: number } };
  assert.deepEqual(usageChunk.choices, []);
  assert.equal(usageChunk.usage.prompt_tokens, m.tokenizer.encode(renderChat(m.template, messages)).length);
  const chunks = ev.slice(0, -2) as { object: string; usage: null; choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[] }[];
  assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.usage === null));
  assert.equal(chunks.map((c) => c.choices[0]!.delta.content ?? '').join(''), want);
  assert.ok(chunks.at(-1)!.choices[0]!.finish_reason !== null);
  const j = (await (await post('/v1/chat/completions', { model: NAME, messages, max_tokens: 10, temperature: 0 })).json()) as { choices: { message: { role: string; content: string } }[] };
  assert.deepEqual(j.choices[0]!.message.role, 'assistant');
  assert.equal(j.choices[0]!.message.content, want);
});

test('stop strings end the text before them; seeded sampling is reproducible', async () => {
  const prompt = 'Once upon a time';
  const full = await greedy(m.tokenizer.encode(prompt), 20);
  const stop = full.slice(3, 5);
  assert.ok(stop.length === 2 && full.indexOf(stop) >= 0);
  const j = (await (await post('/v1/completions', { model: NAME, prompt, max_tokens: 20, temperature: 0, stop: [stop] })).json()) as { choices: { text: string; finish_reason: string }[] };
  assert.equal(j.choices[0]!.text, full.slice(0, full.indexOf(stop)));
  assert.equal(j.choices[0]!.finish_reason, 'stop');
  const sample = async () => ((await (await post('/v1/completions', { model: NAME, prompt, max_tokens: 12, temperature: 1, top_p: 0.9, seed: 42 })).json()) as { choices: { text: string }[] }).choices[0]!.text;
  assert.equal(await sample(), await sample());
});

test('bad requests get 400 with an OpenAI error object while a stream in flight carries on', async () => {
  const ctx = DENSE.seqLen;
  const running = post('/v1/completions', { model: NAME, prompt: 'The ship', max_tokens: 40, temperature: 0, stream: true });
  const cases: [string, unknown, string | null][] = [
    ['malformed JSON', '{"model": ', 'invalid_json'],
    ['not an object', '[1, 2]', null],
    ['unknown model', { model: 'gpt-4', prompt: 'x' }, 'model_not_found'],
    ['missing model', { prompt: 'x' }, null],
    ['missing messages', { model: NAME }, null],
    ['empty messages', { model: NAME, messages: [] }, null],
    ['bad role', { model: NAME, messages: [{ role: 'wizard', content: 'x' }] }, null],
    ['max_tokens beyond the context', { model: NAME, messages: [{ role: 'user', content: 'x' }], max_tokens: ctx + 1 }, 'context_length_exceeded'],
    ['prompt longer than the context', { model: NAME, messages: [{ role: 'user', content: 'sea '.repeat(ctx) }] }, 'context_length_exceeded'],
    ['negative temperature', { model: NAME, messages: [{ role: 'user', content: 'x' }], temperature: -1 }, null],
    ['body over the size limit', JSON.stringify({ model: NAME, messages: [{ role: 'user', content: 'x'.repeat(5000) }] }), 'request_too_large'],
    ['n > 1', { model: NAME, messages: [{ role: 'user', content: 'x' }], n: 2 }, null],
  ];
  for (const [what, body, code] of cases) {
    const path = what === 'unknown model' || what === 'missing model' ? '/v1/completions' : '/v1/chat/completions';
    const r = await post(path, body);
    assert.equal(r.status, 400, what);
    const e = (await r.json()) as { error: { message: string; type: string; code: string | null } };
    assert.equal(e.error.type, 'invalid_request_error', what);
    assert.ok(e.error.message.length > 10, what);
    if (code) assert.equal(e.error.code, code, what);
  }
  const nf = await fetch(`${base}/v1/nothing`);
  assert.equal(nf.status, 404);
  const ev = await events(await running);
  assert.equal(ev.at(-1), '[DONE]', 'the stream in flight finished');
  const ok = await post('/v1/completions', { model: NAME, prompt: 'still', max_tokens: 3 });
  assert.equal(ok.status, 200, 'the server keeps serving');
});

test('a client that disconnects mid-stream frees its slot at once', async () => {
  const ac = new AbortController();
  const r = await fetch(`${base}/v1/completions`, { method: 'POST', signal: ac.signal, body: JSON.stringify({ model: NAME, prompt: 'Far away', max_tokens: 80, temperature: 0, stream: true }) });
  const reader = r.body!.getReader();
  await reader.read();
  assert.equal(server.engine.stats().active, 1);
  ac.abort();
  const t0 = Date.now();
  while (server.engine.stats().active > 0 && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 5));
  assert.equal(server.engine.stats().active, 0);
  assert.equal(server.engine.stats().kvBytesUsed, 0);
  assert.ok(server.engine.stats().tokensGenerated < 1000);
});

test('beyond the batch and the queue: 429 with Retry-After; /health and /metrics; drain finishes running requests', async () => {
  const small = await startServer({ maxBatch: 1, maxQueue: 1 });
  const body = { model: NAME, prompt: 'Waves', max_tokens: 60, temperature: 0 };
  const a = post('/v1/completions', body, small.base);
  const b = post('/v1/completions', body, small.base);
  while (small.server.engine.stats().active + small.server.engine.stats().queued < 2) await new Promise((res) => setTimeout(res, 2));
  const c = await post('/v1/completions', body, small.base);
  assert.equal(c.status, 429);
  assert.ok(Number(c.headers.get('retry-after')) >= 1);
  assert.equal(((await c.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
  const health = await fetch(`${small.base}/health`);
  assert.equal(health.status, 200);
  const metrics = await (await fetch(`${small.base}/metrics`)).text();
  for (const name of ['zili_requests_total{endpoint="/v1/completions",status="429"} 1', 'zili_queue_length 1', 'zili_requests_running 1', 'zili_kv_cache_usage_ratio', 'zili_generation_tokens_per_second'])
    assert.ok(metrics.includes(name), `/metrics has ${name}`);
  const drained = small.server.drain();
  const [ra, rb] = await Promise.all([a, b]);
  assert.deepEqual([ra.status, rb.status], [200, 200], 'drain lets running and queued requests finish');
  assert.equal(((await ra.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 60);
  await drained;
  await assert.rejects(fetch(`${small.base}/health`), 'the listener is closed after the drain');
});
