// The sharded (distributed) layout of a checkpoint step folder: each data-parallel rank writes its
// own `rank-NNNNN.safetensors` holding its piece of every tensor (flattened, elements
// [start, start + numel)), and the manifest's `shards` index records every tensor's global shape and
// where each piece lives. Any layout can read it back whole (assembleShards), so a run saved under
// one layout resumes under another, and `zili checkpoint consolidate` rewrites it as one file.
import * as path from 'node:path';
import { type NamedTensors, readSafetensors } from './safetensors.js';

/** A tensor's piece in one rank file: flattened elements [start, start + numel) under `key`. */
export interface ShardPiece {
  file: string;
  key: string;
  start: number;
  numel: number;
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
      if (p.start < 0 || p.start + p.numel > numel) throw new ShardFormatError(`piece '${p.key}' of ${p.file} ([${p.start}, ${p.start + p.numel})) lies outside '${name}' (${numel} elements)`);
      data.set(src.data as Float32Array & Float64Array, p.start);
      covered += p.numel;
    }
    if (covered !== numel) throw new ShardFormatError(`the pieces of '${name}' cover ${covered} of its ${numel} elements`);
    out[name] = { dtype: st.dtype, shape: [...st.shape], data };
  }
  return out;
}
