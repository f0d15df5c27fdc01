// GPT-2's reversible byte <-> unicode-character mapping: every byte becomes one printable character
// so byte-level BPE tokens can be stored as JSON strings (the Hugging Face ByteLevel convention).

function buildTables(): { byteToChar: string[]; charToByte: Map<string, number> } {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b); // '!'..'~'
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b); // '¡'..'¬'
  for (let b = 0xae; b <= 0xff; b++) printable.push(b); // '®'..'ÿ'
  const isPrintable = new Set(printable);
  const byteToChar: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    // printable bytes map to themselves; the rest to U+0100, U+0101, ... in byte order
    byteToChar[b] = String.fromCodePoint(isPrintable.has(b) ? b : 256 + shifted++);
  }
  const charToByte = new Map<string, number>();
  byteToChar.forEach((c, b) => charToByte.set(c, b));
  return { byteToChar, charToByte };
}

const { byteToChar, charToByte } = buildTables();

/** Bytes -> their byte-level unicode string (e.g. " the" -> "Ġthe"). */
export function bytesToUnicode(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += byteToChar[bytes[i]!];
  return s;
}

/** Byte-level unicode string -> bytes, or null if a character is not in the mapping. */
export function unicodeToBytes(text: string): Uint8Array | null {
  const out: number[] = [];
  for (const ch of text) {
    const b = charToByte.get(ch);
    if (b === undefined) return null;
    out.push(b);
  }
  return Uint8Array.from(out);
}
