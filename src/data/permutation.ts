// A seeded pseudo-random permutation of [0, n) computed one index at a time (a Feistel network
// with cycle walking), so shuffling an epoch of any size needs no memory and any position of the
// shuffled order can be found directly, which makes resuming exact and free.

/** 32-bit mix of two integers (murmur3-style finaliser). */
export function mix32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const ROUNDS = 6;

export class Permutation {
  private readonly halfBits: number;
  private readonly mask: number;
  private readonly keys: number[];

  constructor(
    readonly n: number,
    seed: number,
  ) {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`permutation size must be a positive integer, got ${n}`);
    let bits = 1;
    while (2 ** bits < n) bits++;
    this.halfBits = Math.ceil(bits / 2);
    if (this.halfBits > 26) throw new RangeError(`permutation size ${n} is too large`);
    this.mask = 2 ** this.halfBits - 1;
    this.keys = [];
    let k = mix32(seed >>> 0, Math.floor(seed / 2 ** 32));
    for (let r = 0; r < ROUNDS; r++) this.keys.push((k = mix32(k, r + 1)));
  }

  private encrypt(x: number): number {
    const size = 2 ** this.halfBits;
    let left = Math.floor(x / size);
    let right = x % size;
    for (let r = 0; r < ROUNDS; r++) {
      const f = (mix32(right, this.keys[r]!) & this.mask) >>> 0;
      const next = (left ^ f) >>> 0;
      left = right;
      right = next;
    }
    return left * size + right;
  }

  /** The i-th element of the permuted order. */
  at(i: number): number {
    if (i < 0 || i >= this.n) throw new RangeError(`index ${i} outside [0, ${this.n})`);
    let x = this.encrypt(i);
    while (x >= this.n) x = this.encrypt(x); // cycle walking stays inside [0, n)
    return x;
  }
}
