// Text inputs for prepare and tokenizer training: files and folders (searched recursively for
// *.txt, *.text, *.md, *.jsonl) read as a stream of document pieces. In plain text files the
// literal <|endoftext|> separates documents (a file without one is one document); in .jsonl
// files each line's "text" field is a document. Huge documents arrive in pieces, never whole.
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { DataError } from './errors.js';
import { Utf8Check } from './text-check.js';
import { END_OF_TEXT } from './tokenizer.js';

export const TEXT_EXTENSIONS = ['.txt', '.text', '.md', '.jsonl'];

/** Some text of a document; `end` is true on the document's last piece. */
export interface TextPiece {
  source: string;
  text: string;
  end: boolean;
}

/** Expands paths (files or folders) into a sorted list of text files; errors name the bad path. */
export function collectInputFiles(paths: string[]): string[] {
  if (paths.length === 0) throw new DataError('no input named: give text files or folders (or --builtin for the built-in corpus).');
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && TEXT_EXTENSIONS.includes(extname(e.name).toLowerCase())) out.push(p);
    }
  };
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new DataError(`input '${p}' does not exist; check the path.`);
    }
    if (st.isDirectory()) {
      const before = out.length;
      walk(p);
      if (out.length === before) throw new DataError(`folder '${p}' holds no text files (looked for ${TEXT_EXTENSIONS.map((x) => '*' + x).join(', ')}, recursively).`);
    } else out.push(p);
  }
  return out;
}

const CHUNK_BYTES = 4 << 20;
/** a document with no separator is handed on in pieces of about this many characters */
const MAX_PIECE_CHARS = 16 << 20;

/** Where warnings about inputs go (a file that is not valid UTF-8). */
export type Warn = (line: string) => void;

/** Streams a file as decoded text chunks; refuses a binary file, warns about invalid UTF-8. */
function* readChunks(path: string, warn: Warn): Generator<string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new DataError(`input '${path}' cannot be read (${(e as NodeJS.ErrnoException).code ?? e}).`);
  }
  const buf = new Uint8Array(CHUNK_BYTES);
  const dec = new TextDecoder('utf-8');
  const check = new Utf8Check(path);
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      check.push(buf.subarray(0, n));
      yield dec.decode(buf.subarray(0, n), { stream: true });
    }
    const rest = dec.decode();
    const warning = check.end();
    if (warning) warn(warning);
    if (rest) yield rest;
  } finally {
    closeSync(fd);
  }
}

/** Documents of a plain text file, split at the literal <|endoftext|>. */
function* textFilePieces(path: string, warn: Warn): Generator<TextPiece> {
  let carry = '';
  let pending = false; // carry holds text of a document that has not ended
  for (const chunk of readChunks(path, warn)) {
    carry += chunk;
    const parts = carry.split(END_OF_TEXT);
    carry = parts.pop()!;
    for (const p of parts) {
      yield { source: path, text: p, end: true };
      pending = false;
    }
    if (carry.length > MAX_PIECE_CHARS) {
      // keep the separator search correct: hold back a tail that could start one
      let cut = carry.lastIndexOf('\n', carry.length - END_OF_TEXT.length);
      if (cut <= 0) cut = carry.length - END_OF_TEXT.length;
      yield { source: path, text: carry.slice(0, cut), end: false };
      carry = carry.slice(cut);
      pending = true;
    }
  }
  if (carry.length > 0 || pending) yield { source: path, text: carry, end: true };
}

/** Documents of a .jsonl file: one {"text": ...} object per line. */
function* jsonlPieces(path: string, warn: Warn): Generator<TextPiece> {
  let carry = '';
  let line = 0;
  const parse = (l: string): TextPiece | null => {
    line++;
    if (!l.trim()) return null;
    let obj: unknown;
    try {
      obj = JSON.parse(l);
    } catch {
      throw new DataError(`input '${path}' line ${line} is not valid JSON; each line of a .jsonl file must be an object like {"text": "..."}.`);
    }
    const text = (obj as { text?: unknown })?.text;
    if (typeof text !== 'string') throw new DataError(`input '${path}' line ${line} has no "text" string field; each line must be like {"text": "..."}.`);
    return { source: path, text, end: true };
  };
  for (const chunk of readChunks(path, warn)) {
    carry += chunk;
    const lines = carry.split('\n');
    carry = lines.pop()!;
    for (const l of lines) {
      const p = parse(l);
      if (p) yield p;
    }
  }
  const p = parse(carry);
  if (p) yield p;
}

/** All document pieces of the files, in order. */
export function* filePieces(files: string[], warn: Warn = (l) => process.stderr.write(l + '\n')): Generator<TextPiece> {
  for (const f of files) {
    if (extname(f).toLowerCase() === '.jsonl') yield* jsonlPieces(f, warn);
    else yield* textFilePieces(f, warn);
  }
}
