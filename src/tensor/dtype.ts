// Element types: f32, bf16 (stored as uint16 bit patterns), i32, and f64 (reference backend and
// gradcheck only); host array types and exact float <-> bf16 conversion.

export type DType = 'f32' | 'bf16' | 'i32' | 'f64';
export type HostArray = Float32Array | Uint16Array | Int32Array | Float64Array;

export const DTYPES: readonly DType[] = ['f32', 'bf16', 'i32', 'f64'];

export function bytesOf(dtype: DType): number {
  return dtype === 'bf16' ? 2 : dtype === 'f64' ? 8 : 4;
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'i32';
}

export function hostArray(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case 'f32': return new Float32Array(n);
    case 'bf16': return new Uint16Array(n);
    case 'i32': return new Int32Array(n);
    case 'f64': return new Float64Array(n);
  }
}

export function dtypeOfArray(a: HostArray): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Uint16Array) return 'bf16';
  if (a instanceof Int32Array) return 'i32';
  return 'f64';
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float -> bf16 bits, round to nearest even; NaN stays NaN (quiet). */
export function f32ToBf16(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff;
  const rounded = u + 0x7fff + ((u >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

export function bf16ToF32(bits: number): number {
  u32buf[0] = (bits & 0xffff) << 16;
  return f32buf[0]!;
}

/** Reads element i of a host array as a JS number (bf16 decoded). */
export function readElement(a: HostArray, i: number): number {
  return a instanceof Uint16Array ? bf16ToF32(a[i]!) : a[i]!;
}

/** Converts any host array into a fresh array of `dtype` (bf16 rounding is round-to-nearest-even). */
export function convertHost(src: HostArray, dtype: DType): HostArray {
  const out = hostArray(dtype, src.length);
  if (dtype === 'bf16') {
    for (let i = 0; i < src.length; i++) (out as Uint16Array)[i] = f32ToBf16(readElement(src, i));
  } else if (dtype === 'i32') {
    for (let i = 0; i < src.length; i++) out[i] = Math.trunc(readElement(src, i));
  } else {
    for (let i = 0; i < src.length; i++) out[i] = readElement(src, i);
  }
  return out;
}
