// Where a context-parallel rank's tokens sit in the sequence (causal load balancing, as Megatron-Core
// and torchtitan do it): the sequence is cut into 2·cp equal chunks and rank i holds chunks i and
// 2·cp-1-i, so with causal attention every rank attends over the same number of (query, key) chunk
// pairs (2·cp+1). Pure arithmetic, no communication; shared by the data slicing, the RoPE positions
// and the ring attention's masks.
import { ConfigError } from '../nn/config.js';

/** The two global chunk indices rank `rank` of `cp` holds, in the order its tokens are laid out. */
export function loadBalancedChunks(cp: number, rank: number): [number, number] {
  return [rank, 2 * cp - 1 - rank];
}

/** Tokens per chunk; refuses a sequence that 2·cp does not divide. */
export function chunkLength(seqLen: number, cp: number): number {
  if (!Number.isInteger(cp) || cp < 1) throw new ConfigError(`--cp must be a positive integer, got ${cp}`);
  if (seqLen % (2 * cp) !== 0) {
    const unit = 2 * cp;
    throw new ConfigError(
      `--cp ${cp} cuts each sequence into 2 x ${cp} = ${unit} equal chunks (causal load balancing), which --seq ${seqLen} is not a multiple of; use --seq ${Math.max(unit, Math.floor(seqLen / unit) * unit)}`,
    );
  }
  return seqLen / (2 * cp);
}

/** Rank `rank`'s tokens of rows [batch, seqLen] (host, row-major): its two chunks of each row, in order. */
export function rankTokens(rows: Int32Array, batch: number, seqLen: number, cp: number, rank: number): Int32Array {
  const c = chunkLength(seqLen, cp);
  const out = new Int32Array(batch * 2 * c);
  const chunks = loadBalancedChunks(cp, rank);
  for (let b = 0; b < batch; b++)
    chunks.forEach((k, i) => out.set(rows.subarray(b * seqLen + k * c, b * seqLen + (k + 1) * c), (b * 2 + i) * c));
  return out;
}
