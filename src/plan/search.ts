// Layout search: every valid layout (tp, cp, ep, pp, vpp, dp, micro-batch, ZeRO stage, recomputation)
// for N chips and a global batch, ranked by time to train under the memory limit, with a one-line
// reason why the winner wins and a clear message when nothing fits.
import { type ClusterParams, DEFAULT_CLUSTER } from './cluster.js';
import { DEFAULT_EFFICIENCY, type Efficiency } from './efficiency.js';
import { type Estimate, estimateUnchecked } from './estimate.js';
import { PlanError, type ResolvedChip } from './hardware.js';
import { type AttentionKernel, describeLayout, type Layout, type Recompute } from './layout.js';
import { GiB, memoryPerChip } from './memory.js';
import type { PlanModel } from './model.js';
import type { Stack } from './stack.js';
import { type LayerTimeCache, stepTime } from './step-time.js';

export interface SearchOptions {
  model: PlanModel;
  chip: ResolvedChip;
  chips: number;
  /** sequences per step */
  globalBatch: number;
  tokens?: number;
  attention?: AttentionKernel;
  cluster?: ClusterParams;
  efficiency?: Efficiency;
  /** software stack (default megatron) */
  stack?: Stack;
  /** pin some dimensions (from --tp, --pp, ...) */
  fixed?: Partial<Pick<Layout, 'tp' | 'pp' | 'cp' | 'ep' | 'dp' | 'vpp' | 'microBatch' | 'zero' | 'recompute'>>;
  /** how many ranked layouts to keep */
  keep?: number;
}

export interface SearchResult {
  ranked: Estimate[];
  /** layouts that are valid for the chips, model and batch */
  considered: number;
  /** of those, how many fit in memory */
  fitting: number;
  /** the smallest per-chip memory seen (bytes), when nothing fits */
  leastMemory: number;
  leastMemoryLayout: Layout | null;
  reason: string;
  elapsedMs: number;
}

function divisorsOf(n: number): number[] {
  const out: number[] = [];
  for (let i = 1; i * i <= n; i++) if (n % i === 0) { out.push(i); if (i * i !== n) out.push(n / i); }
  return out.sort((a, b) => a - b);
}

const MICRO_BATCHES = [1, 2, 4, 8, 16];
const VPPS = [1, 2, 3, 4, 6, 8];
const CPS = [1, 2, 4, 8, 16, 32];

function pick<T>(fixed: T | undefined, all: T[]): T[] {
  return fixed === undefined ? all : all.includes(fixed) ? [fixed] : [];
}

/** Enumerates and ranks layouts. Never throws for "nothing fits": inspect `ranked.length`. */
export function searchLayouts(o: SearchOptions): SearchResult {
  const t0 = performance.now();
  const c = o.model.config;
  const N = o.chips;
  const G = o.globalBatch;
  const attention = o.attention ?? 'flash';
  const eff = o.efficiency ?? DEFAULT_EFFICIENCY;
  const cluster = o.cluster ?? DEFAULT_CLUSTER;
  const f = o.fixed ?? {};
  const keep = o.keep ?? 10;
  const limit = o.chip.usableMemoryGiB * GiB;
  const recomputes: Recompute[] = f.recompute ? [f.recompute] : attention === 'standard' ? ['none', 'selective', 'full'] : ['none', 'full'];
  const bestByShape = new Map<string, { layout: Layout; stepS: number }>();
  let considered = 0, fitting = 0, leastMemory = Infinity;
  let leastMemoryLayout: Layout | null = null;
  const cache: LayerTimeCache = new Map();

  const tps = pick(f.tp, divisorsOf(N).filter((t) => t <= Math.max(o.chip.chipsPerNode, 1) && c.heads % t === 0 && (c.kvHeads % t === 0 || t % c.kvHeads === 0)));
  for (const tp of tps) {
    for (const cp of pick(f.cp, CPS.filter((x) => (N / tp) % x === 0 && (x === 1 || c.seqLen % (2 * x) === 0)))) {
      const rest1 = N / (tp * cp);
      for (const pp of pick(f.pp, divisorsOf(rest1).filter((p) => p <= c.layers + 2))) {
        const dp = rest1 / pp;
        if (f.dp !== undefined && f.dp !== dp) continue;
        // Megatron-Core: expert parallelism folded inside dp * cp
        const eps = c.moe ? divisorsOf(c.moe.experts).filter((e) => (dp * cp) % e === 0) : [1];
        for (const ep of pick(f.ep, eps)) {
          for (const vpp of pick(f.vpp, VPPS.filter((v) => (v === 1 || pp > 1) && pp * v <= c.layers + 2))) {
            for (const mb of pick(f.microBatch, MICRO_BATCHES)) {
              const unit = mb * dp;
              if (G % unit !== 0) continue;
              const m = G / unit;
              if (vpp > 1 && m % pp !== 0) continue;
              const zeros: (0 | 1 | 2 | 3)[] = f.zero !== undefined ? [f.zero] : cp * dp === 1 ? [0] : [1, 2, 3];
              // per recomputation level, the cheapest ZeRO stage that fits (higher stages only add traffic)
              for (const recompute of recomputes) {
                considered++;
                for (const zero of zeros) {
                  const layout: Layout = {
                    tp, pp, dp, cp, ep, vpp, sequenceParallel: tp > 1, zero, microBatch: mb, globalBatch: G, recompute, attention,
                  };
                  const mem = memoryPerChip(o.model, layout).total;
                  if (mem < leastMemory) { leastMemory = mem; leastMemoryLayout = layout; }
                  if (mem > limit) continue;
                  fitting++;
                  const stepS = stepTime(o.model, layout, o.chip, eff, cache, o.stack ?? 'megatron').total;
                  const key = shape(layout);
                  const prev = bestByShape.get(key);
                  if (!prev || stepS < prev.stepS) bestByShape.set(key, { layout, stepS });
                  break;
                }
              }
            }
          }
        }
      }
    }
  }
  // the best variant (micro-batch, ZeRO, recompute) of each parallel shape, fastest first
  // (the runner-up is estimated even when keep = 1: the reason compares the winner with it)
  const top = [...bestByShape.values()].sort((a, b) => a.stepS - b.stepS).slice(0, Math.max(keep, 2))
    .map((b) => estimateUnchecked({ model: o.model, chip: o.chip, chips: N, layout: b.layout, cluster, efficiency: eff, tokens: o.tokens, cache, stack: o.stack }));
  return {
    ranked: top.slice(0, keep), considered, fitting, leastMemory, leastMemoryLayout, reason: top.length ? whyWinner(top) : '', elapsedMs: performance.now() - t0,
  };
}

function shape(l: Layout): string {
  return `${l.tp}/${l.cp}/${l.ep}/${l.pp}/${l.vpp}`;
}

const PART_WORDS: Record<string, string> = {
  compute: 'GEMM time', attention: 'attention time', elementwise: 'memory-bound elementwise time', tp: 'tensor-parallel communication',
  cp: 'context-parallel communication', ep: 'expert all-to-all', p2p: 'pipeline send/receive', bubble: 'pipeline bubble',
  dp: 'exposed gradient reduction', zero: 'ZeRO traffic', optimizer: 'optimizer update',
};

/** One line: why the winner beats the best layout of a different shape. */
export function whyWinner(ranked: Estimate[]): string {
  const w = ranked[0]!;
  const r = ranked.find((e) => shape(e.layout) !== shape(w.layout));
  if (!r) return `${describeLayout(w.layout)} is the only parallel shape that fits in memory.`;
  const diffs = Object.entries(w.time.parts).map(([k, v]) => [k, (r.time.parts as Record<string, number>)[k]! - v] as const);
  diffs.sort((a, b) => b[1] - a[1]);
  const [part, saved] = diffs[0]!;
  const pct = ((r.stepTimeS - w.stepTimeS) / w.stepTimeS) * 100;
  const mem = `${(w.memory.total / GiB).toFixed(1)} GiB of ${(w.memoryLimit / GiB).toFixed(0)} per chip`;
  return `${describeLayout(w.layout)} wins: ${pct.toFixed(1)}% faster per step than the next shape (${describeLayout(r.layout)}), ` +
    `mostly ${saved.toFixed(2)} s less ${PART_WORDS[part] ?? part} per step, and fits in ${mem}.`;
}

/**
 * A PlanError explaining why nothing fits and what would: the smallest chip count (doubling N) that has
 * a fitting layout, and the memory the least hungry layout needed.
 */
export function impossibleError(o: SearchOptions, res: SearchResult): PlanError {
  const need = res.leastMemory / GiB;
  const have = o.chip.usableMemoryGiB;
  if (!Number.isFinite(need)) {
    return new PlanError(
      `no valid layout for ${o.chips} chips with global batch ${o.globalBatch}: the batch must be a multiple of micro-batch*dp ` +
        `for some split of the chips. Try a global batch that is a multiple of ${o.chips} (e.g. ${o.chips * Math.max(1, Math.round(o.globalBatch / o.chips))}), or a chip count that divides it.`,
    );
  }
  let hint = '';
  for (let k = 1; k <= 6; k++) {
    const n = o.chips * 2 ** k;
    const g = Math.max(o.globalBatch, n / 16);
    const r = searchLayouts({ ...o, chips: n, globalBatch: g, keep: 1 });
    if (r.ranked.length) {
      hint = ` It becomes possible with ${n} chips (the first doubling of the chip count that fits; best: ${describeLayout(r.ranked[0]!.layout)}, ${(r.ranked[0]!.memory.total / GiB).toFixed(1)} GiB per chip${g !== o.globalBatch ? `, global batch ${g}` : ''}).`;
      break;
    }
  }
  return new PlanError(
    `${o.model.config.name} does not fit on ${o.chips} x ${o.chip.id} (${have} GiB usable per chip) at any layout: the least memory-hungry ` +
      `layout (${res.leastMemoryLayout ? describeLayout(res.leastMemoryLayout) : '?'}, ZeRO-${res.leastMemoryLayout?.zero}, ${res.leastMemoryLayout?.recompute} recompute) needs ${need.toFixed(1)} GiB per chip.` +
      (hint || ' More chips, a chip with more memory, or a shorter sequence would be needed.'),
  );
}
