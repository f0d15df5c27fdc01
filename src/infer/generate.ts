// Autoregressive generation with a KV cache: the prompt is run once (prefill), then one position per
// new token. When the context fills up, the cache is rebuilt from the last half of the context
// (a sliding window), so generation can run past the model's context length.
import type { Transformer } from '../nn/transformer.js';
import { Rng } from '../train/rng-state.js';
import { feed } from './batch-decode.js';
import { KvCache } from './kv-cache.js';
import { type SamplingOptions, sampleToken, validateSampling } from './sample.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed?: number;
  /** stop (without emitting it) when this token is produced, e.g. <|endoftext|> */
  stopId?: number | null;
  /** called with each new token as soon as it is chosen */
  onToken?: (id: number) => void;
}

/** Generates up to maxTokens new tokens after the prompt (at least one prompt token). Returns them. */
export async function generate(model: Transformer, prompt: readonly number[], o: GenerateOptions): Promise<number[]> {
  validateSampling(o);
  if (prompt.length === 0) throw new RangeError('generate: the prompt needs at least one token');
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) throw new RangeError(`generate: maxTokens must be a whole number >= 0, got ${o.maxTokens}`);
  const ctx = model.config.seqLen;
  const rng = new Rng(o.seed ?? 0, 2);
  const seq = [...prompt];
  const out: number[] = [];
  let cache = new KvCache(model.backend, model.config, 1, ctx);
  try {
    let logits = await feed(model, cache, seq.slice(-ctx));
    while (out.length < o.maxTokens) {
      const id = sampleToken(logits, o, rng);
      if (o.stopId !== undefined && o.stopId !== null && id === o.stopId) break;
      out.push(id);
      seq.push(id);
      o.onToken?.(id);
      await new Promise((r) => setImmediate(r)); // lets a closed output pipe or a signal be handled between tokens
      if (out.length === o.maxTokens) break;
      if (cache.length >= ctx) {
        cache.dispose();
        cache = new KvCache(model.backend, model.config, 1, ctx);
        logits = await feed(model, cache, seq.slice(-Math.max(1, Math.floor(ctx / 2))));
      } else logits = await feed(model, cache, [id]);
    }
  } finally {
    cache.dispose();
  }
  return out;
}

/** Turns a stream of token byte strings into text, holding back an incomplete UTF-8 sequence. */
export class Utf8Stream {
  private readonly decoder = new TextDecoder('utf-8');
  /** text decodable so far from the bytes given */
  push(bytes: Uint8Array): string {
    return this.decoder.decode(bytes, { stream: true });
  }
  /** whatever is left (an incomplete sequence becomes U+FFFD) */
  end(): string {
    return this.decoder.decode();
  }
}
