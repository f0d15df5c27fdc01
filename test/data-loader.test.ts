// Tests for TokenLoader: input/target packing, determinism per seed, exact resume, disjoint and
// covering data-parallel slices, epoch coverage, streaming (bytes read), and clear errors.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TokenLoader, type Batch } from '../src/data/loader.js';
import { assertVocabMatches } from '../src/data/manifest.js';
import { Permutation } from '../src/data/permutation.js';
import { openFileSource, type ByteSourceOpener } from '../src/data/shard.js';
import { makeDataset } from './data-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'zili-loader-'));
after(() => rmSync(root, { recursive: true, force: true }));
const dir = join(root, 'd');
mkdirSync(dir);
const m = makeDataset(dir, [1000, 555, 2048], [300]);

const take = (l: TokenLoader, k: number): Batch[] => Array.from({ length: k }, () => l.next());
const rows = (b: Batch, T: number) => Array.from({ length: b.input.length / T }, (_, r) => Array.from(b.input.subarray(r * T, (r + 1) * T)));

test('permutation is a bijection and depends on the seed', () => {
  for (const n of [1, 2, 7, 64, 1000]) {
    const p = new Permutation(n, 42);
    const seen = new Set(Array.from({ length: n }, (_, i) => p.at(i)));
    assert.equal(seen.size, n);
    for (const v of seen) assert.ok(v >= 0 && v < n);
  }
  const a = Array.from({ length: 50 }, (_, i) => new Permutation(50, 1).at(i));
  const b = Array.from({ length: 50 }, (_, i) => new Permutation(50, 2).at(i));
  assert.notDeepEqual(a, b);
});

test('rows are contiguous windows; target is input shifted by one', () => {
  const T = 16;
  const l = TokenLoader.open(m.path, { split: 'train', batch: 4, seqLen: T, seed: 1 });
  for (const b of take(l, 5)) {
    assert.equal(b.input.length, 4 * T);
    assert.equal(b.target.length, 4 * T);
    for (let r = 0; r < 4; r++) {
      for (let t = 0; t < T; t++) assert.equal(b.target[r * T + t], b.input[r * T + t]! + 1, 'tokens are positions: target = next token');
    }
  }
  l.close();
});

test('same seed gives the same batches; another seed differs', () => {
  const opts = { split: 'train' as const, batch: 3, seqLen: 20 };
  const a = take(TokenLoader.open(m.path, { ...opts, seed: 7 }), 6);
  const b = take(TokenLoader.open(m.path, { ...opts, seed: 7 }), 6);
  const c = take(TokenLoader.open(m.path, { ...opts, seed: 8 }), 6);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.map((x) => x.input), c.map((x) => x.input));
});

test('one epoch visits every window once, within one shard each, with a shuffled order', () => {
  const T = 32;
  const l = TokenLoader.open(m, { split: 'train', batch: 1, seqLen: T, seed: 3 });
  const n = l.windowsPerEpoch;
  // shuffled windows leave room for a start offset < T: floor((n_s - T) / T) per shard
  assert.equal(n, Math.floor((1000 - T) / T) + Math.floor((555 - T) / T) + Math.floor((2048 - T) / T));
  const starts = take(l, n).map((b) => b.input[0]!);
  assert.equal(new Set(starts).size, n);
  const bounds = [0, 1000, 1555, 3603];
  for (const s of starts) {
    const shard = bounds.findIndex((x, i) => s >= x && s < bounds[i + 1]!);
    assert.ok(s + T + 1 <= bounds[shard + 1]!, `window at ${s} stays inside shard ${shard}`);
  }
  const sorted = [...starts].sort((x, y) => x - y);
  assert.notDeepEqual(starts, sorted);
  assert.equal(l.epoch, 1);
  const next = take(l, n).map((b) => b.input[0]!); // epoch 2: same windows count, new order/offset
  assert.notDeepEqual(next, starts);
});

test('resume: k batches, save state as JSON, restore, continue == a straight run', () => {
  const opts = { split: 'train' as const, batch: 5, seqLen: 24, seed: 11 };
  const straight = take(TokenLoader.open(m.path, opts), 40); // crosses epoch boundaries
  const first = TokenLoader.open(m.path, opts);
  const head = take(first, 13);
  const saved = JSON.parse(JSON.stringify(first.state()));
  first.close();
  const resumed = TokenLoader.open(m.path, { ...opts, state: saved });
  const tail = take(resumed, 27);
  assert.deepEqual([...head, ...tail], straight);
  assert.throws(() => TokenLoader.open(m.path, { ...opts, seed: 12, state: saved }), /saved with seed = 11, but this run has seed = 12/);
  assert.throws(() => TokenLoader.open(m.path, { ...opts, seqLen: 25, state: saved }), /seqLen/);
});

test('ranks get disjoint slices that together make the single-process batch', () => {
  const T = 8;
  const W = 3;
  const single = take(TokenLoader.open(m.path, { split: 'train', batch: 2 * W, seqLen: T, seed: 5 }), 4);
  const perRank = Array.from({ length: W }, (_, rank) => take(TokenLoader.open(m.path, { split: 'train', batch: 2, seqLen: T, seed: 5, rank, worldSize: W }), 4));
  for (let step = 0; step < 4; step++) {
    const joined = perRank.flatMap((r) => rows(r[step]!, T));
    assert.deepEqual(joined, rows(single[step]!, T));
    const firsts = joined.map((r) => r[0]);
    assert.equal(new Set(firsts).size, firsts.length, 'no row appears on two ranks');
  }
  const r1 = TokenLoader.open(m.path, { split: 'train', batch: 2, seqLen: T, seed: 5, rank: 1, worldSize: W });
  r1.next();
  assert.equal(r1.state().samples, 2 * W, 'state counts global samples, the same on every rank');
  assert.throws(() => TokenLoader.open(m.path, { split: 'train', batch: 2, seqLen: T, rank: 3, worldSize: 3 }), /rank 3 outside/);
});

test('streaming: a few batches read a small part of a large shard', () => {
  const big = join(root, 'big');
  mkdirSync(big);
  const bm = makeDataset(big, [200_000], [], 65536, 256);
  let bytesRead = 0;
  const counting: ByteSourceOpener = (path) => {
    const src = openFileSource(path);
    return { size: src.size, close: () => src.close(), readAt: (buf, pos) => ((bytesRead += buf.length), src.readAt(buf, pos)) };
  };
  const l = TokenLoader.open(bm, { split: 'train', batch: 4, seqLen: 64, seed: 1, openFile: counting });
  take(l, 3);
  l.close();
  const size = statSync(join(big, 'train-0.bin')).size;
  assert.ok(bytesRead > 12 * 65 * 2, 'it did read the samples');
  assert.ok(bytesRead < size / 20, `read ${bytesRead} of ${size} bytes`);
});

test('validation without shuffling reads windows in order', () => {
  const l = TokenLoader.open(m.path, { split: 'val', batch: 2, seqLen: 10, shuffle: false });
  assert.equal(l.windowsPerEpoch, Math.floor(299 / 10));
  const b = l.next();
  assert.deepEqual(Array.from(b.input.subarray(0, 3)), [1_000_000 % 65536, (1_000_001) % 65536, (1_000_002) % 65536]);
  assert.equal(b.input[10], (1_000_010) % 65536);
});

test('errors: too little data, missing shard, vocabulary mismatch', () => {
  assert.throws(() => TokenLoader.open(m.path, { split: 'val', batch: 1, seqLen: 400 }), /'val' split .* 300 tokens.*shorter sequence length/);
  rmSync(join(dir, 'train-1.bin'));
  const l = TokenLoader.open(m.path, { split: 'train', batch: 64, seqLen: 8, seed: 1 });
  assert.throws(() => take(l, 10), /shard '.*train-1\.bin' cannot be opened \(ENOENT\).*zili prepare/);
  assert.doesNotThrow(() => assertVocabMatches(m, 65536));
  assert.throws(() => assertVocabMatches(m, 4096), /vocabulary mismatch: data '.*manifest\.json' was tokenized with a 65536-token vocabulary.*model has vocab 4096/);
  assert.throws(() => assertVocabMatches(m, 70000), /mismatch/);
  assert.doesNotThrow(() => assertVocabMatches(m, 70000, { allowPadding: true }));
  assert.throws(() => TokenLoader.open(join(root, 'none.json'), { split: 'train', batch: 1, seqLen: 8 }), /manifest '.*none\.json' cannot be read.*zili prepare/);
});
