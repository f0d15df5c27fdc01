// Tests for corpus preparation: the Brown corpus reader, text/jsonl inputs to shards with a
// train/validation split, the prepare and tokenizer commands, and the built-in data cache.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { run as prepareCmd } from '../src/cli/prepare.js';
import { run as tokenizerCmd } from '../src/cli/tokenizer.js';
import { trainBpe, WordCounter } from '../src/data/bpe-train.js';
import { ensureBuiltinData } from '../src/data/builtin.js';
import { brownDocuments, detagFile, detagParagraph } from '../src/data/builtin-corpus.js';
import { TokenLoader } from '../src/data/loader.js';
import { assertVocabMatches, manifestFile, readManifest } from '../src/data/manifest.js';
import { isValidationDoc, prepareShards } from '../src/data/prepare.js';
import { ShardReader } from '../src/data/shard.js';
import { collectInputFiles, filePieces } from '../src/data/sources.js';
import { loadTokenizer, saveTokenizer } from '../src/data/tokenizer-json.js';

const root = mkdtempSync(join(tmpdir(), 'zili-prepare-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Silences console output of in-process CLI runs. */
async function quiet<T>(f: () => Promise<T>): Promise<T> {
  const { log, error } = console;
  console.log = () => {};
  console.error = () => {};
  try {
    return await f();
  } finally {
    console.log = log;
    console.error = error;
  }
}

test('Brown word/TAG text becomes readable English', () => {
  const tagged = "``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ,/, ``/`` of/in Atlanta's/np$ 1-1/2/cd ''/'' ./.";
  assert.equal(detagParagraph(tagged), '"Only a handful", the jury said, "of Atlanta\'s 1-1/2".');
  assert.equal(detagParagraph("he/pps said/vbd '/' no/rb '/' (/( twice/rb )/) ;/. Jr./np ./."), "he said 'no' (twice); Jr.");
  assert.equal(detagFile('\n\n\tA/at b/nn ./.\nC/np d/nn ./.\n\n\n\tE/np ./.\n'), 'A b. C d.\nE.');
});

test('the built-in corpus has 500 untagged documents', () => {
  const docs = [...brownDocuments()];
  assert.equal(docs.length, 500);
  assert.ok(docs[0]!.text.startsWith('The Fulton County Grand Jury said Friday an investigation'));
  const chars = docs.reduce((n, d) => n + d.text.length, 0);
  assert.ok(chars > 5e6 && chars < 7e6, `${chars} characters`);
  for (const d of docs.slice(0, 50)) assert.doesNotMatch(d.text, /\/(at|nn|vbd|in)\b/);
});

test('validation documents are spread evenly: about round(n * f)', () => {
  const count = (n: number, f: number) => Array.from({ length: n }, (_, i) => isValidationDoc(i, f)).filter(Boolean).length;
  assert.equal(count(500, 0.02), 10);
  assert.equal(count(3, 0.2), 1);
  assert.equal(count(100, 0), 0);
  assert.equal(isValidationDoc(24, 0.02), true);
});

test('text and jsonl files to shards: documents joined by <|endoftext|>, split by document', () => {
  const input = join(root, 'in');
  mkdirSync(join(input, 'sub'), { recursive: true });
  writeFileSync(join(input, 'a.txt'), 'First document, in English.<|endoftext|>第二个文档是中文的。<|endoftext|>Third: emoji 🙂!');
  writeFileSync(join(input, 'sub', 'b.jsonl'), '{"text": "fourth from jsonl"}\n\n{"text": "fifth"}\n');
  writeFileSync(join(input, 'sub', 'skip.bin'), 'not text');
  writeFileSync(join(input, 'empty.txt'), '');
  const files = collectInputFiles([input]);
  assert.deepEqual(files.map((f) => f.slice(input.length + 1)), ['a.txt', 'empty.txt', 'sub/b.jsonl']);
  const docs = [...filePieces(files)].map((p) => p.text);
  assert.deepEqual(docs, ['First document, in English.', '第二个文档是中文的。', 'Third: emoji 🙂!', 'fourth from jsonl', 'fifth']);

  const counter = new WordCounter();
  for (const d of docs) counter.add(d);
  const tok = trainBpe(counter.counts, { vocabSize: 300 });
  const out = join(root, 'out');
  mkdirSync(out);
  const hash = saveTokenizer(tok, join(out, 'tokenizer.json'));
  const lines: string[] = [];
  const m = prepareShards({ outDir: out, pieces: filePieces(files), tokenizer: tok, tokenizerFile: join(out, 'tokenizer.json'), tokenizerHash: hash, valFraction: 0.2, shardTokens: 40, sources: [input], log: (l) => lines.push(l) });
  assert.equal(m.tokenizer.file, 'tokenizer.json');
  assert.equal(m.splits.train.documents + m.splits.val.documents, 5);
  assert.equal(m.splits.val.documents, 1); // document 2 (0-based) of 5 at fraction 0.2
  assert.ok(m.splits.train.shards.length >= 2, 'small shard size forces several shards');
  const decodeSplit = (split: 'train' | 'val') =>
    tok.decode(
      m.splits[split].shards.flatMap((s) => {
        const r = ShardReader.open(manifestFile(m, s.file));
        const ids = new Int32Array(r.header.tokens);
        r.read(0, ids.length, ids);
        r.close();
        return Array.from(ids);
      }),
    );
  assert.equal(decodeSplit('train'), 'First document, in English.<|endoftext|>第二个文档是中文的。<|endoftext|>fourth from jsonl<|endoftext|>fifth<|endoftext|>');
  assert.equal(decodeSplit('val'), 'Third: emoji 🙂!<|endoftext|>');
  assert.match(lines.at(-1)!, /5 documents ->/);
});

test('bad inputs: missing path, folder without text, empty text, bad jsonl', () => {
  assert.throws(() => collectInputFiles([join(root, 'nope')]), /input '.*nope' does not exist/);
  mkdirSync(join(root, 'bare'));
  writeFileSync(join(root, 'bare', 'x.bin'), 'x');
  assert.throws(() => collectInputFiles([join(root, 'bare')]), /folder '.*bare' holds no text files/);
  const tok = trainBpe(new Map([['ab', 3]]), { vocabSize: 258 });
  writeFileSync(join(root, 'blank.txt'), '');
  assert.throws(
    () => prepareShards({ outDir: join(root, 'o2'), pieces: filePieces([join(root, 'blank.txt')]), tokenizer: tok, tokenizerFile: 't.json', tokenizerHash: 'x', sources: ['blank.txt'] }),
    /contain no text/,
  );
  writeFileSync(join(root, 'bad.jsonl'), '{"text": "ok"}\n{"txt": "wrong"}\n');
  assert.throws(() => [...filePieces([join(root, 'bad.jsonl')])], /bad\.jsonl' line 2 has no "text"/);
});

test('zili tokenizer train/encode and zili prepare commands', async () => {
  const input = join(root, 'cmd-in.txt');
  writeFileSync(input, 'the cat sat on the mat. the dog sat on the log. '.repeat(20));
  const tokPath = join(root, 'cmd-tok.json');
  assert.equal(await quiet(() => tokenizerCmd(['train', input, '--vocab', '270', '--special', '<|pad|>', '--out', tokPath])), 0);
  const { tokenizer } = loadTokenizer(tokPath);
  assert.equal(tokenizer.vocabSize, 270);
  assert.equal(tokenizer.specialId('<|pad|>'), 269);
  assert.equal(await quiet(() => prepareCmd([input, '--out', join(root, 'cmd-out'), '--tokenizer', tokPath, '--val-fraction', '0'])), 0);
  const m = readManifest(join(root, 'cmd-out', 'manifest.json'));
  assert.equal(m.splits.train.documents, 1);
  assert.equal(m.tokenizer.vocabSize, 270);
  await assert.rejects(() => prepareCmd(['--out', join(root, 'x')]), /name text files or folders/);
  await assert.rejects(() => prepareCmd([input, '--out', join(root, 'x'), '--vocab-size', '3']), /unknown option --vocab-size/);
});

test('built-in data: prepared once in the cache folder, then reused', async () => {
  const cacheDir = join(root, 'cache', 'brown-v512');
  const lines: string[] = [];
  const d = await ensureBuiltinData({ cacheDir, vocab: 512, log: (l) => lines.push(l) });
  assert.ok(existsSync(d.tokenizerPath) && existsSync(d.manifestPath));
  assert.ok(lines.some((l) => l.includes('first use')));
  const m = readManifest(d.manifestPath);
  assertVocabMatches(m, 512);
  assert.equal(m.splits.train.documents + m.splits.val.documents, 500);
  assert.equal(m.splits.val.documents, 10);
  const again: string[] = [];
  const d2 = await ensureBuiltinData({ cacheDir, vocab: 512, log: (l) => again.push(l) });
  assert.deepEqual(d2, d);
  assert.deepEqual(again, [], 'second call finds the data ready');
  const l = TokenLoader.open(d.manifestPath, { split: 'train', batch: 2, seqLen: 64, seed: 0 });
  const { tokenizer } = loadTokenizer(d.tokenizerPath);
  const text = tokenizer.decode(l.next().input);
  assert.match(text, /[a-z]+ [a-z]+ [a-z]+/);
  l.close();
  assert.ok(!readFileSync(d.manifestPath, 'utf8').includes(root), 'manifest paths are relative');
});
