// Binary token shards: a 64-byte header (magic, version, bytes per token, token count, vocabulary
// size, block size, tokenizer hash, header CRC), a table of CRC-32s, one per block of tokens, then
// the tokens (little-endian uint16 or uint32). Readers fetch any token range with positioned reads
// and verify only the blocks they touch, so a shard is never read whole.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-fs.js';
import { crc32 } from './crc32.js';
import { DataError } from './errors.js';

export const SHARD_MAGIC = 'ZILITOK\0';
export const SHARD_VERSION = 1;
export const HEADER_BYTES = 64;
/** tokens per checksummed block */
export const DEFAULT_BLOCK_TOKENS = 4096;

export type TokenDtype = 'uint16' | 'uint32';

export function dtypeForVocab(vocab: number): TokenDtype {
  return vocab <= 65536 ? 'uint16' : 'uint32';
}

export function bytesPerToken(dtype: TokenDtype): 2 | 4 {
  return dtype === 'uint16' ? 2 : 4;
}

export interface ShardHeader {
  version: number;
  dtype: TokenDtype;
  tokens: number;
  vocabSize: number;
  blockTokens: number;
  /** first 16 bytes of the tokenizer's sha256, hex */
  tokenizerHash: string;
  /** byte offset of the first token */
  dataOffset: number;
  blocks: number;
}

function layout(tokens: number, blockTokens: number): { blocks: number; dataOffset: number } {
  const blocks = Math.ceil(tokens / blockTokens);
  const dataOffset = HEADER_BYTES + 4 * blocks;
  return { blocks, dataOffset: Math.ceil(dataOffset / 8) * 8 };
}

/** Encodes a shard in memory: header, block checksums and token data, as byte chunks. */
export function encodeShard(
  tokens: Uint32Array | Uint16Array | number[],
  opts: { vocabSize: number; tokenizerHash: string; blockTokens?: number },
): Uint8Array[] {
  const blockTokens = opts.blockTokens ?? DEFAULT_BLOCK_TOKENS;
  const dtype = dtypeForVocab(opts.vocabSize);
  const bpt = bytesPerToken(dtype);
  const n = tokens.length;
  const data = new Uint8Array(n * bpt);
  const dv = new DataView(data.buffer);
  for (let i = 0; i < n; i++) {
    const t = tokens[i]!;
    if (t < 0 || t >= opts.vocabSize || !Number.isInteger(t)) throw new Error(`token ${t} at ${i} is outside the vocabulary of ${opts.vocabSize}`);
    if (bpt === 2) dv.setUint16(i * 2, t, true);
    else dv.setUint32(i * 4, t, true);
  }
  const { blocks, dataOffset } = layout(n, blockTokens);
  const head = new Uint8Array(dataOffset);
  const hv = new DataView(head.buffer);
  for (let i = 0; i < 8; i++) head[i] = SHARD_MAGIC.charCodeAt(i);
  hv.setUint32(8, SHARD_VERSION, true);
  hv.setUint32(12, bpt, true);
  hv.setBigUint64(16, BigInt(n), true);
  hv.setUint32(24, opts.vocabSize, true);
  hv.setUint32(28, blockTokens, true);
  const hash = opts.tokenizerHash.slice(0, 32).padEnd(32, '0');
  for (let i = 0; i < 16; i++) head[32 + i] = parseInt(hash.slice(2 * i, 2 * i + 2), 16);
  for (let b = 0; b < blocks; b++) {
    const start = b * blockTokens * bpt;
    const end = Math.min(n, (b + 1) * blockTokens) * bpt;
    hv.setUint32(HEADER_BYTES + 4 * b, crc32(data.subarray(start, end)), true);
  }
  hv.setUint32(60, crc32(head.subarray(0, 60)), true);
  return [head, data];
}

/** Writes a shard file atomically (temporary file, then rename). */
export function writeShard(
  path: string,
  tokens: Uint32Array | Uint16Array | number[],
  opts: { vocabSize: number; tokenizerHash: string; blockTokens?: number },
): void {
  writeFileAtomic(path, encodeShard(tokens, opts));
}

/** Positioned reads of a file; tests inject their own to count bytes read. */
export interface ByteSource {
  readonly size: number;
  /** fills buf from byte position; returns bytes read */
  readAt(buf: Uint8Array, position: number): number;
  close(): void;
}

export type ByteSourceOpener = (path: string) => ByteSource;

export const openFileSource: ByteSourceOpener = (path) => {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DataError(`shard '${path}' cannot be opened (${code ?? e}); re-run \`zili prepare\` to write it again.`);
  }
  const size = fstatSync(fd).size;
  return {
    size,
    readAt: (buf, position) => {
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, position + got);
        if (n === 0) break;
        got += n;
      }
      return got;
    },
    close: () => closeSync(fd),
  };
};

/** Reads token ranges of one shard, verifying the checksum of every block it reads. */
export class ShardReader {
  readonly header: ShardHeader;
  private readonly blockCrcs: Uint32Array;
  private readonly verified: Uint8Array;

  private constructor(
    readonly path: string,
    private readonly src: ByteSource,
    header: ShardHeader,
    crcs: Uint32Array,
  ) {
    this.header = header;
    this.blockCrcs = crcs;
    this.verified = new Uint8Array(header.blocks);
  }

  static open(path: string, opener: ByteSourceOpener = openFileSource): ShardReader {
    const src = opener(path);
    try {
      const fix = 're-run `zili prepare` to write it again';
      if (src.size < HEADER_BYTES) throw new DataError(`shard '${path}' is truncated (${src.size} bytes, shorter than its 64-byte header); ${fix}.`);
      const head = new Uint8Array(HEADER_BYTES);
      src.readAt(head, 0);
      const magic = String.fromCharCode(...head.subarray(0, 8));
      if (magic !== SHARD_MAGIC) throw new DataError(`shard '${path}' is not a zili token shard (bad magic ${JSON.stringify(magic)}); ${fix}.`);
      const hv = new DataView(head.buffer);
      if (hv.getUint32(60, true) !== crc32(head.subarray(0, 60))) throw new DataError(`shard '${path}' has a corrupt header (checksum mismatch); ${fix}.`);
      const version = hv.getUint32(8, true);
      if (version !== SHARD_VERSION) throw new DataError(`shard '${path}' has format version ${version}; this zili reads version ${SHARD_VERSION}. ${fix}.`);
      const bpt = hv.getUint32(12, true);
      if (bpt !== 2 && bpt !== 4) throw new DataError(`shard '${path}' has ${bpt} bytes per token (expected 2 or 4); ${fix}.`);
      const tokens = Number(hv.getBigUint64(16, true));
      const vocabSize = hv.getUint32(24, true);
      const blockTokens = hv.getUint32(28, true);
      let tokenizerHash = '';
      for (let i = 0; i < 16; i++) tokenizerHash += head[32 + i]!.toString(16).padStart(2, '0');
      const { blocks, dataOffset } = layout(tokens, blockTokens);
      const expected = dataOffset + tokens * bpt;
      if (src.size < expected) throw new DataError(`shard '${path}' is truncated: ${src.size} bytes, its header promises ${expected} (${tokens} tokens); ${fix}.`);
      if (src.size > expected) throw new DataError(`shard '${path}' has ${src.size - expected} unexpected bytes after its ${tokens} tokens; ${fix}.`);
      const table = new Uint8Array(4 * blocks);
      src.readAt(table, HEADER_BYTES);
      const crcs = new Uint32Array(blocks);
      const tv = new DataView(table.buffer);
      for (let b = 0; b < blocks; b++) crcs[b] = tv.getUint32(4 * b, true);
      const header: ShardHeader = { version, dtype: bpt === 2 ? 'uint16' : 'uint32', tokens, vocabSize, blockTokens, tokenizerHash, dataOffset, blocks };
      return new ShardReader(path, src, header, crcs);
    } catch (e) {
      src.close();
      throw e;
    }
  }

  /** Copies tokens [start, start + count) into out at outOffset. */
  read(start: number, count: number, out: Int32Array, outOffset = 0): void {
    const h = this.header;
    if (start < 0 || count < 0 || start + count > h.tokens) throw new RangeError(`shard '${this.path}': tokens [${start}, ${start + count}) outside [0, ${h.tokens})`);
    if (count === 0) return;
    const bpt = h.dtype === 'uint16' ? 2 : 4;
    const b0 = Math.floor(start / h.blockTokens);
    const b1 = Math.floor((start + count - 1) / h.blockTokens);
    let allVerified = true;
    for (let b = b0; b <= b1; b++) if (!this.verified[b]) allVerified = false;
    // unverified blocks are read whole so their checksum can be checked; verified ones need only the range
    const t0 = allVerified ? start : b0 * h.blockTokens;
    const t1 = allVerified ? start + count : Math.min(h.tokens, (b1 + 1) * h.blockTokens);
    const buf = new Uint8Array((t1 - t0) * bpt);
    const got = this.src.readAt(buf, h.dataOffset + t0 * bpt);
    if (got !== buf.length) throw new DataError(`shard '${this.path}' is truncated (short read at token ${t0}); re-run \`zili prepare\` to write it again.`);
    if (!allVerified) {
      for (let b = b0; b <= b1; b++) {
        const s = (b * h.blockTokens - t0) * bpt;
        const e = (Math.min(h.tokens, (b + 1) * h.blockTokens) - t0) * bpt;
        if (crc32(buf.subarray(s, e)) !== this.blockCrcs[b]) {
          throw new DataError(`shard '${this.path}' is corrupt: checksum mismatch in tokens ${b * h.blockTokens}..${Math.min(h.tokens, (b + 1) * h.blockTokens) - 1}; re-run \`zili prepare\` to write it again.`);
        }
        this.verified[b] = 1;
      }
    }
    const dv = new DataView(buf.buffer);
    const skip = (start - t0) * bpt;
    if (bpt === 2) for (let i = 0; i < count; i++) out[outOffset + i] = dv.getUint16(skip + 2 * i, true);
    else for (let i = 0; i < count; i++) out[outOffset + i] = dv.getUint32(skip + 4 * i, true);
  }

  /** Verifies every block (streams the shard in block-sized reads). */
  verifyAll(): void {
    const h = this.header;
    const tmp = new Int32Array(h.blockTokens);
    for (let b = 0; b < h.blocks; b++) {
      if (this.verified[b]) continue;
      const s = b * h.blockTokens;
      this.read(s, Math.min(h.blockTokens, h.tokens - s), tmp);
    }
  }

  close(): void {
    this.src.close();
  }
}
