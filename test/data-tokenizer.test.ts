// Tests for the byte-level BPE tokenizer: training (golden merges), lossless round trips on any
// text or bytes, special tokens, and the Hugging Face tokenizer.json layout.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bytesToUnicode, unicodeToBytes } from '../src/data/byte-unicode.js';
import { trainBpe, WordCounter } from '../src/data/bpe-train.js';
import { pretokenize } from '../src/data/pretokenize.js';
import { loadTokenizer, saveTokenizer, tokenizerFromJson, tokenizerHash, tokenizerToJson } from '../src/data/tokenizer-json.js';
import type { Tokenizer } from '../src/data/tokenizer.js';

function train(text: string, vocabSize: number, specialTokens: string[] = []): Tokenizer {
  const c = new WordCounter(['<|endoftext|>', ...specialTokens]);
  c.add(text);
  return trainBpe(c.counts, { vocabSize, specialTokens });
}

const SAMPLE = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!',
  "It's 2024 and we're testing 12345 numbers, punctuation (like this) -- and   spaces.",
  '自力更生，艰苦奋斗。我们在中文文本上训练分词器，中文文本很有意思。',
  'Emoji: 🙂🙃👍🏽 and flags 🇯🇵 and combining é (e\u0301).',
].join('\n');

test('byte <-> unicode mapping is a bijection over all 256 bytes', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const s = bytesToUnicode(all);
  assert.equal([...s].length, 256);
  assert.equal(new Set(s).size, 256);
  assert.deepEqual(unicodeToBytes(s), all);
  assert.equal(bytesToUnicode(new TextEncoder().encode(' the')), 'Ġthe');
  assert.equal(unicodeToBytes('<not ascii \u4e00>'), null);
});

test('pre-tokenization follows GPT-2: contractions, letters, numbers, punctuation, spaces', () => {
  assert.deepEqual(pretokenize("I'm here,  aren't we? 42x"), ['I', "'m", ' here', ',', ' ', ' aren', "'t", ' we', '?', ' 42', 'x']);
  assert.deepEqual(pretokenize('你好 世界'), ['你好', ' 世界']);
  assert.equal(pretokenize(SAMPLE).join(''), SAMPLE);
});

test('golden: merges learned on aaabdaaabac', () => {
  const tok = train('aaabdaaabac', 1000);
  // pair counts: aa 4 -> merge; then (a,b) and (aa,a) tie at 2, smaller ids win: (a,b);
  // then (aa,ab) 2; everything else occurs once, below the minimum frequency of 2
  assert.deepEqual(tok.mergeStrings(), [['a', 'a'], ['a', 'b'], ['aa', 'ab']]);
  assert.deepEqual(tok.encode('aaabdaaabac'), [258, 100, 258, 97, 99]);
  assert.equal(tok.vocabSize, 260); // 256 bytes + 3 merges + <|endoftext|>
  assert.equal(tok.eotId, 259);
});

test('golden: merges across words with a leading space', () => {
  const tok = train('ab ab ab', 1000);
  assert.deepEqual(tok.mergeStrings(), [['a', 'b'], ['Ġ', 'ab']]);
  assert.deepEqual(tok.encode('ab ab ab'), [256, 257, 257]);
  assert.deepEqual(tok.encode('abab'), [256, 256]);
  assert.deepEqual(tok.encode('ba'), [98, 97]);
});

test('training stops at the requested vocabulary and is deterministic', () => {
  const a = train(SAMPLE.repeat(3), 300, ['<|pad|>']);
  const b = train(SAMPLE.repeat(3), 300, ['<|pad|>']);
  assert.equal(a.vocabSize, 300);
  assert.deepEqual(a.mergeStrings(), b.mergeStrings());
  assert.equal(a.specialId('<|endoftext|>'), 298);
  assert.equal(a.specialId('<|pad|>'), 299);
});

test('round trip: English, Chinese, emoji, whitespace and control characters', () => {
  const tok = train(SAMPLE.repeat(4), 400);
  const texts = [SAMPLE, 'unseen words: zyzzyva quixotic', '完全没有见过的汉字：龘靐齉', '👩‍👩‍👧‍👦 family', '\t\n\r\0\u0007 ', '', 'a'];
  for (const t of texts) assert.equal(tok.decode(tok.encode(t)), t, JSON.stringify(t));
  assert.ok(tok.encode(SAMPLE).length < new TextEncoder().encode(SAMPLE).length / 2, 'merges compress the training text');
});

test('round trip: arbitrary bytes, including invalid UTF-8', () => {
  const tok = train(SAMPLE, 400);
  let x = 12345;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
  for (let trial = 0; trial < 20; trial++) {
    const bytes = Uint8Array.from({ length: 50 + trial * 37 }, rnd);
    assert.deepEqual(tok.decodeBytes(tok.encodeBytes(bytes)), bytes);
  }
  const tricky = Uint8Array.of(0xe4, 0xbd, 0x41, 0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0x99, 0x82, 0xf0);
  assert.deepEqual(tok.decodeBytes(tok.encodeBytes(tricky)), tricky);
});

test('special tokens: recognised in text unless disabled, decoded to their text', () => {
  const tok = train(SAMPLE, 300, ['<|user|>']);
  const eot = tok.eotId;
  const ids = tok.encode('hi<|endoftext|>there<|user|>');
  assert.equal(ids.filter((i) => i === eot).length, 1);
  assert.ok(ids.includes(tok.specialId('<|user|>')));
  assert.equal(tok.decode(ids), 'hi<|endoftext|>there<|user|>');
  const plain = tok.encode('hi<|endoftext|>', { allowSpecial: false });
  assert.ok(!plain.includes(eot));
  assert.equal(tok.decode(plain), 'hi<|endoftext|>');
  assert.throws(() => tok.specialId('<|nope|>'), /no special token/);
});

test('tokenizer.json: Hugging Face layout, save/load round trip, stable hash', () => {
  const tok = train(SAMPLE, 350, ['<|pad|>']);
  const j = tokenizerToJson(tok) as Record<string, any>;
  assert.equal(j.model.type, 'BPE');
  assert.equal(j.pre_tokenizer.type, 'ByteLevel');
  assert.equal(j.decoder.type, 'ByteLevel');
  assert.equal(j.model.vocab['Ġ'], 32);
  assert.equal(j.model.vocab['<|endoftext|>'], tok.eotId);
  assert.deepEqual(j.added_tokens.map((t: { content: string }) => t.content), ['<|endoftext|>', '<|pad|>']);
  assert.match(j.model.merges[0], /^\S+ \S+$/);
  const dir = mkdtempSync(join(tmpdir(), 'zili-tok-'));
  try {
    const path = join(dir, 'tokenizer.json');
    const hash = saveTokenizer(tok, path);
    const back = loadTokenizer(path);
    assert.equal(back.hash, hash);
    assert.equal(tokenizerHash(back.tokenizer), hash);
    assert.equal(back.tokenizer.vocabSize, tok.vocabSize);
    assert.deepEqual(back.tokenizer.encode(SAMPLE), tok.encode(SAMPLE));
    writeFileSync(join(dir, 'bad.json'), '{"model": {"type": "WordPiece"}}');
    assert.throws(() => loadTokenizer(join(dir, 'bad.json')), /bad\.json.*not 'BPE'/);
    writeFileSync(join(dir, 'broken.json'), '{"model"');
    assert.throws(() => loadTokenizer(join(dir, 'broken.json')), /broken\.json.*not valid JSON/);
    assert.throws(() => loadTokenizer(join(dir, 'missing.json')), /missing\.json.*cannot be read.*zili tokenizer train/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loads a foreign byte-level BPE file: other id order, merges as pairs', () => {
  // like GPT-2's file: single-byte tokens not in byte order, merges as ["a", "b"] arrays
  const vocab: Record<string, number> = {};
  const order = Array.from({ length: 256 }, (_, i) => (i * 7 + 3) % 256);
  order.forEach((b, id) => (vocab[bytesToUnicode(Uint8Array.of(b))] = id));
  vocab['Ġt'] = 256;
  vocab['he'] = 257;
  vocab['Ġthe'] = 258;
  const json = {
    added_tokens: [{ id: 259, content: '<|endoftext|>', special: true }],
    pre_tokenizer: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges: [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he']] },
  };
  const tok = tokenizerFromJson(json);
  assert.deepEqual(tok.encode(' the<|endoftext|>'), [258, 259]);
  assert.equal(tok.decode(tok.encode(' then ')), ' then ');
  assert.equal(tok.vocabSize, 260);
});

test('training on Chinese text learns whole characters and words', () => {
  const text = '床前明月光，疑是地上霜。举头望明月，低头思故乡。'.repeat(5);
  const tok = train(text, 320);
  const ids = tok.encode('明月');
  assert.equal(ids.length, 1, 'a frequent two-character word becomes one token');
  assert.equal(tok.decode(ids), '明月');
  assert.equal(tok.decode(tok.encode(text)), text);
  assert.ok(tok.encode(text).length < new TextEncoder().encode(text).length / 4);
});
