// The safetensors file format: 8-byte little-endian header length, a JSON header (dtype, shape, data_offsets, __metadata__) padded with spaces to 8 bytes, then raw little-endian tensor bytes.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { endianness } from 'node:os';

export type SafeDType = 'f64' | 'f32' | 'f16' | 'bf16' | 'i64' | 'i32' | 'i16' | 'i8' | 'u16' | 'u8' | 'bool';

export type TensorData = Float64Array | Float32Array | Uint16Array | Int16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

export interface NamedTensor {
  dtype: SafeDType;
  shape: number[];
  /** f32: Float32Array; bf16, f16, u16: Uint16Array (raw bits); i32: Int32Array; i64: BigInt64Array; u8, bool: Uint8Array ... */
  data: TensorData;
}

export type NamedTensors = Record<string, NamedTensor>;

interface DTypeInfo {
  file: string;
  bytes: number;
  make: (buf: ArrayBuffer, length: number) => TensorData;
  is: (d: TensorData) => boolean;
}

const DTYPES: Record<SafeDType, DTypeInfo> = {
  f64: { file: 'F64', bytes: 8, make: (b, n) => new Float64Array(b, 0, n), is: (d) => d instanceof Float64Array },
  f32: { file: 'F32', bytes: 4, make: (b, n) => new Float32Array(b, 0, n), is: (d) => d instanceof Float32Array },
  f16: { file: 'F16', bytes: 2, make: (b, n) => new Uint16Array(b, 0, n), is: (d) => d instanceof Uint16Array },
  bf16: { file: 'BF16', bytes: 2, make: (b, n) => new Uint16Array(b, 0, n), is: (d) => d instanceof Uint16Array },
  i64: { file: 'I64', bytes: 8, make: (b, n) => new BigInt64Array(b, 0, n), is: (d) => d instanceof BigInt64Array },
  i32: { file: 'I32', bytes: 4, make: (b, n) => new Int32Array(b, 0, n), is: (d) => d instanceof Int32Array },
  i16: { file: 'I16', bytes: 2, make: (b, n) => new Int16Array(b, 0, n), is: (d) => d instanceof Int16Array },
  i8: { file: 'I8', bytes: 1, make: (b, n) => new Int8Array(b, 0, n), is: (d) => d instanceof Int8Array },
  u16: { file: 'U16', bytes: 2, make: (b, n) => new Uint16Array(b, 0, n), is: (d) => d instanceof Uint16Array },
  u8: { file: 'U8', bytes: 1, make: (b, n) => new Uint8Array(b, 0, n), is: (d) => d instanceof Uint8Array },
  bool: { file: 'BOOL', bytes: 1, make: (b, n) => new Uint8Array(b, 0, n), is: (d) => d instanceof Uint8Array },
};

const FROM_FILE: Record<string, SafeDType> = Object.fromEntries(
  Object.entries(DTYPES).map(([k, v]) => [v.file, k as SafeDType]),
);

/** The same bound as the reference implementation: a header above 100 MB is treated as corrupt. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Chunk size for reads and writes (readSync/writeSync take at most 2 GiB - 1 at a time). */
const IO_CHUNK = 1 << 30;

export class SafetensorsError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

if (endianness() !== 'LE') throw new Error('zili safetensors: only little-endian hosts are supported');

function numel(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function bytesOf(d: TensorData): Uint8Array {
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** Checks one tensor before writing; throws SafetensorsError naming it. */
function checkTensor(name: string, t: NamedTensor): DTypeInfo {
  const info = DTYPES[t.dtype];
  if (!info) throw new SafetensorsError(`tensor '${name}': unknown dtype '${t.dtype}' (known: ${Object.keys(DTYPES).join(', ')})`);
  if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new SafetensorsError(`tensor '${name}': shape must be non-negative integers, got ${JSON.stringify(t.shape)}`);
  if (!info.is(t.data)) throw new SafetensorsError(`tensor '${name}': dtype ${t.dtype} needs a ${info.make(new ArrayBuffer(0), 0).constructor.name}, got ${t.data?.constructor?.name}`);
  if (t.data.length !== numel(t.shape))
    throw new SafetensorsError(`tensor '${name}': shape ${JSON.stringify(t.shape)} holds ${numel(t.shape)} elements but data has ${t.data.length}`);
  return info;
}

/**
 * The file's first bytes: the 8-byte length and the JSON header, padded with spaces so the data
 * starts at a multiple of 8. Tensors are laid out in name order (a canonical file for equal input).
 */
export function encodeHeader(tensors: NamedTensors, metadata?: Record<string, string>): { head: Uint8Array; order: string[]; dataBytes: number } {
  const order = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new SafetensorsError(`__metadata__ '${k}' must be a string, got ${typeof v}`);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of order) {
    if (name === '__metadata__') throw new SafetensorsError(`'__metadata__' is reserved and cannot name a tensor`);
    const t = tensors[name]!;
    const info = checkTensor(name, t);
    const end = offset + t.data.length * info.bytes;
    header[name] = { dtype: info.file, shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  const head = new Uint8Array(8 + json.length + pad);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length + pad), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length);
  return { head, order, dataBytes: offset };
}

/** The whole file in memory (for small tensors and tests). */
export function encodeSafetensors(tensors: NamedTensors, metadata?: Record<string, string>): Uint8Array {
  const { head, order, dataBytes } = encodeHeader(tensors, metadata);
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head, 0);
  let at = head.length;
  for (const name of order) {
    const b = bytesOf(tensors[name]!.data);
    out.set(b, at);
    at += b.length;
  }
  return out;
}

export interface WrittenFile {
  bytes: number;
  sha256: string;
}

/**
 * Writes a safetensors file, streaming each tensor's bytes (no whole-file copy), and returns its
 * size and sha256. With fsync (default true) the data is on disk when this returns.
 */
export function writeSafetensors(
  file: string,
  tensors: NamedTensors,
  opts: { metadata?: Record<string, string>; fsync?: boolean } = {},
): WrittenFile {
  const { head, order } = encodeHeader(tensors, opts.metadata);
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  let bytes = 0;
  const put = (b: Uint8Array) => {
    for (let at = 0; at < b.length; ) {
      const n = fs.writeSync(fd, b, at, Math.min(IO_CHUNK, b.length - at));
      at += n;
    }
    hash.update(b);
    bytes += b.length;
  };
  try {
    put(head);
    for (const name of order) put(bytesOf(tensors[name]!.data));
    if (opts.fsync !== false) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}

interface Entry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses and validates the JSON header against the data size; `source` names the file in errors. */
function parseHeader(json: Uint8Array, dataSize: number, source: string): { entries: Entry[]; metadata: Record<string, string> } {
  const bad = (why: string) => new SafetensorsError(`corrupt safetensors file ${source}: ${why}`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('__metadata__ is not an object of strings');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw bad(`__metadata__ '${k}' is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`tensor '${name}' has no description`);
    const dtype = typeof e.dtype === 'string' ? FROM_FILE[e.dtype] : undefined;
    if (!dtype) throw bad(`tensor '${name}' has unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(FROM_FILE).join(', ')})`);
    if (!Array.isArray(e.shape) || e.shape.some((d) => !Number.isSafeInteger(d) || d < 0))
      throw bad(`tensor '${name}' has a bad shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || off.some((x) => !Number.isSafeInteger(x) || x < 0) || off[0] > off[1])
      throw bad(`tensor '${name}' has bad data_offsets ${JSON.stringify(off)}`);
    const shape = e.shape as number[];
    const [begin, end] = off as [number, number];
    const want = numel(shape) * DTYPES[dtype].bytes;
    if (end - begin !== want)
      throw bad(`tensor '${name}' (${dtype} ${JSON.stringify(shape)}) needs ${want} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    if (end > dataSize) throw bad(`tensor '${name}' data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes; truncated file?)`);
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin !== at) throw bad(`tensor '${e.name}' starts at byte ${e.begin} but the previous tensor ends at ${at} (offsets must be contiguous, without overlap or gaps)`);
    at = e.end;
  }
  if (at !== dataSize) throw bad(`tensors cover ${at} bytes but the file holds ${dataSize} bytes of data`);
  return { entries, metadata };
}

function headerLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) throw new SafetensorsError(`corrupt safetensors file ${source}: ${fileSize} bytes is too short for the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsError(`corrupt safetensors file ${source}: header length ${n} is above the ${MAX_HEADER_BYTES}-byte limit`);
  const len = Number(n);
  if (len < 2) throw new SafetensorsError(`corrupt safetensors file ${source}: header length ${len} is too small`);
  if (8 + len > fileSize) throw new SafetensorsError(`corrupt safetensors file ${source}: header length ${len} runs past the end of the ${fileSize}-byte file (truncated?)`);
  return len;
}

export interface SafetensorsContent {
  tensors: NamedTensors;
  metadata: Record<string, string>;
}

/** Decodes a whole file held in memory; `source` names it in errors. Tensor data are fresh copies. */
export function decodeSafetensors(buf: Uint8Array, source = '<buffer>'): SafetensorsContent {
  const b = buf;
  const len = headerLength(b, b.length, source);
  const { entries, metadata } = parseHeader(b.subarray(8, 8 + len), b.length - 8 - len, source);
  const tensors: NamedTensors = {};
  const base = 8 + len;
  for (const e of entries) {
    const ab = new ArrayBuffer(e.end - e.begin);
    new Uint8Array(ab).set(b.subarray(base + e.begin, base + e.end));
    tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: DTYPES[e.dtype].make(ab, (e.end - e.begin) / DTYPES[e.dtype].bytes) };
  }
  return { tensors, metadata };
}

function readExactly(fd: number, into: Uint8Array, position: number, source: string): void {
  for (let at = 0; at < into.length; ) {
    const n = fs.readSync(fd, into, at, Math.min(IO_CHUNK, into.length - at), position + at);
    if (n === 0) throw new SafetensorsError(`corrupt safetensors file ${source}: unexpected end of file`);
    at += n;
  }
}

/** Reads and validates a safetensors file, each tensor straight into its own typed array. */
export function readSafetensors(file: string): SafetensorsContent {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new SafetensorsError(`cannot open safetensors file ${file}: ${(e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const prefix = new Uint8Array(8);
    if (size >= 8) readExactly(fd, prefix, 0, file);
    const len = headerLength(prefix, size, file);
    const json = new Uint8Array(len);
    readExactly(fd, json, 8, file);
    const { entries, metadata } = parseHeader(json, size - 8 - len, file);
    const tensors: NamedTensors = {};
    for (const e of entries) {
      const info = DTYPES[e.dtype];
      const ab = new ArrayBuffer(e.end - e.begin);
      readExactly(fd, new Uint8Array(ab), 8 + len + e.begin, file);
      tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: info.make(ab, (e.end - e.begin) / info.bytes) };
    }
    return { tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}
