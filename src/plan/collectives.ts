// Time of collectives over a process group laid on nodes: hierarchical all-reduce, reduce-scatter,
// all-gather, all-to-all and point-to-point, each at the bandwidth of the links it crosses.
import type { Efficiency } from './efficiency.js';
import type { ResolvedChip } from './hardware.js';

/** A process group: its size and how many of its members share one node (scale-up domain). */
export interface Group {
  size: number;
  perNode: number;
}

/**
 * Group made of grid dimensions (each `size` ranks `stride` apart, ranks numbered node by node).
 * Members per node: for each dimension, how many of its ranks fall in one node, multiplied.
 */
export function groupOf(dims: { size: number; stride: number }[], chipsPerNode: number): Group {
  let size = 1, perNode = 1;
  for (const d of dims) {
    if (d.size <= 1) continue;
    size *= d.size;
    if (d.stride < chipsPerNode) perNode *= Math.max(1, Math.min(d.size, Math.floor(chipsPerNode / d.stride)));
  }
  return { size, perNode: Math.min(perNode, size) };
}

/**
 * Latency steps of a reduce-scatter or all-gather: NCCL runs these as rings, n - 1 steps over the
 * whole group (a tree would be log n, but NCCL has no tree for them), which is what makes per-layer
 * ZeRO-3 gathers over thousands of ranks latency-bound.
 */
function steps(g: Group): number {
  return g.size - 1;
}

/** Reduce-scatter (or all-gather) of `bytes` (the full buffer) over the group: intra-node phase then inter-node on 1/k. */
export function reduceScatterSeconds(bytes: number, g: Group, chip: ResolvedChip, e: Efficiency): number {
  if (g.size <= 1 || bytes <= 0) return 0;
  const k = g.perNode;
  const nodes = g.size / k;
  const intra = ((k - 1) / k) * bytes / (chip.intraNodeGBs * 1e9 * e.netEff);
  const inter = nodes > 1 ? (((nodes - 1) / nodes) * (bytes / k)) / (chip.interNodeGBs * 1e9 * e.netEff) : 0;
  return intra + inter + steps(g) * e.latencyUs * 1e-6;
}

export const allGatherSeconds = reduceScatterSeconds;

export function allReduceSeconds(bytes: number, g: Group, chip: ResolvedChip, e: Efficiency): number {
  return 2 * reduceScatterSeconds(bytes, g, chip, e);
}

/** All-to-all where each chip holds `bytes` spread evenly over the group. */
export function allToAllSeconds(bytes: number, g: Group, chip: ResolvedChip, e: Efficiency): number {
  if (g.size <= 1 || bytes <= 0) return 0;
  const intra = (((g.perNode - 1) / g.size) * bytes) / (chip.intraNodeGBs * 1e9 * e.netEff);
  const inter = (((g.size - g.perNode) / g.size) * bytes) / (chip.interNodeGBs * 1e9 * e.netEff);
  return Math.max(intra, inter) + e.latencyUs * 1e-6 * 2;
}

export function p2pSeconds(bytes: number, crossNode: boolean, chip: ResolvedChip, e: Efficiency): number {
  if (bytes <= 0) return 0;
  return bytes / ((crossNode ? chip.interNodeGBs : chip.intraNodeGBs) * 1e9 * e.netEff) + e.latencyUs * 1e-6;
}
