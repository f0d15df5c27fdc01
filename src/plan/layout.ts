// A parallel layout (how N chips split the work) and its validity checks, with messages that say
// what would make an invalid layout valid. Megatron-Core convention: world = tp * cp * dp * pp (ranks
// ordered tp-cp-dp-pp, tp fastest); expert parallelism is folded inside dp * cp: the cp * dp ranks of a
// tensor/pipeline position are split into ep expert groups of dp * cp / ep expert-data-parallel replicas.
import type { ModelConfig } from '../nn/config.js';
import { PlanError } from './hardware.js';

export type Recompute = 'none' | 'selective' | 'full';
export type AttentionKernel = 'standard' | 'flash';

export interface Layout {
  tp: number;
  pp: number;
  /** data-parallel size (dense weights replicated over cp * dp; sequences processed side by side) */
  dp: number;
  cp: number;
  /** expert-parallel size, folded inside dp * cp (ep divides dp * cp); expert weights replicated over dp * cp / ep */
  ep: number;
  /** virtual pipeline stages per chip (interleaved 1F1B when > 1) */
  vpp: number;
  sequenceParallel: boolean;
  zero: 0 | 1 | 2 | 3;
  /** sequences per micro-batch */
  microBatch: number;
  /** sequences per optimizer step */
  globalBatch: number;
  recompute: Recompute;
  /** standard attention materialises the s x s scores (Megatron 2021-22); flash does not */
  attention: AttentionKernel;
}

export function layoutChips(l: Layout): number {
  return l.tp * l.pp * l.dp * l.cp;
}

/** Expert-data-parallel size: replicas of each expert weight (dp * cp / ep). */
export function expertDp(l: Layout): number {
  return (l.dp * l.cp) / l.ep;
}

/** Micro-batches per pipeline per step. */
export function microBatches(l: Layout): number {
  return l.globalBatch / (l.microBatch * l.dp);
}

export function describeLayout(l: Layout): string {
  const parts = [`tp${l.tp}`, `pp${l.pp}${l.vpp > 1 ? `x${l.vpp}` : ''}`, `dp${l.dp}`];
  if (l.cp > 1) parts.push(`cp${l.cp}`);
  if (l.ep > 1) parts.push(`ep${l.ep}`);
  return parts.join(' ');
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let i = 1; i * i <= n; i++) if (n % i === 0) out.push(i, n / i);
  return [...new Set(out)].sort((a, b) => a - b);
}

/** Problems with a layout for this model and chip count; empty when valid. Each says how to fix it. */
export function layoutProblems(m: ModelConfig, l: Layout, chips: number): string[] {
  const p: string[] = [];
  for (const k of ['tp', 'pp', 'dp', 'cp', 'ep', 'vpp', 'microBatch', 'globalBatch'] as const) {
    if (!Number.isInteger(l[k]) || l[k] < 1) p.push(`${k} must be a positive integer, got ${l[k]}`);
  }
  if (p.length) return p;
  const used = layoutChips(l);
  if (used !== chips) {
    const rest = l.tp * l.pp * l.cp;
    const lo = Math.floor(chips / rest) * rest;
    const hi = Math.ceil(chips / rest) * rest;
    const nearest = [lo, hi].filter((x, i, a) => x > 0 && a.indexOf(x) === i).join(' or ');
    p.push(
      `tp*pp*cp*dp = ${l.tp}*${l.pp}*${l.cp}*${l.dp} = ${used} does not equal the ${chips} chips (Megatron-Core convention: ep is folded inside dp*cp)` +
        (chips % rest === 0 ? `; use dp ${chips / rest}` : `; ${chips} is not a multiple of tp*pp*cp = ${rest}: use ${nearest} chips, or tp/pp/cp whose product divides ${chips} (e.g. ${divisors(chips).filter((d) => d <= 64).slice(-4).join(', ')})`),
    );
  }
  if (m.heads % l.tp !== 0) p.push(`tp ${l.tp} does not divide the ${m.heads} attention heads; use one of ${divisors(m.heads).filter((d) => d <= 64).join(', ')}`);
  if (m.kvHeads % l.tp !== 0 && l.tp % m.kvHeads !== 0) p.push(`tp ${l.tp} neither divides nor is a multiple of the ${m.kvHeads} kv heads`);
  if (l.pp * l.vpp > m.layers + 2) p.push(`pp*vpp = ${l.pp * l.vpp} exceeds the ${m.layers} layers + 2 (an embedding-only first and a loss-only last chunk); use fewer stages`);
  if (l.vpp > 1 && l.pp === 1) p.push('vpp > 1 needs pipeline parallelism (pp > 1)');
  if (m.seqLen % (l.cp * (l.cp > 1 ? 2 : 1)) !== 0) p.push(`cp ${l.cp}: the sequence length ${m.seqLen} must be divisible by 2*cp (load-balanced causal chunks)`);
  if (l.ep > 1 && !m.moe) p.push('ep > 1 needs a Mixture-of-Experts model');
  if (m.moe && m.moe.experts % l.ep !== 0) p.push(`ep ${l.ep} does not divide the ${m.moe.experts} experts; use one of ${divisors(m.moe.experts).join(', ')}`);
  if ((l.dp * l.cp) % l.ep !== 0) p.push(`ep ${l.ep} must divide dp*cp = ${l.dp * l.cp} (expert parallelism is folded inside the data-parallel ranks); use one of ${divisors(l.dp * l.cp).filter((d) => !m.moe || m.moe.experts % d === 0).slice(-4).join(', ')}`);
  const mb = microBatches(l);
  if (!Number.isInteger(mb) || mb < 1) {
    const unit = l.microBatch * l.dp;
    p.push(`global batch ${l.globalBatch} is not a multiple of microBatch*dp = ${unit}; use ${Math.max(unit, Math.round(l.globalBatch / unit) * unit)}`);
  } else if (l.vpp > 1 && mb % l.pp !== 0) {
    p.push(`the interleaved schedule needs micro-batches per pipeline (${mb}) to be a multiple of pp (${l.pp})`);
  }
  if (![0, 1, 2, 3].includes(l.zero)) p.push(`zero must be 0, 1, 2 or 3, got ${l.zero}`);
  if (!['none', 'selective', 'full'].includes(l.recompute)) p.push(`recompute must be none, selective or full, got '${l.recompute}'`);
  if (!['standard', 'flash'].includes(l.attention)) p.push(`attention must be standard or flash, got '${l.attention}'`);
  return p;
}

export function checkLayout(m: ModelConfig, l: Layout, chips: number): void {
  const p = layoutProblems(m, l, chips);
  if (p.length) throw new PlanError(`invalid layout ${describeLayout(l)} for ${chips} chips: ${p.join('; ')}`);
}
