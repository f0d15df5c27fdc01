// Pre-tokenization: splits text into the "words" BPE works within, using GPT-2's regex exactly
// (contractions, letter runs, number runs, punctuation runs, whitespace), so our tokenizer.json
// behaves the same under Hugging Face's ByteLevel pre-tokenizer. Also a lossless split of
// arbitrary bytes: valid UTF-8 runs go through the regex, each invalid byte is a word of its own.

/** GPT-2's pre-tokenization pattern (the `u` flag gives \p{L} letters and \p{N} numbers). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Splits text into pre-tokens; concatenating them gives the text back. */
export function pretokenize(text: string): string[] {
  return text.match(GPT2_PATTERN) ?? [];
}

/** Length of the valid UTF-8 sequence starting at bytes[i], or 0 if it is not valid there. */
function utf8SeqLen(bytes: Uint8Array, i: number): number {
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
