// The OpenAI-compatible HTTP server on node:http: GET /v1/models, POST /v1/completions and
// /v1/chat/completions (JSON, or server-sent events with `stream: true`), GET /health and
// GET /metrics. Generation goes through the continuous-batching Engine. Every bad request gets a
// 4xx with an OpenAI-style error object and never disturbs the other requests; a client that goes
// away frees its batch slot; drain() stops taking requests and waits for the running ones.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { Tokenizer } from '../data/tokenizer.js';
import { Utf8Stream } from '../infer/generate.js';
import { type ChatTemplate, renderChat } from './chat-template.js';
import { Engine, EngineStoppedError, type FinishReason, QueueFullError } from './engine.js';
import { RequestCounter, prometheusText } from './metrics.js';
import { type ApiRequest, ApiError, chatResponse, completionResponse, errorBody, parseRequest, type ResponseMeta, streamChunk, usage, usageChunk } from './protocol.js';
import { StopText } from './stop-text.js';

export interface ServedModel {
  name: string;
  tokenizer: Tokenizer;
  template: ChatTemplate;
  eotId: number | null;
  chatStopIds: ReadonlySet<number>;
}

export interface ServerOptions {
  /** request bodies beyond this many bytes are refused */
  maxBodyBytes: number;
  /** max_tokens of a completion that names none (OpenAI's default is 16) */
  defaultCompletionTokens: number;
}

const COMPLETIONS = '/v1/completions';
const CHAT = '/v1/chat/completions';

export class ZiliServer {
  readonly http: http.Server;
  private draining = false;
  private readonly requests = new RequestCounter();
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    readonly served: ServedModel,
    readonly engine: Engine,
    readonly opts: ServerOptions,
  ) {
    this.http = http.createServer((req, res) => {
      this.handle(req, res).catch((e) => this.fail(res, req.url ?? '', e));
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve(this.http.address() as AddressInfo);
      });
    });
  }

  /** Stops taking requests, lets the running ones finish, closes the listener. */
  async drain(): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((r) => this.http.close(() => r()));
    this.http.closeIdleConnections();
    await this.engine.drain();
    this.http.closeIdleConnections();
    await closed;
  }

  private send(res: http.ServerResponse, endpoint: string, status: number, body: object | string, headers: Record<string, string> = {}): void {
    this.requests.add(endpoint, status);
    if (res.headersSent || res.destroyed) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': typeof body === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private fail(res: http.ServerResponse, endpoint: string, e: unknown): void {
    const err = e instanceof ApiError ? e
      : e instanceof QueueFullError ? new ApiError(429, e.message, null, 'rate_limit_exceeded')
      : e instanceof EngineStoppedError ? new ApiError(503, e.message, null, 'shutting_down')
      : e instanceof RangeError ? new ApiError(400, e.message, null, 'context_length_exceeded')
      : new ApiError(500, `internal error: ${(e as Error).message ?? e}`);
    const headers: Record<string, string> = {};
    if (e instanceof QueueFullError) headers['Retry-After'] = String(e.retryAfterSeconds);
    if (err.code === 'request_too_large') headers.Connection = 'close';
    this.send(res, endpoint, err.status, errorBody(err), headers);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const route = `${req.method} ${p}`;
    if (route === 'GET /health') return this.send(res, p, this.draining ? 503 : 200, { status: this.draining ? 'draining' : 'ok' });
    if (route === 'GET /metrics') return this.send(res, p, 200, prometheusText(this.engine.stats(), this.requests));
    if (route === 'GET /v1/models') return this.send(res, p, 200, { object: 'list', data: [this.modelCard()] });
    if (req.method === 'GET' && p.startsWith('/v1/models/')) {
      const id = decodeURIComponent(p.slice('/v1/models/'.length));
      if (id === this.served.name) return this.send(res, '/v1/models/{id}', 200, this.modelCard());
      throw new ApiError(404, `The model '${id}' does not exist on this server; it serves '${this.served.name}'`, 'model', 'model_not_found');
    }
    if (p === COMPLETIONS || p === CHAT) {
      if (req.method !== 'POST') throw new ApiError(405, `${p} takes POST requests`, null, 'method_not_allowed');
      if (this.draining) throw new EngineStoppedError();
      const body = await readJson(req, this.opts.maxBodyBytes);
      const r = parseRequest(p === CHAT ? 'chat' : 'completion', body, { modelName: this.served.name, context: this.engine.model.config.seqLen });
      return this.generate(r, p, res);
    }
    throw new ApiError(404, `no route ${req.method} ${p} (this server has GET /v1/models, POST ${COMPLETIONS}, POST ${CHAT}, GET /health, GET /metrics)`, null, 'not_found');
  }

  private modelCard(): object {
    return { id: this.served.name, object: 'model', created: this.created, owned_by: 'zili', max_model_len: this.engine.model.config.seqLen };
  }

  private promptIds(r: ApiRequest): number[] {
    const tok = this.served.tokenizer;
    if (r.kind === 'chat') return tok.encode(renderChat(this.served.template, r.messages));
    if (typeof r.prompt !== 'string') {
      const badId = r.prompt.find((id) => id >= this.engine.model.config.vocab);
      if (badId !== undefined) throw new ApiError(400, `'prompt' holds token id ${badId}, beyond the vocabulary of ${this.engine.model.config.vocab}`, 'prompt');
      return r.prompt;
    }
    const ids = tok.encode(r.prompt);
    if (ids.length === 0) {
      if (this.served.eotId === null) throw new ApiError(400, `'prompt' is empty and this tokenizer has no <|endoftext|> to start from`, 'prompt');
      return [this.served.eotId];
    }
    return ids;
  }

  private generate(r: ApiRequest, endpoint: string, res: http.ServerResponse): void {
    const ctx = this.engine.model.config.seqLen;
    const prompt = this.promptIds(r);
    if (prompt.length >= ctx)
      throw new ApiError(400, `the prompt is ${prompt.length} tokens, but the model's context is ${ctx}; shorten it`, r.kind === 'chat' ? 'messages' : 'prompt', 'context_length_exceeded');
    const room = ctx - prompt.length;
    if (r.maxTokens !== null && r.maxTokens > room)
      throw new ApiError(400, `the prompt (${prompt.length} tokens) plus max_tokens (${r.maxTokens}) exceed the model's context of ${ctx} tokens; ask for at most ${room}`, 'max_tokens', 'context_length_exceeded');
    const maxTokens = r.maxTokens ?? (r.kind === 'chat' ? room : Math.min(room, this.opts.defaultCompletionTokens));
    const meta: ResponseMeta = { id: `${r.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model: this.served.name };
    const stopIds = new Set<number>(r.ignoreEos ? [] : r.kind === 'chat' ? this.served.chatStopIds : this.served.eotId !== null ? [this.served.eotId] : []);
    const stop = new StopText(r.kind === 'chat' ? [...r.stop, ...this.served.template.stop] : r.stop);
    const utf8 = new Utf8Stream();
    let text = '';
    let completion = 0;
    let finished = false;
    const sse = (obj: object | string) => res.write(`data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`);
    const out = (piece: string) => {
      if (!piece) return;
      text += piece;
      if (r.stream) sse(streamChunk(r.kind, meta, piece, null, r.includeUsage));
    };
    const handle = this.engine.submit({
      prompt,
      maxTokens,
      sampling: { temperature: r.temperature, topP: r.topP },
      seed: r.seed,
      stopIds,
      onToken: (id) => {
        completion++;
        out(stop.push(utf8.push(this.served.tokenizer.tokenBytes(id))));
        if (stop.stopped) handle.cancel('stop');
      },
      onFinish: (reason: FinishReason, error?: string) => {
        finished = true;
        if (reason === 'cancelled') return void (res.destroyed || res.end());
        if (reason === 'error') {
          const e = new ApiError(500, `generation failed: ${error}`);
          if (!r.stream) return this.fail(res, endpoint, e);
          this.requests.add(endpoint, 500);
          sse(errorBody(e));
          return void res.end();
        }
        if (!stop.stopped) out(stop.push(utf8.end()) + stop.end());
        const u = usage(prompt.length, completion);
        if (!r.stream) return this.send(res, endpoint, 200, r.kind === 'chat' ? chatResponse(meta, text, reason, u) : completionResponse(meta, text, reason, u));
        this.requests.add(endpoint, 200);
        sse(streamChunk(r.kind, meta, null, reason, r.includeUsage));
        if (r.includeUsage) sse(usageChunk(r.kind, meta, u));
        sse('[DONE]');
        res.end();
      },
    });
    // submit first: a full queue is still a plain 429, not a broken stream (tokens come after a tick)
    if (r.stream) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      if (r.kind === 'chat') sse(streamChunk('chat', meta, '', null, r.includeUsage, true));
    }
    // a client that goes away mid-request frees its slot at once
    res.on('close', () => {
      if (!finished) handle.cancel('cancelled');
    });
  }
}

/** Reads and parses a JSON body of at most limit bytes. */
function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const tooLarge = () => new ApiError(400, `the request body is larger than the server's limit of ${limit} bytes`, null, 'request_too_large');
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    let n = 0;
    req.on('data', (b: Buffer) => {
      n += b.length;
      if (n > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge());
      } else parts.push(new Uint8Array(b.buffer, b.byteOffset, b.length));
    });
    req.on('error', reject);
    req.on('end', () => {
      if (n > limit) return;
      const text = new TextDecoder().decode(Buffer.concat(parts));
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, `the request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json'));
      }
    });
  });
}
