// Corpus preparation: tokenizes a stream of documents into binary shards (train and validation
// splits), each document followed by <|endoftext|>, and writes the manifest last so a folder with
// a manifest is always complete. Memory stays bounded by one shard buffer per split.
import { mkdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { DataError } from './errors.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, readManifest, writeManifest, type LoadedManifest, type SplitInfo, type SplitName } from './manifest.js';
import { DEFAULT_BLOCK_TOKENS, dtypeForVocab, writeShard } from './shard.js';
import type { TextPiece } from './sources.js';
import type { Tokenizer } from './tokenizer.js';

export const DEFAULT_VAL_FRACTION = 0.02;
export const DEFAULT_SHARD_TOKENS = 1 << 24;

export interface PrepareOptions {
  outDir: string;
  pieces: Iterable<TextPiece>;
  tokenizer: Tokenizer;
  /** where the tokenizer file is (recorded relative to outDir when inside it) */
  tokenizerFile: string;
  tokenizerHash: string;
  /** fraction of documents held out for validation (default 0.02) */
  valFraction?: number;
  /** tokens per shard (default 16M) */
  shardTokens?: number;
  /** names of the inputs, recorded in the manifest */
  sources: string[];
  /** progress lines (every couple of seconds on long work) */
  log?: (line: string) => void;
}

/**
 * Whether document i (0-based) is held out: every round(1/f)-th document, starting half a period
 * in, so about round(n * f) of n documents are, spread evenly through the input order.
 */
export function isValidationDoc(i: number, f: number): boolean {
  if (f <= 0) return false;
  return Math.floor((i + 1) * f + 0.5) > Math.floor(i * f + 0.5);
}

class SplitWriter {
  private buf: Uint32Array;
  private fill = 0;
  private docsInShard = 0;
  readonly info: SplitInfo = { tokens: 0, documents: 0, shards: [] };

  constructor(
    private readonly name: SplitName,
    private readonly dir: string,
    private readonly shardTokens: number,
    private readonly vocabSize: number,
    private readonly tokenizerHash: string,
  ) {
    this.buf = new Uint32Array(Math.min(shardTokens, 1 << 16));
  }

  push(ids: number[]): void {
    for (let i = 0; i < ids.length; i++) {
      if (this.fill === this.buf.length) {
        if (this.fill === this.shardTokens) this.flush();
        else {
          const bigger = new Uint32Array(Math.min(this.shardTokens, this.buf.length * 2));
          bigger.set(this.buf);
          this.buf = bigger;
        }
      }
      this.buf[this.fill++] = ids[i]!;
    }
    this.info.tokens += ids.length;
  }

  endDocument(): void {
    this.docsInShard++;
    this.info.documents++;
  }

  flush(): void {
    if (this.fill === 0) return;
    const file = `${this.name}-${String(this.info.shards.length).padStart(5, '0')}.bin`;
    writeShard(join(this.dir, file), this.buf.subarray(0, this.fill), { vocabSize: this.vocabSize, tokenizerHash: this.tokenizerHash });
    this.info.shards.push({ file, tokens: this.fill, documents: this.docsInShard });
    this.fill = 0;
    this.docsInShard = 0;
  }
}

function fmtCount(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

/** Tokenizes the pieces into shards in outDir and writes outDir/manifest.json; returns it. */
export function prepareShards(opts: PrepareOptions): LoadedManifest {
  const valFraction = opts.valFraction ?? DEFAULT_VAL_FRACTION;
  if (!(valFraction >= 0 && valFraction < 1)) throw new DataError(`validation fraction must be in [0, 1), got ${valFraction}.`);
  const shardTokens = opts.shardTokens ?? DEFAULT_SHARD_TOKENS;
  if (!Number.isInteger(shardTokens) || shardTokens < 1) throw new DataError(`tokens per shard must be a positive integer, got ${shardTokens}.`);
  const outDir = resolve(opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const manifestPath = join(outDir, 'manifest.json');
  rmSync(manifestPath, { force: true }); // an old manifest must not describe half-rewritten shards

  const tok = opts.tokenizer;
  const eot = tok.eotId;
  const writers: Record<SplitName, SplitWriter> = {
    train: new SplitWriter('train', outDir, shardTokens, tok.vocabSize, opts.tokenizerHash),
    val: new SplitWriter('val', outDir, shardTokens, tok.vocabSize, opts.tokenizerHash),
  };
  let doc = 0;
  let docTokens = 0;
  let chars = 0;
  const t0 = Date.now();
  let lastLog = t0;
  for (const piece of opts.pieces) {
    const w = writers[isValidationDoc(doc, valFraction) ? 'val' : 'train'];
    const ids = tok.encode(piece.text, { allowSpecial: false });
    chars += piece.text.length;
    docTokens += ids.length;
    w.push(ids);
    if (piece.end) {
      if (docTokens > 0) {
        w.push([eot]);
        w.endDocument();
        doc++;
      }
      docTokens = 0;
    }
    if (opts.log && Date.now() - lastLog > 2000) {
      lastLog = Date.now();
      const tokens = writers.train.info.tokens + writers.val.info.tokens;
      const s = (lastLog - t0) / 1000;
      opts.log(`prepare: ${doc} documents, ${fmtCount(tokens)} tokens (${fmtCount(tokens / s)} tokens/s, ${(chars / s / 1e6).toFixed(1)}M chars/s)`);
    }
  }
  if (docTokens > 0) {
    // the last document's final piece did not say end: close it anyway
    const w = writers[isValidationDoc(doc, valFraction) ? 'val' : 'train'];
    w.push([eot]);
    w.endDocument();
    doc++;
  }
  if (doc === 0) throw new DataError(`the inputs (${opts.sources.join(', ')}) contain no text; nothing to prepare.`);
  writers.train.flush();
  writers.val.flush();
  if (writers.train.info.tokens === 0) throw new DataError(`all ${doc} documents went to validation; lower --val-fraction (now ${valFraction}).`);
  if (writers.val.info.tokens === 0 && valFraction > 0) {
    opts.log?.(`prepare: warning: no document went to validation (${doc} documents, fraction ${valFraction}); raise --val-fraction for a validation loss`);
  }
  const tokFile = relative(outDir, resolve(opts.tokenizerFile));
  writeManifest(manifestPath, {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    tokenizer: {
      file: tokFile.startsWith('..') || isAbsolute(tokFile) ? resolve(opts.tokenizerFile) : tokFile,
      hash: opts.tokenizerHash,
      vocabSize: tok.vocabSize,
      eotId: eot,
    },
    dtype: dtypeForVocab(tok.vocabSize),
    blockTokens: DEFAULT_BLOCK_TOKENS,
    valFraction,
    splits: { train: writers.train.info, val: writers.val.info },
    sources: opts.sources,
  });
  const m = readManifest(manifestPath);
  const secs = (Date.now() - t0) / 1000;
  opts.log?.(
    `prepare: ${doc} documents -> ${fmtCount(m.splits.train.tokens)} train tokens (${m.splits.train.shards.length} shards), ` +
      `${fmtCount(m.splits.val.tokens)} validation tokens (${m.splits.val.documents} documents) in ${secs.toFixed(1)} s; manifest ${manifestPath}`,
  );
  return m;
}
