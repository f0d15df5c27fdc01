// Is an input file UTF-8 text? `prepare` and `tokenizer train` read files as UTF-8, where a byte
// that is not valid UTF-8 becomes U+FFFD: a Latin-1 file would lose its accented letters silently
// and a binary file would become noise. This checker sees the raw bytes as they are read: a file
// with NUL bytes, or mostly invalid UTF-8, is binary (refused); a file with some invalid bytes
// (Latin-1, Windows-1252) is read with a warning naming the first offending offset and the fix.
import { isUtf8 } from 'node:buffer';
import { DataError } from './errors.js';
import { utf8SeqLen } from './pretokenize.js';

/** Of the first bytes, more than this fraction invalid means binary. */
const BINARY_INVALID_FRACTION = 0.3;

export class Utf8Check {
  private carry = new Uint8Array(0);
  private bytes = 0;
  invalid = 0;
  firstInvalid = -1;

  constructor(readonly file: string) {}

  /** Checks the next bytes of the file (any chunking); throws DataError when the file is binary. */
  push(chunk: Uint8Array): void {
    const buf = this.carry.length ? concat(this.carry, chunk) : chunk;
    const base = this.bytes - this.carry.length;
    // hold back a possibly incomplete sequence at the end for the next chunk
    let end = buf.length;
    for (let back = 1; back <= 3 && back <= buf.length; back++) {
      const b = buf[buf.length - back]!;
      if ((b & 0xc0) === 0xc0) {
        end = buf.length - back;
        break;
      }
      if ((b & 0xc0) !== 0x80) break;
    }
    const body = buf.subarray(0, end);
    if (body.includes(0)) throw new DataError(`input '${this.file}' is binary (a NUL byte at offset ${base + body.indexOf(0)}), not text; name text files only (UTF-8 *.txt, *.md, *.jsonl)`);
    if (!isUtf8(body)) this.countInvalid(body, base);
    this.carry = buf.slice(end);
    this.bytes += chunk.length;
    const seen = this.bytes - this.carry.length;
    if (seen >= 4096 && this.invalid > BINARY_INVALID_FRACTION * seen)
      throw new DataError(
        `input '${this.file}' is not text: ${this.invalid} of its first ${seen} bytes are not valid UTF-8; name text files only, or convert it (e.g. iconv -f latin1 -t utf-8)`,
      );
  }

  /** Call at the end of the file; returns a warning line when some bytes were not valid UTF-8, else null. */
  end(): string | null {
    if (this.carry.length) this.countInvalid(this.carry, this.bytes - this.carry.length);
    this.carry = new Uint8Array(0);
    if (this.invalid === 0) return null;
    return (
      `warning: '${this.file}' is not valid UTF-8 (${this.invalid} byte(s), the first at offset ${this.firstInvalid}; Latin-1 or Windows-1252 text?); ` +
      `those bytes were read as U+FFFD. Convert it first, e.g. iconv -f latin1 -t utf-8 '${this.file}' > converted.txt`
    );
  }

  private countInvalid(body: Uint8Array, base: number): void {
    for (let i = 0; i < body.length; ) {
      const n = utf8SeqLen(body, i);
      if (n > 0) {
        i += n;
        continue;
      }
      if (this.firstInvalid < 0) this.firstInvalid = base + i;
      this.invalid++;
      i++;
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
