// The dataset manifest (manifest.json next to the shards): which tokenizer made the tokens, the
// shards of each split (train / val) with their token counts, and how the split was drawn.
// Paths inside are relative to the manifest's folder, so a prepared folder can be moved whole.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic-fs.js';
import { DataError } from './errors.js';
import type { TokenDtype } from './shard.js';

export const MANIFEST_FORMAT = 'zili-token-shards';
export const MANIFEST_VERSION = 1;

export type SplitName = 'train' | 'val';

export interface ShardEntry {
  /** file name relative to the manifest's folder */
  file: string;
  tokens: number;
  /** documents that end in this shard */
  documents: number;
}

export interface SplitInfo {
  tokens: number;
  documents: number;
  shards: ShardEntry[];
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  tokenizer: {
    /** path relative to the manifest's folder (or absolute) */
    file: string;
    /** sha256 of the tokenizer file */
    hash: string;
    vocabSize: number;
    eotId: number;
  };
  dtype: TokenDtype;
  blockTokens: number;
  /** fraction of documents held out for validation (every round(1/f)-th document, see docs/data.md) */
  valFraction: number;
  splits: Record<SplitName, SplitInfo>;
  /** the inputs given to prepare */
  sources: string[];
}

/** A manifest read from disk, with where it lives. */
export interface LoadedManifest extends Manifest {
  path: string;
  dir: string;
}

export function writeManifest(path: string, m: Manifest): void {
  writeFileAtomic(path, JSON.stringify(m, null, 2) + '\n');
}

export function readManifest(path: string): LoadedManifest {
  const fix = 'run `zili prepare` to create it';
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DataError(`manifest '${path}' cannot be read (${(e as NodeJS.ErrnoException).code ?? e}); ${fix}.`);
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new DataError(`manifest '${path}' is not valid JSON (${(e as Error).message}); ${fix} again.`);
  }
  if (!m || m.format !== MANIFEST_FORMAT) throw new DataError(`'${path}' is not a zili token manifest (format is not '${MANIFEST_FORMAT}'); ${fix}.`);
  if (m.version !== MANIFEST_VERSION) throw new DataError(`manifest '${path}' has version ${m.version}; this zili reads version ${MANIFEST_VERSION}. Re-run \`zili prepare\`.`);
  for (const s of ['train', 'val'] as const) {
    const sp = m.splits?.[s];
    if (!sp || !Array.isArray(sp.shards)) throw new DataError(`manifest '${path}' lacks the '${s}' split; ${fix} again.`);
  }
  if (!m.tokenizer || typeof m.tokenizer.vocabSize !== 'number') throw new DataError(`manifest '${path}' lacks tokenizer information; ${fix} again.`);
  const abs = resolve(path);
  return { ...m, path: abs, dir: dirname(abs) };
}

/** Absolute path of a file named in the manifest. */
export function manifestFile(m: LoadedManifest, file: string): string {
  return isAbsolute(file) ? file : join(m.dir, file);
}

/** Absolute path of the manifest's tokenizer. */
export function tokenizerPathOf(m: LoadedManifest): string {
  return manifestFile(m, m.tokenizer.file);
}

/**
 * Checks that a model's vocabulary fits the data: equal sizes, or with allowPadding a model
 * vocabulary larger than the tokenizer's (padded rows are never targets).
 */
export function assertVocabMatches(m: Manifest & { path?: string }, modelVocab: number, opts: { allowPadding?: boolean } = {}): void {
  const v = m.tokenizer.vocabSize;
  if (modelVocab === v || (opts.allowPadding && modelVocab > v)) return;
  const where = m.path ? `data '${m.path}'` : 'the data';
  throw new DataError(
    `vocabulary mismatch: ${where} was tokenized with a ${v}-token vocabulary (tokenizer '${m.tokenizer.file}'), ` +
      `but the model has vocab ${modelVocab}. Use a model with --vocab ${v}, or re-run \`zili prepare\` with a tokenizer of ${modelVocab} tokens.`,
  );
}
