// The byte-level BPE tokenizer: encode text (or arbitrary bytes) to token ids and decode them back,
// with special tokens such as <|endoftext|>. Built from a vocabulary and ranked merges, whether
// freshly trained (bpe-train.ts) or loaded from a Hugging Face style tokenizer.json (tokenizer-json.ts).
import { bytesToUnicode, unicodeToBytes } from './byte-unicode.js';
import { pretokenize, splitUtf8 } from './pretokenize.js';

export const END_OF_TEXT = '<|endoftext|>';

export interface SpecialToken {
  id: number;
  content: string;
}

export interface TokenizerParts {
  /** token string in byte-level unicode form (e.g. "Ġthe") -> id; specials may be included too */
  vocab: Map<string, number>;
  /** merges in priority order, each a pair of vocab strings */
  merges: [string, string][];
  specials: SpecialToken[];
}

export class TokenizerError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

/** Ids are packed in pair keys as left * 2^22 + right. */
const ID_LIMIT = 1 << 22;
const pairKey = (a: number, b: number) => a * ID_LIMIT + b;

const CACHE_LIMIT = 200_000;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class Tokenizer {
  /** one more than the largest id */
  readonly vocabSize: number;
  readonly specials: readonly SpecialToken[];
  /** merges as [left id, right id] in rank order */
  readonly mergeIds: readonly [number, number][];
  private readonly tokenBytesById: (Uint8Array | undefined)[];
  private readonly tokenStrById: (string | undefined)[];
  private readonly idByTokenStr: Map<string, number>;
  private readonly byteToId = new Int32Array(256);
  /** pair key -> rank * 2^22 + merged id */
  private readonly mergeTable = new Map<number, number>();
  private readonly specialById = new Map<number, string>();
  private readonly specialByContent = new Map<string, number>();
  private readonly specialPattern: RegExp | null;
  private readonly cache = new Map<string, number[]>();
  private readonly encoder = new TextEncoder();

  constructor(parts: TokenizerParts) {
    this.idByTokenStr = new Map(parts.vocab);
    let maxId = -1;
    for (const id of parts.vocab.values()) maxId = Math.max(maxId, id);
    for (const s of parts.specials) maxId = Math.max(maxId, s.id);
    if (maxId >= ID_LIMIT) throw new TokenizerError(`vocabulary too large: ids must stay below ${ID_LIMIT}`);
    this.vocabSize = maxId + 1;
    this.tokenBytesById = new Array(this.vocabSize);
    this.tokenStrById = new Array(this.vocabSize);
    for (const s of parts.specials) {
      this.specialById.set(s.id, s.content);
      this.specialByContent.set(s.content, s.id);
      this.tokenBytesById[s.id] = this.encoder.encode(s.content);
      this.tokenStrById[s.id] = s.content;
    }
    for (const [str, id] of parts.vocab) {
      if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`vocabulary entry '${str}' has a bad id ${id}`);
      if (this.specialById.has(id)) continue;
      const bytes = unicodeToBytes(str);
      if (!bytes) throw new TokenizerError(`vocabulary entry '${str}' (id ${id}) is not a byte-level token`);
      this.tokenBytesById[id] = bytes;
      this.tokenStrById[id] = str;
    }
    this.byteToId.fill(-1);
    for (let b = 0; b < 256; b++) {
      const id = this.idByTokenStr.get(bytesToUnicode(Uint8Array.of(b)));
      if (id === undefined) throw new TokenizerError(`vocabulary lacks the single-byte token for byte ${b}: not a byte-level BPE vocabulary`);
      this.byteToId[b] = id;
    }
    const mergeIds: [number, number][] = [];
    parts.merges.forEach(([l, r], rank) => {
      const a = this.idByTokenStr.get(l);
      const b = this.idByTokenStr.get(r);
      const m = this.idByTokenStr.get(l + r);
      if (a === undefined || b === undefined || m === undefined) {
        throw new TokenizerError(`merge ${rank} ('${l}' '${r}') refers to a token missing from the vocabulary`);
      }
      const key = pairKey(a, b);
      if (!this.mergeTable.has(key)) this.mergeTable.set(key, rank * ID_LIMIT + m);
      mergeIds.push([a, b]);
    });
    this.mergeIds = mergeIds;
    this.specials = [...parts.specials].sort((x, y) => x.id - y.id);
    const contents = [...this.specialByContent.keys()].sort((x, y) => y.length - x.length);
    this.specialPattern = contents.length ? new RegExp(contents.map(escapeRegExp).join('|'), 'g') : null;
  }

  /** Id of a special token, e.g. Tokenizer.specialId('<|endoftext|>'). */
  specialId(content: string): number {
    const id = this.specialByContent.get(content);
    if (id === undefined) throw new TokenizerError(`tokenizer has no special token '${content}'`);
    return id;
  }

  /** Id of <|endoftext|>, the document separator. */
  get eotId(): number {
    return this.specialId(END_OF_TEXT);
  }

  isSpecial(id: number): boolean {
    return this.specialById.has(id);
  }

  /** The vocabulary as stored (byte-level unicode strings; specials as their text). */
  vocabEntries(): [string, number][] {
    const out: [string, number][] = [];
    for (let id = 0; id < this.vocabSize; id++) {
      const s = this.tokenStrById[id];
      if (s !== undefined) out.push([s, id]);
    }
    return out;
  }

  /** Merges as pairs of vocabulary strings, in rank order. */
  mergeStrings(): [string, string][] {
    return this.mergeIds.map(([a, b]) => [this.tokenStrById[a]!, this.tokenStrById[b]!]);
  }

  /** The raw bytes of a token. */
  tokenBytes(id: number): Uint8Array {
    const b = this.tokenBytesById[id];
    if (!b) throw new TokenizerError(`token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
    return b;
  }

  /** A token for display: its byte-level string ("Ġthe") or special text. */
  tokenString(id: number): string {
    const s = this.tokenStrById[id];
    if (s === undefined) throw new TokenizerError(`token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
    return s;
  }

  /**
   * Encodes text. Special tokens written literally in the text become their ids when allowSpecial
   * is true (the default); otherwise they are encoded as ordinary text.
   */
  encode(text: string, opts: { allowSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.allowSpecial === false || !this.specialPattern) {
      this.encodeOrdinary(text, out);
      return out;
    }
    let last = 0;
    for (const m of text.matchAll(this.specialPattern)) {
      this.encodeOrdinary(text.slice(last, m.index), out);
      out.push(this.specialByContent.get(m[0])!);
      last = m.index! + m[0].length;
    }
    this.encodeOrdinary(text.slice(last), out);
    return out;
  }

  /** Encodes arbitrary bytes losslessly (bytes that are not valid UTF-8 become single-byte tokens). */
  encodeBytes(bytes: Uint8Array): number[] {
    const out: number[] = [];
    for (const piece of splitUtf8(bytes)) {
      if ('text' in piece) this.encodeOrdinary(piece.text, out);
      else out.push(this.byteToId[piece.byte]!);
    }
    return out;
  }

  /** Appends the tokens of text (no special-token recognition) to out. */
  encodeOrdinary(text: string, out: number[]): void {
    if (!text) return;
    for (const word of pretokenize(text)) {
      let ids = this.cache.get(word);
      if (!ids) {
        ids = this.bpe(this.encoder.encode(word));
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
  }

  /** Applies the merges to one pre-token: repeatedly merge every occurrence of the best-ranked pair. */
  private bpe(bytes: Uint8Array): number[] {
    let ids: number[] = Array.from(bytes, (b) => this.byteToId[b]!);
    while (ids.length > 1) {
      let best = Infinity;
      for (let i = 0; i + 1 < ids.length; i++) {
        const v = this.mergeTable.get(pairKey(ids[i]!, ids[i + 1]!));
        if (v !== undefined && v < best) best = v;
      }
      if (best === Infinity) break;
      const merged = best % ID_LIMIT;
      const rank = (best - merged) / ID_LIMIT;
      const [a, b] = this.mergeIds[rank]!;
      const next: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(ids[i]!);
      }
      ids = next;
    }
    return ids;
  }

  /** Decodes ids to bytes (special tokens give their text). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let n = 0;
    for (let i = 0; i < ids.length; i++) n += this.tokenBytes(ids[i]!).length;
    const out = new Uint8Array(n);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes(ids[i]!);
      out.set(b, o);
      o += b.length;
    }
    return out;
  }

  /** Decodes ids to text; byte sequences that are not valid UTF-8 become U+FFFD. */
  decode(ids: ArrayLike<number>): string {
    return new TextDecoder('utf-8').decode(this.decodeBytes(ids));
  }
}
