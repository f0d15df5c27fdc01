// OpenAI's HTTP API shapes for completions and chat completions: validating a request body into a
// typed request (every problem is an ApiError naming the parameter), and building the responses,
// the streamed chunks and the error objects.
import type { ChatMessage } from './chat-template.js';
import type { FinishReason } from './engine.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function errorBody(e: ApiError): object {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}

export interface GenerationParams {
  model: string;
  /** null: not given (the server picks: 16 for completions, the rest of the context for chat) */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's extension: keep generating past <|endoftext|> (load tests, benchmarks) */
  ignoreEos: boolean;
}

export type ApiRequest =
  | ({ kind: 'completion'; prompt: string | number[] } & GenerationParams)
  | ({ kind: 'chat'; messages: ChatMessage[] } & GenerationParams);

export interface ProtocolLimits {
  modelName: string;
  /** the model's context */
  context: number;
}

const bad = (message: string, param: string | null, code: string | null = null) => new ApiError(400, message, param, code);

function num(body: Record<string, unknown>, key: string, dflt: number, ok: (x: number) => boolean, what: string): number {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw bad(`'${key}' must be ${what}, got ${JSON.stringify(v)}`, key);
  return v;
}

function common(body: Record<string, unknown>, limits: ProtocolLimits, defaultTemperature: number): GenerationParams {
  if (typeof body.model !== 'string' || body.model === '') throw bad(`'model' is required: use '${limits.modelName}' (GET /v1/models lists it)`, 'model');
  if (body.model !== limits.modelName)
    throw bad(`The model '${body.model}' does not exist on this server; it serves '${limits.modelName}'`, 'model', 'model_not_found');
  num(body, 'n', 1, (x) => x === 1, '1 (one choice per request)');
  const maxKey = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = body[maxKey] === undefined || body[maxKey] === null ? null : num(body, maxKey, 0, (x) => Number.isInteger(x) && x >= 1, 'a whole number >= 1');
  if (maxTokens !== null && maxTokens >= limits.context)
    throw bad(`'${maxKey}' is ${maxTokens}, but the model's context is ${limits.context} tokens (prompt included); ask for fewer`, maxKey, 'context_length_exceeded');
  const temperature = num(body, 'temperature', defaultTemperature, (x) => x >= 0 && x <= 2, 'a number between 0 and 2');
  const topP = num(body, 'top_p', 1, (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  const seed = num(body, 'seed', Math.floor(Math.random() * 2 ** 31), (x) => Number.isSafeInteger(x), 'an integer');
  let stop: string[] = [];
  if (typeof body.stop === 'string') stop = [body.stop];
  else if (Array.isArray(body.stop)) stop = body.stop as string[];
  else if (body.stop !== undefined && body.stop !== null) throw bad(`'stop' must be a string or a list of strings`, 'stop');
  if (stop.length > 4 || stop.some((s) => typeof s !== 'string' || s === '')) throw bad(`'stop' must hold at most 4 non-empty strings`, 'stop');
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw bad(`'stream' must be true or false`, 'stream');
  const stream = body.stream === true;
  const so = body.stream_options as { include_usage?: unknown } | undefined | null;
  if (so !== undefined && so !== null && (typeof so !== 'object' || (so.include_usage !== undefined && typeof so.include_usage !== 'boolean')))
    throw bad(`'stream_options' must be an object like {"include_usage": true}`, 'stream_options');
  if (so && !stream) throw bad(`'stream_options' is only allowed when 'stream' is true`, 'stream_options');
  if (body.ignore_eos !== undefined && body.ignore_eos !== null && typeof body.ignore_eos !== 'boolean') throw bad(`'ignore_eos' must be true or false`, 'ignore_eos');
  return { model: body.model, maxTokens, temperature, topP, seed, stop, stream, includeUsage: so?.include_usage === true, ignoreEos: body.ignore_eos === true };
}

function messageText(content: unknown, i: number): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p, j) => {
        const part = p as { type?: unknown; text?: unknown };
        if (part && part.type === 'text' && typeof part.text === 'string') return part.text;
        throw bad(`messages[${i}].content[${j}] must be a text part ({"type": "text", "text": "..."}); this model reads text only`, `messages[${i}].content`);
      })
      .join('');
  }
  throw bad(`messages[${i}].content must be a string`, `messages[${i}].content`);
}

/** Validates a parsed JSON body for an endpoint into a typed request. */
export function parseRequest(kind: 'completion' | 'chat', body: unknown, limits: ProtocolLimits): ApiRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('the request body must be a JSON object', null);
  const b = body as Record<string, unknown>;
  if (kind === 'chat') {
    const p = common(b, limits, 1);
    if (!Array.isArray(b.messages) || b.messages.length === 0) throw bad(`'messages' is required: a non-empty list of {"role", "content"}`, 'messages');
    const messages = b.messages.map((m: unknown, i: number) => {
      const mm = m as { role?: unknown; content?: unknown } | null;
      if (!mm || typeof mm !== 'object') throw bad(`messages[${i}] must be an object with role and content`, `messages[${i}]`);
      if (!['system', 'user', 'assistant', 'developer'].includes(mm.role as string))
        throw bad(`messages[${i}].role must be 'system', 'user', 'assistant' or 'developer', got ${JSON.stringify(mm.role)}`, `messages[${i}].role`);
      return { role: mm.role === 'developer' ? 'system' : (mm.role as string), content: messageText(mm.content, i) };
    });
    return { kind, messages, ...p };
  }
  const p = common(b, limits, 1);
  let prompt: string | number[];
  const raw = b.prompt;
  if (typeof raw === 'string') prompt = raw;
  else if (Array.isArray(raw) && raw.length === 1 && typeof raw[0] === 'string') prompt = raw[0];
  else if (Array.isArray(raw) && raw.length > 0 && raw.every((x) => Number.isInteger(x) && x >= 0)) prompt = raw as number[];
  else if (raw === undefined || raw === null) throw bad(`'prompt' is required: a string (or a list of token ids)`, 'prompt');
  else throw bad(`'prompt' must be a string, a list of one string or a list of token ids`, 'prompt');
  return { kind, prompt, ...p };
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** OpenAI's finish_reason: 'stop' or 'length' (a cancelled or failed request never answers). */
export function finishReason(r: FinishReason): 'stop' | 'length' {
  return r === 'length' ? 'length' : 'stop';
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export function completionResponse(m: ResponseMeta, text: string, reason: FinishReason, u: Usage): object {
  return { id: m.id, object: 'text_completion', created: m.created, model: m.model, choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason(reason) }], usage: u };
}

export function chatResponse(m: ResponseMeta, text: string, reason: FinishReason, u: Usage): object {
  return {
    id: m.id, object: 'chat.completion', created: m.created, model: m.model,
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finishReason(reason) }],
    usage: u,
  };
}

/** A streamed chunk: text (or the final chunk when reason is given). `usage: null` when usage is to come. */
export function streamChunk(kind: 'completion' | 'chat', m: ResponseMeta, text: string | null, reason: FinishReason | null, withUsage: boolean, first = false): object {
  const fr = reason === null ? null : finishReason(reason);
  const choice =
    kind === 'chat'
      ? { index: 0, delta: reason !== null ? {} : first ? { role: 'assistant', content: text ?? '' } : { content: text ?? '' }, logprobs: null, finish_reason: fr }
      : { index: 0, text: text ?? '', logprobs: null, finish_reason: fr };
  const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  return { id: m.id, object, created: m.created, model: m.model, choices: [choice], ...(withUsage ? { usage: null } : {}) };
}

export function usageChunk(kind: 'completion' | 'chat', m: ResponseMeta, u: Usage): object {
  return { id: m.id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: m.created, model: m.model, choices: [], usage: u };
}
