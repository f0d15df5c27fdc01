// Seeded random fills shared by the host backends: Philox4x32-10 (src/train/rng-state.ts), so the
// same (seed, offset) gives the same numbers on every backend, rank and run.
import { philoxNormal, philoxUniform } from '../train/rng-state.js';

export function randomHost(dist: 'uniform' | 'normal', seed: number, offset: number, n: number): Float32Array {
  return dist === 'uniform' ? philoxUniform(seed, offset, n) : philoxNormal(seed, offset, n);
}
