// Counter-based Philox4x32-10 RNG: every number is a pure function of (seed, stream, index), so any backend or rank can regenerate it and its state is two integers.

/** Philox4x32 round multipliers and Weyl key increments (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11). */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

const TWO32 = 4294967296;

/** High 32 bits of the 64-bit product of two uint32 values (exact: partial products stay below 2^53). */
function mulhi(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = ((al * bl) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (ah * bh + Math.floor(lh / 65536) + Math.floor(hl / 65536) + Math.floor(mid / 65536)) >>> 0;
}

/**
 * One Philox4x32-10 block: 4 uint32 counter words and 2 uint32 key words in, 4 uint32 words out
 * (written to `out` at `at`). Bit-exact with Random123's philox4x32_R(10, ...).
 */
export function philox4x32(
  c0: number, c1: number, c2: number, c3: number, k0: number, k1: number,
  out: Uint32Array = new Uint32Array(4), at = 0,
): Uint32Array {
  c0 >>>= 0; c1 >>>= 0; c2 >>>= 0; c3 >>>= 0; k0 >>>= 0; k1 >>>= 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[at] = c0; out[at + 1] = c1; out[at + 2] = c2; out[at + 3] = c3;
  return out;
}

function checkIndex(what: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`philox: ${what} must be a non-negative safe integer, got ${v}`);
}

/**
 * Raw uint32 words `offset .. offset+n-1` of the stream (seed, stream). Word j is lane j%4 of the
 * Philox block with counter (lo32(j/4), hi32(j/4), stream, 0) and key (lo32(seed), hi32(seed)).
 */
export function philoxWords(seed: number, offset: number, n: number, stream = 0): Uint32Array {
  checkIndex('seed', seed);
  checkIndex('offset', offset);
  checkIndex('n', n);
  checkIndex('stream', stream);
  const k0 = seed >>> 0;
  const k1 = Math.floor(seed / TWO32) >>> 0;
  const out = new Uint32Array(n);
  const block = new Uint32Array(4);
  let i = 0;
  while (i < n) {
    const j = offset + i;
    const b = Math.floor(j / 4);
    philox4x32(b >>> 0, Math.floor(b / TWO32) >>> 0, stream, 0, k0, k1, block);
    for (let lane = j % 4; lane < 4 && i < n; lane++, i++) out[i] = block[lane]!;
  }
  return out;
}

/** Uniform floats in [0, 1) with 24 random bits each (exact in float32): element i uses word offset+i. */
export function philoxUniform(seed: number, offset: number, n: number, stream = 0): Float32Array {
  const w = philoxWords(seed, offset, n, stream);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (w[i]! >>> 8) * 2 ** -24;
  return out;
}

/**
 * Standard normal floats by Box-Muller. Normal index j (= offset + i) comes from pair p = floor(j/2),
 * which uses words 2p and 2p+1 (so normal index j lives at about word j, like philoxUniform): r = sqrt(-2 ln u1), u1 in (0, 1]; j even takes r*cos(2 pi u2), odd r*sin.
 */
export function philoxNormal(seed: number, offset: number, n: number, stream = 0): Float32Array {
  checkIndex('offset', offset);
  checkIndex('n', n);
  const first = Math.floor(offset / 2);
  const pairs = n === 0 ? 0 : Math.floor((offset + n - 1) / 2) - first + 1;
  const w = philoxWords(seed, 2 * first, 2 * pairs, stream);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const j = offset + i;
    const p = Math.floor(j / 2) - first;
    const u1 = ((w[2 * p]! >>> 8) + 1) * 2 ** -24;
    const u2 = (w[2 * p + 1]! >>> 8) * 2 ** -24;
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    out[i] = j % 2 === 0 ? r * Math.cos(theta) : r * Math.sin(theta);
  }
  return out;
}

/** The JSON state of an Rng, stored in checkpoints. `offset` counts uint32 words consumed. */
export interface RngState {
  algorithm: 'philox4x32-10';
  seed: number;
  stream: number;
  offset: number;
}

/** A sequential view of one Philox stream: draws advance `offset`; the state is plain JSON. */
export class Rng {
  readonly seed: number;
  readonly stream: number;
  private offset: number;

  constructor(seed: number, stream = 0, offset = 0) {
    checkIndex('seed', seed);
    checkIndex('stream', stream);
    checkIndex('offset', offset);
    this.seed = seed;
    this.stream = stream;
    this.offset = offset;
  }

  static fromState(s: RngState): Rng {
    if (!s || s.algorithm !== 'philox4x32-10') throw new Error(`unknown RNG state ${JSON.stringify(s)}: expected algorithm 'philox4x32-10'`);
    return new Rng(s.seed, s.stream, s.offset);
  }

  state(): RngState {
    return { algorithm: 'philox4x32-10', seed: this.seed, stream: this.stream, offset: this.offset };
  }

  /** n uniform floats in [0, 1). */
  uniform(n: number): Float32Array {
    const out = philoxUniform(this.seed, this.offset, n, this.stream);
    this.offset += n;
    return out;
  }

  /**
   * n standard normal floats. Normal index j uses words 2*floor(j/2) and 2*floor(j/2)+1, so the draw
   * starts at the next even word and the offset advances to an even word past it.
   */
  normal(n: number): Float32Array {
    const base = this.offset + (this.offset % 2);
    const out = philoxNormal(this.seed, base, n, this.stream);
    this.offset = base + n + (n % 2);
    return out;
  }

  /** n raw uint32 words. */
  words(n: number): Uint32Array {
    const out = philoxWords(this.seed, this.offset, n, this.stream);
    this.offset += n;
    return out;
  }

  /** A uniform integer in [0, bound) (bound <= 2^32), by rejection so it is unbiased. */
  int(bound: number): number {
    if (!Number.isInteger(bound) || bound <= 0 || bound > TWO32) throw new RangeError(`Rng.int: bound must be an integer in [1, 2^32], got ${bound}`);
    const limit = TWO32 - (TWO32 % bound);
    for (;;) {
      const w = this.words(1)[0]!;
      if (w < limit) return w % bound;
    }
  }
}
