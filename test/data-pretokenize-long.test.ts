// Long runs of text in pre-tokenisation and UTF-8 checking of inputs: text is matched in segments
// cut only where the GPT-2 pattern ends a token anyway (so normal text pre-tokenizes exactly as one
// match over the whole would), a run longer than MAX_PRETOKEN_CHARS is cut (never inside a
// surrogate pair), and invalid UTF-8 is counted correctly across read chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPT2_PATTERN, MAX_PRETOKEN_CHARS, pretokenize } from '../src/data/pretokenize.js';
import { Utf8Check } from '../src/data/text-check.js';

function text(chars: number, seed: number): string {
  const pieces = ['the', ' cat', "'s", '  ', '\n\n', ' 1234', '!!', ' naïve', ' 日本語', ' 🙂', '\t', ' x', 'ok.', '   end'];
  let s = seed, out = '';
  while (out.length < chars) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out += pieces[s % pieces.length];
  }
  return out;
}

test('segmented matching gives exactly the pre-tokens of one match over the whole text', () => {
  for (const seed of [1, 2, 3]) {
    const t = text(300_000, seed);
    assert.deepEqual(pretokenize(t), t.match(GPT2_PATTERN));
  }
});

test('a 10-million-character run is cut into pieces of at most MAX_PRETOKEN_CHARS that join back to it', () => {
  const long = 'a'.repeat(10_000_000);
  const words = pretokenize(` ${long}!`);
  assert.ok(words.every((w) => w.length <= MAX_PRETOKEN_CHARS));
  assert.equal(words.join(''), ` ${long}!`);
  const emoji = ' ' + '🙂'.repeat(1000); // one token of surrogate pairs at an odd offset: a cut never separates the halves
  const parts = pretokenize(emoji);
  assert.ok(parts.length > 1);
  for (const p of parts) assert.doesNotMatch(p, /^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/, 'whole code points');
  assert.equal(parts.join(''), emoji);
});

test('Utf8Check: valid text split anywhere is clean; Latin-1 bytes are counted with the first offset; NUL is binary', () => {
  const bytes = new TextEncoder().encode('naïve 日本語 🙂 '.repeat(50));
  for (const cut of [1, 2, 3, 7, 8, 9]) {
    const c = new Utf8Check('f');
    for (let i = 0; i < bytes.length; i += cut) c.push(bytes.subarray(i, i + cut));
    assert.equal(c.end(), null, `chunks of ${cut}`);
  }
  const latin = Uint8Array.from('caf\xe9 ok \xe9t\xe9', (ch) => ch.charCodeAt(0));
  const c = new Utf8Check('latin.txt');
  c.push(latin.subarray(0, 4));
  c.push(latin.subarray(4));
  assert.match(c.end()!, /'latin\.txt' is not valid UTF-8 \(3 byte\(s\), the first at offset 3;/);
  assert.throws(() => new Utf8Check('x.bin').push(Uint8Array.of(65, 66, 0, 67)), /'x\.bin' is binary \(a NUL byte at offset 2\)/);
});
