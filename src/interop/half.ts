// f32 <-> f16 bit conversions for export and import (IEEE binary16, round to nearest even,
// subnormals kept); bf16 uses src/tensor/dtype.ts.
import { bf16ToF32, f32ToBf16 } from '../tensor/dtype.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float -> f16 bits, round to nearest even; overflow becomes infinity, NaN stays NaN. */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1))) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Raw half bits (f16 or bf16) of f32 values. */
export function toHalf(src: Float32Array, kind: 'f16' | 'bf16'): Uint16Array {
  const out = new Uint16Array(src.length);
  const f = kind === 'f16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < src.length; i++) out[i] = f(src[i]!);
  return out;
}

/** f32 values of raw half bits. */
export function fromHalf(src: Uint16Array, kind: 'f16' | 'bf16'): Float32Array {
  const out = new Float32Array(src.length);
  const f = kind === 'f16' ? f16ToF32 : bf16ToF32;
  for (let i = 0; i < src.length; i++) out[i] = f(src[i]!);
  return out;
}
