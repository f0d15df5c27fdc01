// Test helper: writes a synthetic token dataset (shards + manifest) whose token values are their
// global positions, so a test can tell exactly which window of which shard a sample came from.
import { join } from 'node:path';
import { MANIFEST_FORMAT, MANIFEST_VERSION, readManifest, writeManifest, type LoadedManifest, type ShardEntry } from '../src/data/manifest.js';
import { dtypeForVocab, writeShard } from '../src/data/shard.js';

export const FAKE_HASH = 'ab'.repeat(32);

/** Shards of the given sizes per split; token i of the split is (start + i) % vocab. */
export function makeDataset(dir: string, train: number[], val: number[] = [], vocab = 65536, blockTokens = 64): LoadedManifest {
  const split = (name: string, sizes: number[], start: number) => {
    const shards: ShardEntry[] = [];
    let pos = start;
    sizes.forEach((n, s) => {
      const file = `${name}-${s}.bin`;
      writeShard(join(dir, file), Array.from({ length: n }, (_, i) => (pos + i) % vocab), { vocabSize: vocab, tokenizerHash: FAKE_HASH, blockTokens });
      shards.push({ file, tokens: n, documents: 1 });
      pos += n;
    });
    return { tokens: sizes.reduce((a, b) => a + b, 0), documents: sizes.length, shards };
  };
  writeManifest(join(dir, 'manifest.json'), {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    tokenizer: { file: 'tokenizer.json', hash: FAKE_HASH, vocabSize: vocab, eotId: vocab - 1 },
    dtype: dtypeForVocab(vocab),
    blockTokens,
    valFraction: 0.1,
    splits: { train: split('train', train, 0), val: split('val', val, 1_000_000) },
    sources: ['synthetic'],
  });
  return readManifest(join(dir, 'manifest.json'));
}
