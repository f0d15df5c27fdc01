// A GGUF (version 3) file writer: header, typed metadata key/values, tensor descriptors, then the
// tensor data, each aligned to `general.alignment` (32) bytes. Dimensions are written innermost
// first (GGML's ne[] order), so a row-major [rows, cols] tensor is ne = [cols, rows].
import * as fs from 'node:fs';

export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64' | 'bool'; value: number | boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]'; value: readonly number[] };

export type GgufTensorType = 'f32' | 'f16' | 'bf16';

export interface GgufTensor {
  name: string;
  /** row-major shape, outermost first */
  shape: number[];
  type: GgufTensorType;
  /** the element bytes: Float32Array for f32, Uint16Array (raw bits) for f16 and bf16 */
  data: Float32Array | Uint16Array;
}

export const GGUF_ALIGNMENT = 32;
const VALUE_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;
const TENSOR_TYPE: Record<GgufTensorType, number> = { f32: 0, f16: 1, bf16: 30 };

class ByteSink {
  private readonly chunks: Uint8Array[] = [];
  length = 0;
  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.push(b);
  }
  i32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    this.push(b);
  }
  f32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
  }
  u64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.push(b);
  }
  u8(v: number): void {
    this.push(Uint8Array.of(v));
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.push(b);
  }
  pad(align: number): void {
    const n = (align - (this.length % align)) % align;
    if (n) this.push(new Uint8Array(n));
  }
  bytes(): Uint8Array[] {
    return this.chunks;
  }
}

function writeValue(s: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case 'u32': s.u32(VALUE_TYPE.u32); return s.u32(v.value as number);
    case 'i32': s.u32(VALUE_TYPE.i32); return s.i32(v.value as number);
    case 'f32': s.u32(VALUE_TYPE.f32); return s.f32(v.value as number);
    case 'u64': s.u32(VALUE_TYPE.u64); return s.u64(v.value as number);
    case 'bool': s.u32(VALUE_TYPE.bool); return s.u8(v.value ? 1 : 0);
    case 'string': s.u32(VALUE_TYPE.string); return s.str(v.value);
    case 'string[]':
      s.u32(VALUE_TYPE.array); s.u32(VALUE_TYPE.string); s.u64(v.value.length);
      for (const x of v.value) s.str(x);
      return;
    case 'i32[]':
      s.u32(VALUE_TYPE.array); s.u32(VALUE_TYPE.i32); s.u64(v.value.length);
      for (const x of v.value) s.i32(x);
      return;
  }
}

/** Writes a GGUF file; returns its size in bytes. */
export function writeGguf(file: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensor[]): number {
  const head = new ByteSink();
  head.u32(0x46554747); // "GGUF"
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.size);
  for (const [k, v] of metadata) {
    head.str(k);
    writeValue(head, v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`gguf: tensor ${t.name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    head.str(t.name);
    head.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(TENSOR_TYPE[t.type]);
    offset += (GGUF_ALIGNMENT - (offset % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
    offsets.push(offset);
    head.u64(offset);
    offset += t.data.byteLength;
  }
  head.pad(GGUF_ALIGNMENT);
  const fd = fs.openSync(file, 'w');
  let at = 0;
  const put = (b: Uint8Array) => {
    for (let i = 0; i < b.length; ) i += fs.writeSync(fd, b, i, b.length - i);
    at += b.length;
  };
  try {
    for (const b of head.bytes()) put(b);
    const dataStart = at;
    tensors.forEach((t, i) => {
      const gap = dataStart + offsets[i]! - at;
      if (gap > 0) put(new Uint8Array(gap));
      put(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    });
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return at;
}
