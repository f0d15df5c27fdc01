// Tests for token shards: write/read round trips (uint16 and uint32), reads across checksum
// blocks, and clear errors for missing, truncated and corrupt shards.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { crc32 } from '../src/data/crc32.js';
import { ShardReader, writeShard } from '../src/data/shard.js';

const dir = mkdtempSync(join(tmpdir(), 'zili-shard-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const HASH = '0123456789abcdef'.repeat(4);

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('uint16 shard: header fields and every token range read back', () => {
  const tokens = Array.from({ length: 1000 }, (_, i) => (i * 37) % 4096);
  const path = join(dir, 'a.bin');
  writeShard(path, tokens, { vocabSize: 4096, tokenizerHash: HASH, blockTokens: 64 });
  const r = ShardReader.open(path);
  assert.equal(r.header.dtype, 'uint16');
  assert.equal(r.header.tokens, 1000);
  assert.equal(r.header.vocabSize, 4096);
  assert.equal(r.header.tokenizerHash, HASH.slice(0, 32));
  for (const [s, n] of [[0, 1000], [63, 2], [100, 300], [999, 1], [640, 0]] as const) {
    const out = new Int32Array(n);
    r.read(s, n, out);
    assert.deepEqual(Array.from(out), tokens.slice(s, s + n));
  }
  assert.throws(() => r.read(990, 20, new Int32Array(20)), RangeError);
  r.verifyAll();
  r.close();
});

test('uint32 shard for vocabularies over 65536', () => {
  const tokens = [0, 65535, 65536, 99999, 7];
  const path = join(dir, 'b.bin');
  writeShard(path, tokens, { vocabSize: 100000, tokenizerHash: HASH });
  const r = ShardReader.open(path);
  assert.equal(r.header.dtype, 'uint32');
  const out = new Int32Array(5);
  r.read(0, 5, out);
  assert.deepEqual(Array.from(out), tokens);
  r.close();
  assert.throws(() => writeShard(join(dir, 'c.bin'), [5, 100000], { vocabSize: 100000, tokenizerHash: HASH }), /outside the vocabulary/);
});

test('missing, bad magic, truncated, corrupt header and corrupt data give errors naming the file', () => {
  const good = join(dir, 'good.bin');
  writeShard(good, Array.from({ length: 500 }, (_, i) => i), { vocabSize: 1000, tokenizerHash: HASH, blockTokens: 64 });
  const bytes = Uint8Array.from(readFileSync(good));

  assert.throws(() => ShardReader.open(join(dir, 'nope.bin')), /shard '.*nope\.bin' cannot be opened \(ENOENT\).*zili prepare/);

  const magic = Uint8Array.from(bytes);
  magic[0] = 0x58;
  writeFileSync(join(dir, 'magic.bin'), magic);
  assert.throws(() => ShardReader.open(join(dir, 'magic.bin')), /magic\.bin' is not a zili token shard \(bad magic/);

  writeFileSync(join(dir, 'trunc.bin'), bytes.subarray(0, bytes.length - 10));
  assert.throws(() => ShardReader.open(join(dir, 'trunc.bin')), /trunc\.bin' is truncated/);
  writeFileSync(join(dir, 'tiny.bin'), bytes.subarray(0, 20));
  assert.throws(() => ShardReader.open(join(dir, 'tiny.bin')), /tiny\.bin' is truncated/);

  const head = Uint8Array.from(bytes);
  head[20] ^= 1; // token count
  writeFileSync(join(dir, 'head.bin'), head);
  assert.throws(() => ShardReader.open(join(dir, 'head.bin')), /head\.bin' has a corrupt header/);

  const data = Uint8Array.from(bytes);
  data[data.length - 100] ^= 0x40; // a token in the last block
  writeFileSync(join(dir, 'data.bin'), data);
  const r = ShardReader.open(join(dir, 'data.bin'));
  const out = new Int32Array(10);
  r.read(0, 10, out); // blocks before the damage are fine
  assert.deepEqual(Array.from(out), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.throws(() => r.read(490, 10, out), /data\.bin' is corrupt: checksum mismatch in tokens 448\.\.499/);
  assert.throws(() => r.verifyAll(), /checksum mismatch/);
  r.close();
});
