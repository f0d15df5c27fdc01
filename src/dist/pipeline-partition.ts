// Which part of the model each pipeline chunk runs, by the planner's rule (src/plan/memory.ts
// stageLayers): pp·vpp chunks over L layers; when there are more chunks than layers, the first chunk
// holds only the embedding (one extra) and the last only the final norm, output layer and loss (two
// extra, as Llama 3 does); the remaining chunks take ceil(L / body) consecutive layers each.
export interface ChunkPart {
  /** runs the token embedding (chunk 0) */
  embedding: boolean;
  /** decoder layers [lo, hi) */
  lo: number;
  hi: number;
  /** runs the final norm, the output layer and the loss (the last chunk) */
  head: boolean;
}

export function partitionChunks(layers: number, chunks: number): ChunkPart[] {
  if (!Number.isInteger(chunks) || chunks < 1) throw new RangeError(`pipeline: pp·vpp = ${chunks} chunks must be a positive integer`);
  if (chunks > layers + 2)
    throw new RangeError(`pipeline: pp·vpp = ${chunks} chunks exceeds the model's ${layers} layers + 2 (an embedding-only and a loss-only chunk); use at most ${layers + 2}`);
  const extra = Math.max(0, Math.min(2, chunks - layers));
  const first = extra >= 1 ? 1 : 0;
  const body = chunks - extra;
  const size = Math.ceil(layers / body);
  const out: ChunkPart[] = [];
  for (let j = 0; j < chunks; j++) {
    const k = j - first;
    const lo = k < 0 ? 0 : Math.min(layers, k * size);
    const hi = k < 0 || k >= body ? lo : Math.min(layers, lo + size);
    out.push({ embedding: j === 0, lo: k >= body ? layers : lo, hi: k >= body ? layers : hi, head: j === chunks - 1 });
  }
  return out;
}
