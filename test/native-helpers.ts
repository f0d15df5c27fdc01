// Shared helpers for the native addon tests: a seeded RNG, random arrays and tolerance checks.
import assert from 'node:assert/strict';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randArray(n: number, r: () => number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** Asserts |got - want| <= atol + rtol*|want| elementwise, naming the first bad index. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what = ''): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (g === w) continue;
    const err = Math.abs(g - w);
    if (!(err <= atol + rtol * Math.abs(w))) assert.fail(`${what}: index ${i}: got ${g}, want ${w} (err ${err})`);
  }
}

/** Asserts max |got - want| <= tol * max(1, max |want|): tolerance scaled to the output's magnitude. */
export function assertCloseScaled(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what = ''): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let mag = 1;
  for (let i = 0; i < want.length; i++) mag = Math.max(mag, Math.abs(want[i]!));
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= tol * mag)) assert.fail(`${what}: index ${i}: got ${got[i]}, want ${want[i]} (err ${err}, allowed ${tol * mag})`);
  }
}
