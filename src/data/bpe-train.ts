// Byte-level BPE training. Texts are reduced to a table of pre-token word frequencies; merges are
// then learned with incremental pair counts: each merge only revisits the words that contain the
// merged pair (found through a pair -> words index) and adjusts the counts of their pairs, and the
// most frequent pair comes from a max-heap with lazy invalidation. Ties go to the pair with the
// smaller (left id, right id), so training is deterministic.
import { bytesToUnicode } from './byte-unicode.js';
import { pretokenize } from './pretokenize.js';
import { END_OF_TEXT, Tokenizer } from './tokenizer.js';
import { DataError } from './errors.js';

export interface BpeTrainOptions {
  /** total vocabulary: 256 byte tokens + merges + special tokens */
  vocabSize: number;
  /** special tokens, given ids after the merges; <|endoftext|> is always included (first) */
  specialTokens?: string[];
  /** stop when the best pair occurs fewer times than this (default 2) */
  minFrequency?: number;
  /** called every few hundred merges */
  onProgress?: (merges: number, target: number) => void;
}

/** Accumulates pre-token word frequencies over any amount of text (special tokens are skipped). */
export class WordCounter {
  readonly counts = new Map<string, number>();
  private readonly skip: RegExp;
  bytes = 0;

  constructor(specialTokens: string[] = [END_OF_TEXT]) {
    const esc = specialTokens.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.skip = new RegExp(esc.length ? esc.join('|') : '(?!)', 'g');
  }

  add(text: string): void {
    this.bytes += text.length;
    for (const part of text.split(this.skip)) {
      for (const w of pretokenize(part)) this.counts.set(w, (this.counts.get(w) ?? 0) + 1);
    }
  }
}

const ID_LIMIT = 1 << 22;
const keyOf = (a: number, b: number) => a * ID_LIMIT + b;

/** Max-heap of (count, pair key): larger count first, then smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.keys.length;
  }
  private above(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }
  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  /** Removes the top entry, returning [count, key]. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.keys[0]!];
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    if (this.keys.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      const n = this.keys.length;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/** The smallest vocabulary a byte-level BPE tokenizer can have: 256 bytes and <|endoftext|>. */
export const MIN_VOCAB = 257;

/** Learns merges from word frequencies and returns the tokenizer. */
export function trainBpe(counts: Map<string, number>, opts: BpeTrainOptions): Tokenizer {
  const specials = [END_OF_TEXT, ...(opts.specialTokens ?? []).filter((s) => s !== END_OF_TEXT)];
  if (new Set(specials).size !== specials.length) throw new DataError(`duplicate special tokens (${specials.join(', ')}); name each once`);
  const target = opts.vocabSize - 256 - specials.length;
  if (target < 0) throw new DataError(`vocabulary ${opts.vocabSize} is too small: a byte-level tokenizer needs at least ${256 + specials.length} (256 bytes + ${specials.length} special token(s)); use --vocab ${256 + specials.length} or more`);
  const minFrequency = opts.minFrequency ?? 2;

  // token id -> bytes; ids 0..255 are the bytes themselves
  const tokenBytes: Uint8Array[] = [];
  for (let b = 0; b < 256; b++) tokenBytes.push(Uint8Array.of(b));
  const idOf = new Map<string, number>(tokenBytes.map((t, id) => [bytesToUnicode(t), id]));

  const encoder = new TextEncoder();
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of counts) {
    const bytes = encoder.encode(w);
    if (bytes.length < 2) continue; // no pairs inside
    words.push(Array.from(bytes));
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < words.length; w++) {
    const s = words[w]!;
    const f = freq[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const k = keyOf(s[i]!, s[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + f);
      let list = pairWords.get(k);
      if (!list) pairWords.set(k, (list = []));
      if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const merges: [number, number][] = [];
  const stamp = new Int32Array(words.length).fill(-1);
  const before = new Map<number, number>();
  const bump = (k: number, delta: number) => {
    const c = pairCount.get(k) ?? 0;
    if (!before.has(k)) before.set(k, c);
    pairCount.set(k, c + delta);
  };

  while (tokenBytes.length - 256 < target && heap.size > 0) {
    const [count, key] = heap.pop();
    if (pairCount.get(key) !== count) continue; // stale entry
    if (count < minFrequency) break;
    const a = Math.floor(key / ID_LIMIT);
    const b = key % ID_LIMIT;
    const ab = new Uint8Array(tokenBytes[a]!.length + tokenBytes[b]!.length);
    ab.set(tokenBytes[a]!);
    ab.set(tokenBytes[b]!, tokenBytes[a]!.length);
    // two merge paths can spell the same bytes ("ab"+"c", "a"+"bc"): they share one token
    const abStr = bytesToUnicode(ab);
    let newId = idOf.get(abStr);
    if (newId === undefined) {
      newId = tokenBytes.length;
      tokenBytes.push(ab);
      idOf.set(abStr, newId);
    }
    merges.push([a, b]);
    const iter = merges.length;
    before.clear();

    for (const w of pairWords.get(key) ?? []) {
      if (stamp[w] === iter) continue;
      stamp[w] = iter;
      const s = words[w]!;
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue; // the index is append-only and may hold words that no longer have the pair
      const f = freq[w]!;
      for (let i = 0; i + 1 < s.length; i++) bump(keyOf(s[i]!, s[i + 1]!), -f);
      const t: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          t.push(newId);
          i++;
        } else t.push(s[i]!);
      }
      for (let i = 0; i + 1 < t.length; i++) {
        const k = keyOf(t[i]!, t[i + 1]!);
        bump(k, f);
        if (t[i] === newId || t[i + 1] === newId) {
          let list = pairWords.get(k);
          if (!list) pairWords.set(k, (list = []));
          if (list[list.length - 1] !== w) list.push(w);
        }
      }
      words[w] = t;
    }
    pairWords.delete(key);
    for (const [k, old] of before) {
      const c = pairCount.get(k)!;
      if (c === old) continue;
      if (c <= 0) pairCount.delete(k);
      else heap.push(c, k);
    }
    pairCount.delete(key);
    if (opts.onProgress && iter % 256 === 0) opts.onProgress(iter, target);
  }

  const vocab = new Map(idOf);
  const mergeStrings = merges.map(([a, b]): [string, string] => [bytesToUnicode(tokenBytes[a]!), bytesToUnicode(tokenBytes[b]!)]);
  const first = tokenBytes.length;
  const specialTokens = specials.map((content, i) => ({ id: first + i, content }));
  for (const s of specialTokens) {
    if (vocab.has(s.content)) throw new Error(`special token '${s.content}' is also a learned token: choose a distinctive name like <|name|>`);
    vocab.set(s.content, s.id);
  }
  return new Tokenizer({ vocab, merges: mergeStrings, specials: specialTokens });
}
