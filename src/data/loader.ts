// TokenLoader: training batches from token shards, read as a stream. A split's shards are cut into
// fixed windows of seqLen + 1 tokens (documents are already packed, joined by <|endoftext|>);
// input = window[0..seqLen), target = window[1..seqLen]. Each epoch visits every window once in a
// seeded pseudo-random order (with a seeded start offset inside the shards), so batches are a pure
// function of (seed, sample number): state() is just the number of samples consumed, and a
// restored loader continues with exactly the next sample. Data-parallel rank r of w takes rows
// [r * batch, (r + 1) * batch) of each global batch of w * batch rows.
import { DataError } from './errors.js';
import { manifestFile, readManifest, type LoadedManifest, type SplitName } from './manifest.js';
import { mix32, Permutation } from './permutation.js';
import { openFileSource, ShardReader, type ByteSourceOpener } from './shard.js';

export interface LoaderOptions {
  split: SplitName;
  /** rows per next() on this rank */
  batch: number;
  seqLen: number;
  seed?: number;
  /** shuffle windows each epoch (default true); false reads windows in order from offset 0 */
  shuffle?: boolean;
  state?: LoaderState;
  rank?: number;
  worldSize?: number;
  /** how shard files are opened; tests inject one that counts bytes */
  openFile?: ByteSourceOpener;
  /** most shard files kept open at once (default 8) */
  maxOpenShards?: number;
}

/** Where a loader is: JSON-serialisable, the same on every rank. */
export interface LoaderState {
  version: 1;
  split: SplitName;
  seed: number;
  seqLen: number;
  shuffle: boolean;
  /** windows in one epoch, to detect a different dataset */
  windowsPerEpoch: number;
  /** global samples consumed (all ranks together) */
  samples: number;
}

export interface Batch {
  /** [batch, seqLen] row-major */
  input: Int32Array;
  /** [batch, seqLen] row-major: input shifted left by one */
  target: Int32Array;
}

export class TokenLoader {
  readonly manifest: LoadedManifest;
  readonly batch: number;
  readonly seqLen: number;
  readonly rank: number;
  readonly worldSize: number;
  /** windows (samples) in one epoch */
  readonly windowsPerEpoch: number;
  private readonly seed: number;
  private readonly shuffle: boolean;
  private readonly split: SplitName;
  /** prefix sums of windows per shard */
  private readonly windowStart: number[];
  private readonly open: Map<number, ShardReader> = new Map();
  private readonly opener: ByteSourceOpener;
  private readonly maxOpen: number;
  private samples: number;
  private epochCache: { epoch: number; perm: Permutation | null; offset: number } | null = null;

  private constructor(m: LoadedManifest, opts: LoaderOptions) {
    this.manifest = m;
    this.split = opts.split;
    this.batch = opts.batch;
    this.seqLen = opts.seqLen;
    this.seed = opts.seed ?? 0;
    this.shuffle = opts.shuffle ?? true;
    this.rank = opts.rank ?? 0;
    this.worldSize = opts.worldSize ?? 1;
    this.opener = opts.openFile ?? openFileSource;
    this.maxOpen = opts.maxOpenShards ?? 8;
    const posInt = (name: string, v: number) => {
      if (!Number.isInteger(v) || v < 1) throw new DataError(`loader: ${name} must be a positive integer, got ${v}`);
    };
    posInt('batch', this.batch);
    posInt('seqLen', this.seqLen);
    posInt('worldSize', this.worldSize);
    if (!Number.isInteger(this.rank) || this.rank < 0 || this.rank >= this.worldSize) throw new DataError(`loader: rank ${this.rank} outside [0, ${this.worldSize})`);
    if (!Number.isSafeInteger(this.seed)) throw new DataError(`loader: seed must be an integer, got ${this.seed}`);
    const split = m.splits[opts.split];
    if (!split) throw new DataError(`manifest '${m.path}' has no split '${opts.split}' (splits: train, val).`);
    this.windowStart = [0];
    for (const s of split.shards) this.windowStart.push(this.windowStart[this.windowStart.length - 1]! + this.windowsIn(s.tokens));
    this.windowsPerEpoch = this.windowStart[this.windowStart.length - 1]!;
    if (this.windowsPerEpoch === 0) {
      throw new DataError(
        `the '${opts.split}' split of '${m.path}' has ${split.tokens} tokens in ${split.shards.length} shard(s): not one sequence of ${this.seqLen + 1} tokens` +
          (this.shuffle ? ` (shuffled reading needs ${2 * this.seqLen} per shard)` : '') +
          `. Use a shorter sequence length or prepare more text${opts.split === 'val' ? ' (or a larger --val-fraction)' : ''}.`,
      );
    }
    this.samples = 0;
    if (opts.state) this.restore(opts.state);
  }

  /** Opens a loader on a manifest (path or already read). */
  static open(manifest: string | LoadedManifest, opts: LoaderOptions): TokenLoader {
    const m = typeof manifest === 'string' ? readManifest(manifest) : manifest;
    return new TokenLoader(m, opts);
  }

  /** Windows in a shard of n tokens; with shuffling, room is left for a start offset < seqLen. */
  private windowsIn(n: number): number {
    const room = this.shuffle ? n - this.seqLen : n - 1;
    return Math.max(0, Math.floor(room / this.seqLen));
  }

  private restore(s: LoaderState): void {
    const want = { split: this.split, seed: this.seed, seqLen: this.seqLen, shuffle: this.shuffle, windowsPerEpoch: this.windowsPerEpoch };
    if (s?.version !== 1 || !Number.isSafeInteger(s.samples) || s.samples < 0) throw new DataError(`loader state ${JSON.stringify(s)} is not a valid saved position.`);
    for (const [k, v] of Object.entries(want)) {
      const got = (s as unknown as Record<string, unknown>)[k];
      if (got !== v) {
        throw new DataError(`cannot resume data position: it was saved with ${k} = ${JSON.stringify(got)}, but this run has ${k} = ${JSON.stringify(v)} (data '${this.manifest.path}'). Resume with the same data, seed and sequence length.`);
      }
    }
    this.samples = s.samples;
  }

  state(): LoaderState {
    return {
      version: 1,
      split: this.split,
      seed: this.seed,
      seqLen: this.seqLen,
      shuffle: this.shuffle,
      windowsPerEpoch: this.windowsPerEpoch,
      samples: this.samples,
    };
  }

  /** Epochs completed so far (fractional). */
  get epoch(): number {
    return this.samples / this.windowsPerEpoch;
  }

  private epochInfo(epoch: number): { perm: Permutation | null; offset: number } {
    if (this.epochCache?.epoch !== epoch) {
      const es = mix32(mix32(this.seed >>> 0, Math.floor(this.seed / 2 ** 32)), epoch);
      this.epochCache = {
        epoch,
        perm: this.shuffle ? new Permutation(this.windowsPerEpoch, es) : null,
        offset: this.shuffle ? mix32(es, 0x5eed) % this.seqLen : 0,
      };
    }
    return this.epochCache;
  }

  private reader(shard: number): ShardReader {
    let r = this.open.get(shard);
    if (r) {
      this.open.delete(shard); // re-insert: the map's order is least recently used first
      this.open.set(shard, r);
      return r;
    }
    const entry = this.manifest.splits[this.split].shards[shard]!;
    const path = manifestFile(this.manifest, entry.file);
    r = ShardReader.open(path, this.opener);
    const h = r.header;
    const fix = 're-run `zili prepare`';
    if (h.tokens !== entry.tokens) {
      r.close();
      throw new DataError(`shard '${path}' holds ${h.tokens} tokens but manifest '${this.manifest.path}' says ${entry.tokens}; ${fix}.`);
    }
    if (h.vocabSize !== this.manifest.tokenizer.vocabSize || !this.manifest.tokenizer.hash.startsWith(h.tokenizerHash)) {
      r.close();
      throw new DataError(`shard '${path}' was made with a different tokenizer than manifest '${this.manifest.path}' names; ${fix}.`);
    }
    if (this.open.size >= this.maxOpen) {
      const [oldest, old] = this.open.entries().next().value as [number, ShardReader];
      old.close();
      this.open.delete(oldest);
    }
    this.open.set(shard, r);
    return r;
  }

  /** Reads the window of global sample g into row of out. */
  private readSample(g: number, out: Int32Array, outOffset: number): void {
    const n = this.windowsPerEpoch;
    const epoch = Math.floor(g / n);
    const { perm, offset } = this.epochInfo(epoch);
    const k = g - epoch * n;
    const w = perm ? perm.at(k) : k;
    // binary search: the shard whose window range holds w
    let lo = 0;
    let hi = this.windowStart.length - 2;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.windowStart[mid]! <= w) lo = mid;
      else hi = mid - 1;
    }
    const start = offset + (w - this.windowStart[lo]!) * this.seqLen;
    this.reader(lo).read(start, this.seqLen + 1, out, outOffset);
  }

  /** The next batch for this rank. */
  next(): Batch {
    const T = this.seqLen;
    const input = new Int32Array(this.batch * T);
    const target = new Int32Array(this.batch * T);
    const row = new Int32Array(T + 1);
    const base = this.samples + this.rank * this.batch;
    for (let b = 0; b < this.batch; b++) {
      this.readSample(base + b, row, 0);
      input.set(row.subarray(0, T), b * T);
      target.set(row.subarray(1, T + 1), b * T);
    }
    this.samples += this.batch * this.worldSize;
    return { input, target };
  }

  close(): void {
    for (const r of this.open.values()) r.close();
    this.open.clear();
  }
}
