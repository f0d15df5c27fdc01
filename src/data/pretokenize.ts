// Pre-tokenization: splits text into the "words" BPE works within, using GPT-2's regex exactly
// (contractions, letter runs, number runs, punctuation runs, whitespace), so our tokenizer.json
// behaves the same under Hugging Face's ByteLevel pre-tokenizer. Also a lossless split of
// arbitrary bytes: valid UTF-8 runs go through the regex, each invalid byte is a word of its own.

/** GPT-2's pre-tokenization pattern (the `u` flag gives \p{L} letters and \p{N} numbers). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * Longest pre-token, in UTF-16 code units. A longer run (a 10-million-character "word": a line of
 * base64, a run of one letter) is cut into pieces of this length: BPE's cost grows with the square of
 * a word's length, and no merge spans such a run usefully. Words this long are rare in text, so the
 * split only differs from Hugging Face's ByteLevel pre-tokenizer on such runs.
 */
export const MAX_PRETOKEN_CHARS = 256;

/** Cuts one long pre-token into pieces of at most MAX_PRETOKEN_CHARS, never inside a surrogate pair. */
function splitLong(word: string, out: string[]): void {
  for (let i = 0; i < word.length; ) {
    let j = Math.min(word.length, i + MAX_PRETOKEN_CHARS);
    const c = word.charCodeAt(j);
    if (j < word.length && c >= 0xdc00 && c <= 0xdfff) j--; // keep a surrogate pair whole
    out.push(word.slice(i, j));
    i = j;
  }
}

/** Text longer than this is matched in segments: V8's regex engine overflows its stack on some multi-megabyte runs. */
const SEGMENT_CHARS = 1 << 16;

const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x85 || (c > 0x1000 && /\s/.test(String.fromCharCode(c)));

/**
 * Where to end a segment at or before `limit`: at a space between two non-space characters (the
 * pattern ends a token there and starts the next with that space, so matching the two sides apart
 * gives the same pre-tokens), else at `limit` itself (a run that long is split anyway).
 */
function segmentEnd(text: string, start: number, limit: number): number {
  for (let k = limit; k > start + (limit - start) / 2; k--)
    if (text.charCodeAt(k) === 32 && !isSpace(text.charCodeAt(k - 1)) && !isSpace(text.charCodeAt(k + 1))) return k;
  const c = text.charCodeAt(limit);
  return c >= 0xdc00 && c <= 0xdfff ? limit - 1 : limit;
}

/** Splits text into pre-tokens; concatenating them gives the text back. */
export function pretokenize(text: string): string[] {
  const out: string[] = [];
  for (let start = 0; start < text.length; ) {
    const end = text.length - start > SEGMENT_CHARS ? segmentEnd(text, start, start + SEGMENT_CHARS) : text.length;
    const words = (start === 0 && end === text.length ? text : text.slice(start, end)).match(GPT2_PATTERN) ?? [];
    for (const w of words) {
      if (w.length <= MAX_PRETOKEN_CHARS) out.push(w);
      else splitLong(w, out);
    }
    start = end;
  }
  return out;
}

/** Length of the valid UTF-8 sequence starting at bytes[i], or 0 if it is not valid there. */
export function utf8SeqLen(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  let n: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) { n = 2; min = 0x80; }
  else if (b0 >= 0xe0 && b0 <= 0xef) { n = 3; min = 0x800; }
  else if (b0 >= 0xf0 && b0 <= 0xf4) { n = 4; min = 0x10000; }
  else return 0;
  if (i + n > bytes.length) return 0;
  let cp = b0 & (0xff >> (n + 1));
  for (let k = 1; k < n; k++) {
    const b = bytes[i + k]!;
    if ((b & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

/** A piece of a byte string: valid UTF-8 text, or one byte that is not valid UTF-8. */
export type BytePiece = { text: string } | { byte: number };

/** Splits arbitrary bytes into maximal valid UTF-8 runs and single invalid bytes, in order. */
export function splitUtf8(bytes: Uint8Array): BytePiece[] {
  const out: BytePiece[] = [];
  const decoder = new TextDecoder('utf-8');
  let runStart = 0;
  let i = 0;
  while (i < bytes.length) {
    const n = utf8SeqLen(bytes, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > runStart) out.push({ text: decoder.decode(bytes.subarray(runStart, i)) });
    out.push({ byte: bytes[i]! });
    i += 1;
    runStart = i;
  }
  if (i > runStart) out.push({ text: decoder.decode(bytes.subarray(runStart, i)) });
  return out;
}
