// The sharded (distributed) layout of a checkpoint step folder: each data-parallel rank writes its
// own `rank-NNNNN.safetensors` holding its piece of every tensor (flattened, elements
// [start, start + numel)), and the manifest's `shards` index records every tensor's global shape and
// where each piece lives. Any layout can read it back whole (assembleShards), so a run saved under
// one layout resumes under another, and `zili checkpoint consolidate` rewrites it as one file.
import * as path from 'node:path';
import { type NamedTensors, readSafetensors } from './safetensors.js';

/**
 * A tensor's piece in one rank file: flattened elements [start, start + numel) under `key`; or, with
 * `box`, the block of the global tensor at `box.offset` of shape `box.shape` (row-major under `key`;
 * start is the block's first element): a tensor-parallel shard that is not one flat range.
 */
export interface ShardPiece {
  file: string;
  key: string;
  start: number;
  numel: number;
  box?: { offset: number[]; shape: number[] };
}

/** The piece of the block at `offset` of shape `block` in a tensor of `shape` (a flat range when the block is one). */
export function boxPiece(file: string, key: string, shape: readonly number[], block: readonly number[], offset: readonly number[]): ShardPiece {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const start = offset.reduce((a, o, i) => a + o * strides[i]!, 0);
  const numel = block.reduce((a, b) => a * b, 1);
  // one flat range: dimensions before some k have extent 1 and those after it are whole
  const flat = block.some((_, k) => block.every((n, i) => (i < k ? n === 1 : i > k ? n === shape[i] : true)));
  return flat ? { file, key, start, numel } : { file, key, start, numel, box: { offset: [...offset], shape: [...block] } };
}

/** Copies a row-major block `src` of shape `block` into `dst` (a tensor of `shape`) at `offset`. */
function placeBox(dst: Float32Array | Float64Array, shape: readonly number[], src: Float32Array | Float64Array, block: readonly number[], offset: readonly number[]): void {
  const last = block.length - 1, run = block[last]!;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const outer = block.slice(0, last).reduce((a, b) => a * b, 1);
  for (let j = 0; j < outer; j++) {
    let rem = j, at = offset[last]!;
    for (let i = last - 1; i >= 0; i--) {
      at += (offset[i]! + (rem % block[i]!)) * strides[i]!;
      rem = Math.floor(rem / block[i]!);
    }
    dst.set(src.subarray(j * run, (j + 1) * run) as Float32Array & Float64Array, at);
  }
}

export interface ShardedTensor {
  shape: number[];
  dtype: 'f32' | 'f64';
  pieces: ShardPiece[];
}

/** The manifest's `shards` field. */
export interface ShardIndex {
  /** ranks that wrote the checkpoint and the ZeRO stage they ran */
  world: number;
  zero: number;
  /** by checkpoint tensor name: weights under the parameter name, moments as `<param>.m` / `<param>.v`, extras (routing biases) under their own */
  tensors: Record<string, ShardedTensor>;
}

export function rankFileName(rank: number): string {
  return `rank-${String(rank).padStart(5, '0')}.safetensors`;
}

export class ShardFormatError extends Error {}

/** Reads every rank file of a sharded step folder and assembles each tensor whole. */
export function assembleShards(dir: string, index: ShardIndex): NamedTensors {
  const files = new Map<string, NamedTensors>();
  const file = (name: string) => {
    if (name.includes('/') || name.includes('\\') || name.startsWith('.')) throw new ShardFormatError(`bad shard file name '${name}'`);
    let t = files.get(name);
    if (!t) files.set(name, (t = readSafetensors(path.join(dir, name)).tensors));
    return t;
  };
  const out: NamedTensors = {};
  for (const [name, st] of Object.entries(index.tensors)) {
    const numel = st.shape.reduce((a, b) => a * b, 1);
    const data = st.dtype === 'f64' ? new Float64Array(numel) : new Float32Array(numel);
    let covered = 0;
    for (const p of st.pieces) {
      const src = file(p.file)[p.key];
      if (!src || src.dtype !== st.dtype || src.data.length !== p.numel) throw new ShardFormatError(`${p.file} lacks ${st.dtype} piece '${p.key}' of ${p.numel} elements`);
      if (p.box) {
        const { offset, shape } = p.box;
        if (shape.length !== st.shape.length || shape.some((n, i) => offset[i]! < 0 || offset[i]! + n > st.shape[i]!) || shape.reduce((a, b) => a * b, 1) !== p.numel)
          throw new ShardFormatError(`piece '${p.key}' of ${p.file} (block [${shape.join(', ')}] at [${offset.join(', ')}]) lies outside '${name}' [${st.shape.join(', ')}]`);
        placeBox(data, st.shape, src.data as Float32Array | Float64Array, shape, offset);
        covered += p.numel;
        continue;
      }
      if (p.start < 0 || p.start + p.numel > numel) throw new ShardFormatError(`piece '${p.key}' of ${p.file} ([${p.start}, ${p.start + p.numel})) lies outside '${name}' (${numel} elements)`);
      data.set(src.data as Float32Array & Float64Array, p.start);
      covered += p.numel;
    }
    if (covered !== numel) throw new ShardFormatError(`the pieces of '${name}' cover ${covered} of its ${numel} elements`);
    out[name] = { dtype: st.dtype, shape: [...st.shape], data };
  }
  return out;
}
