// `zili tokenizer train|encode|decode|info`: trains a byte-level BPE tokenizer on text files or the
// built-in corpus, and inspects what it does to text.
import { readFileSync } from 'node:fs';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { trainBpe, WordCounter } from '../data/bpe-train.js';
import { brownDocuments } from '../data/builtin-corpus.js';
import { collectInputFiles, filePieces } from '../data/sources.js';
import { loadTokenizer, saveTokenizer } from '../data/tokenizer-json.js';
import { MIN_VOCAB } from '../data/bpe-train.js';
import { checkOutputFile } from '../util/output-file.js';

const TRAIN = {
  input: { kind: 'string', help: 'text files or folders, comma-separated (or give them as arguments)' },
  builtin: { kind: 'bool', help: 'train on the built-in corpus (Brown)' },
  vocab: { kind: 'size', help: 'vocabulary size: 256 bytes + merges + special tokens', default: 4096, min: MIN_VOCAB },
  special: { kind: 'string', help: 'extra special tokens, comma-separated (<|endoftext|> is always there)' },
  'min-frequency': { kind: 'int', help: 'stop merging when the best pair is rarer than this', default: 2, min: 1 },
  out: { kind: 'string', help: 'where to write tokenizer.json', default: 'tokenizer.json' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

const ENCODE = {
  tokenizer: { kind: 'string', help: 'tokenizer.json to use', default: 'tokenizer.json' },
  text: { kind: 'string', help: 'text to encode (or give it as arguments)' },
  file: { kind: 'string', help: 'encode this file instead' },
  show: { kind: 'bool', help: 'print each token with its text' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

const DECODE = {
  tokenizer: { kind: 'string', help: 'tokenizer.json to use', default: 'tokenizer.json' },
  ids: { kind: 'string', help: 'token ids, comma- or space-separated (or give them as arguments)' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

const INFO = {
  tokenizer: { kind: 'string', help: 'tokenizer.json to describe', default: 'tokenizer.json' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

const USAGE = [
  'usage: zili tokenizer <train|encode|decode|info> [options]',
  '',
  '  train    learn a byte-level BPE tokenizer from text',
  '  encode   text -> token ids',
  '  decode   token ids -> text',
  '  info     vocabulary size, special tokens, merges',
].join('\n');

function splitList(s: string | undefined): string[] {
  return (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
}

async function train(argv: string[]): Promise<number> {
  const a = parseArgs(argv, TRAIN, 'tokenizer train');
  if (a.help) {
    console.log(formatHelp('tokenizer train', TRAIN, '[FILES or FOLDERS...]'));
    return 0;
  }
  const inputs = [...splitList(a.input), ...a._];
  if (a.builtin && inputs.length) throw new UsageError('give either --builtin or inputs, not both');
  if (!a.builtin && !inputs.length) throw new UsageError('name text files or folders to train on (--input PATH), or --builtin');
  checkOutputFile(a.out!);
  const specials = splitList(a.special);
  const counter = new WordCounter(['<|endoftext|>', ...specials]);
  const t0 = performance.now();
  if (a.builtin) for (const d of brownDocuments()) counter.add(d.text);
  else for (const p of filePieces(collectInputFiles(inputs), (l) => console.error(`tokenizer: ${l}`))) counter.add(p.text);
  const t1 = performance.now();
  console.error(`tokenizer: ${counter.counts.size} distinct words in ${(counter.bytes / 1e6).toFixed(1)}M characters (${((t1 - t0) / 1000).toFixed(1)} s)`);
  const tok = trainBpe(counter.counts, {
    vocabSize: a.vocab!,
    specialTokens: specials,
    minFrequency: a['min-frequency'],
    onProgress: (done, target) => {
      if (done % 1024 === 0) console.error(`tokenizer: ${done}/${target} merges`);
    },
  });
  const t2 = performance.now();
  const out = a.out!;
  const hash = saveTokenizer(tok, out);
  console.error(`tokenizer: learned ${tok.mergeIds.length} merges in ${((t2 - t1) / 1000).toFixed(2)} s`);
  if (tok.vocabSize < a.vocab!) console.error(`tokenizer: note: the text supports only ${tok.vocabSize} tokens (asked for ${a.vocab}); give more text or lower --min-frequency`);
  console.log(`wrote ${out}: ${tok.vocabSize} tokens, sha256 ${hash.slice(0, 16)}`);
  return 0;
}

async function encode(argv: string[]): Promise<number> {
  const a = parseArgs(argv, ENCODE, 'tokenizer encode');
  if (a.help) {
    console.log(formatHelp('tokenizer encode', ENCODE, '[TEXT]'));
    return 0;
  }
  const { tokenizer } = loadTokenizer(a.tokenizer!);
  let text: string;
  if (a.file) text = readFileSync(a.file, 'utf8');
  else if (a.text !== undefined) text = a.text;
  else if (a._.length) text = a._.join(' ');
  else throw new UsageError('give text to encode: --text STR, --file F, or the text as arguments');
  const ids = tokenizer.encode(text);
  if (a.show) {
    const strict = new TextDecoder('utf-8', { fatal: true });
    for (const id of ids) {
      const bytes = tokenizer.tokenBytes(id);
      let shown: string;
      try {
        shown = JSON.stringify(strict.decode(bytes));
      } catch {
        shown = `bytes ${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')} (part of a character)`;
      }
      console.log(`${String(id).padStart(6)}  ${shown}`);
    }
  }
  else console.log(ids.join(' '));
  console.error(`${ids.length} tokens, ${new TextEncoder().encode(text).length} bytes`);
  return 0;
}

async function decode(argv: string[]): Promise<number> {
  const a = parseArgs(argv, DECODE, 'tokenizer decode');
  if (a.help) {
    console.log(formatHelp('tokenizer decode', DECODE, '[IDS...]'));
    return 0;
  }
  const { tokenizer } = loadTokenizer(a.tokenizer!);
  const words = [...((a.ids) ?? '').split(/[\s,]+/), ...a._.flatMap((x) => x.split(/[\s,]+/))].filter(Boolean);
  if (!words.length) throw new UsageError('give token ids to decode: --ids "1,2,3" or as arguments');
  const ids = words.map((w) => {
    const n = Number(w);
    if (!Number.isInteger(n) || n < 0 || n >= tokenizer.vocabSize) throw new UsageError(`'${w}' is not a token id (0..${tokenizer.vocabSize - 1})`);
    return n;
  });
  process.stdout.write(tokenizer.decode(ids) + '\n');
  return 0;
}

async function info(argv: string[]): Promise<number> {
  const a = parseArgs(argv, INFO, 'tokenizer info');
  if (a.help) {
    console.log(formatHelp('tokenizer info', INFO));
    return 0;
  }
  const { tokenizer, hash } = loadTokenizer(a.tokenizer!);
  console.log(`${a.tokenizer}: byte-level BPE, ${tokenizer.vocabSize} tokens, ${tokenizer.mergeIds.length} merges, sha256 ${hash.slice(0, 16)}`);
  console.log(`special tokens: ${tokenizer.specials.map((s) => `${s.content}=${s.id}`).join(' ')}`);
  const merges = tokenizer.mergeStrings();
  console.log(`first merges: ${merges.slice(0, 5).map(([l, r]) => `${l} ${r}`).join(' | ')}`);
  console.log(`last merges:  ${merges.slice(-5).map(([l, r]) => `${l} ${r}`).join(' | ')}`);
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'train':
      return train(rest);
    case 'encode':
      return encode(rest);
    case 'decode':
      return decode(rest);
    case 'info':
      return info(rest);
    case undefined:
    case '--help':
    case 'help':
      console.log(USAGE);
      return sub ? 0 : 2;
    default:
      throw new UsageError(`unknown subcommand '${sub}'.\n${USAGE}`);
  }
}
