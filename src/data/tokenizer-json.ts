// Saving and loading tokenizers as JSON in the Hugging Face tokenizer.json layout (model.type "BPE",
// vocab, merges, added_tokens, ByteLevel pre-tokenizer and decoder), so the files are recognisable
// and loadable by other tools; also loads such files written elsewhere (e.g. GPT-2's), with merges
// either as "a b" strings or as ["a", "b"] pairs.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-fs.js';
import { DataError } from './errors.js';
import { Tokenizer, type SpecialToken } from './tokenizer.js';

/** The JSON object for a tokenizer (stable key order, so equal tokenizers give equal bytes). */
export function tokenizerToJson(tok: Tokenizer): object {
  const vocab: Record<string, number> = {};
  for (const [s, id] of tok.vocabEntries()) vocab[s] = id;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: tok.specials.map((s) => ({
      id: s.id,
      content: s.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: tok.mergeStrings().map(([a, b]) => `${a} ${b}`),
    },
  };
}

export function tokenizerToString(tok: Tokenizer): string {
  return JSON.stringify(tokenizerToJson(tok)) + '\n';
}

/** Hash of a tokenizer: sha256 (hex) of its saved JSON text. */
export function tokenizerHash(tok: Tokenizer): string {
  return createHash('sha256').update(tokenizerToString(tok)).digest('hex');
}

/** Writes the tokenizer atomically; returns its hash. */
export function saveTokenizer(tok: Tokenizer, path: string): string {
  const text = tokenizerToString(tok);
  writeFileAtomic(path, text);
  return createHash('sha256').update(text).digest('hex');
}

/** Builds a tokenizer from a parsed tokenizer.json object; `where` names the source in errors. */
export function tokenizerFromJson(json: unknown, where = 'tokenizer JSON'): Tokenizer {
  const bad = (why: string) => new DataError(`${where}: ${why}. Expected a byte-level BPE tokenizer.json (write one with \`zili tokenizer train\`).`);
  const j = json as { model?: { type?: string; vocab?: Record<string, number>; merges?: unknown[] }; added_tokens?: unknown[]; pre_tokenizer?: { type?: string } | null };
  if (!j || typeof j !== 'object' || !j.model) throw bad('no "model" section');
  if (j.model.type !== undefined && j.model.type !== 'BPE') throw bad(`model.type is '${j.model.type}', not 'BPE'`);
  if (!j.model.vocab || typeof j.model.vocab !== 'object') throw bad('no model.vocab');
  if (!Array.isArray(j.model.merges)) throw bad('no model.merges list');
  const pre = j.pre_tokenizer;
  if (pre && pre.type !== 'ByteLevel') throw bad(`pre_tokenizer.type is '${pre.type}', only 'ByteLevel' is supported`);
  const merges: [string, string][] = j.model.merges.map((m, i) => {
    if (typeof m === 'string') {
      const sp = m.indexOf(' ', 1);
      if (sp < 0) throw bad(`merge ${i} '${m}' is not two tokens separated by a space`);
      return [m.slice(0, sp), m.slice(sp + 1)];
    }
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
    throw bad(`merge ${i} is neither "a b" nor ["a", "b"]`);
  });
  const specials: SpecialToken[] = [];
  for (const t of j.added_tokens ?? []) {
    const a = t as { id?: unknown; content?: unknown };
    if (typeof a.id !== 'number' || typeof a.content !== 'string') throw bad('an added_tokens entry lacks id or content');
    specials.push({ id: a.id, content: a.content });
  }
  try {
    return new Tokenizer({ vocab: new Map(Object.entries(j.model.vocab)), merges, specials });
  } catch (e) {
    throw bad((e as Error).message);
  }
}

/** Loads a tokenizer.json file; errors name the file. */
export function loadTokenizer(path: string): { tokenizer: Tokenizer; hash: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DataError(`tokenizer file '${path}' cannot be read (${(e as NodeJS.ErrnoException).code ?? e}). Train one with \`zili tokenizer train --input FILES --vocab N --out ${path}\`.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DataError(`tokenizer file '${path}' is not valid JSON (${(e as Error).message}); re-create it with \`zili tokenizer train\`.`);
  }
  return { tokenizer: tokenizerFromJson(json, `tokenizer file '${path}'`), hash: createHash('sha256').update(text).digest('hex') };
}
