// How data-parallel ranks split parameters, gradients and optimizer state (ZeRO), and how gradients
// are grouped into communication buckets. Every tensor is flattened and cut into `world` equal
// chunks of ceil(numel / world) elements; rank r owns elements [r·chunk, min(numel, (r+1)·chunk)) (the
// last chunks are zero-padded). A bucket holds whole tensors, in the order their gradients become
// ready in backward (the reverse of creation), up to a byte cap; its flat buffer is rank-major, so a
// reduce-scatter leaves each rank exactly its own chunks and an all-gather of the chunks rebuilds
// every tensor: [rank 0: chunk of t0, chunk of t1, ... | rank 1: chunk of t0, chunk of t1, ... | ...].

export interface ShardSlot {
  /** parameter name */
  name: string;
  numel: number;
  /** elements per rank (padded): ceil(numel / world) */
  chunk: number;
  /** offset of this tensor's chunk inside one rank's region of its bucket */
  offset: number;
  /** the bucket it belongs to */
  bucket: number;
}

export interface Bucket {
  index: number;
  /** tensors in the bucket, in bucket order */
  slots: ShardSlot[];
  /** elements of one rank's region (sum of the slots' chunks); the flat buffer holds world × this */
  regionNumel: number;
}

export interface ShardLayout {
  world: number;
  rank: number;
  buckets: Bucket[];
  /** by parameter name */
  slots: Map<string, ShardSlot>;
}

/** Elements each rank holds of a tensor of `numel` elements split over `world` ranks. */
export function chunkOf(numel: number, world: number): number {
  return Math.ceil(numel / world);
}

/** The element range [start, end) of a flattened tensor that `rank` owns (empty when past the end). */
export function ownedRange(numel: number, world: number, rank: number): { start: number; end: number } {
  const c = chunkOf(numel, world);
  const start = Math.min(numel, rank * c);
  return { start, end: Math.min(numel, start + c) };
}

/**
 * Buckets over parameters given in creation order (name, numel): filled from the last parameter
 * backward, a new bucket started when adding a tensor would pass `capBytes` (f32 elements, counted
 * over the whole flat buffer). A tensor larger than the cap gets a bucket of its own.
 */
export function planShards(params: readonly { name: string; numel: number }[], world: number, rank: number, capBytes: number): ShardLayout {
  if (!Number.isInteger(world) || world < 1) throw new RangeError(`shard layout: world size must be a positive integer, got ${world}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) throw new RangeError(`shard layout: rank ${rank} outside [0, ${world})`);
  if (!(capBytes > 0)) throw new RangeError(`shard layout: bucket cap must be positive, got ${capBytes} bytes`);
  const buckets: Bucket[] = [];
  const slots = new Map<string, ShardSlot>();
  let cur: Bucket | null = null;
  for (let i = params.length - 1; i >= 0; i--) {
    const p = params[i]!;
    if (slots.has(p.name)) throw new Error(`shard layout: parameter '${p.name}' listed twice`);
    const chunk = chunkOf(p.numel, world);
    if (cur && cur.slots.length > 0 && (cur.regionNumel + chunk) * world * 4 > capBytes) cur = null;
    if (!cur) {
      cur = { index: buckets.length, slots: [], regionNumel: 0 };
      buckets.push(cur);
    }
    const slot: ShardSlot = { name: p.name, numel: p.numel, chunk, offset: cur.regionNumel, bucket: cur.index };
    cur.slots.push(slot);
    cur.regionNumel += chunk;
    slots.set(p.name, slot);
  }
  return { world, rank, buckets, slots };
}
