// The tensor-parallel plan: how each parameter of the (unchanged) model is split over the tp ranks,
// keyed by parameter name (torchtitan's parallelize plan, Megatron's column/row-parallel linears):
//   column  split along dim 0 (output features): Q/K/V (whole heads, whole KV heads — GQA), gate/up
//   row     split along dim 1 (input features): attention output, FFN down
//   vocab   split along dim 0 (vocabulary rows): token embedding and output layer (tied or not)
//   replicate  every rank holds all of it: norms
//   moe-replicate  every rank holds all of it, computing its gradient from its own share of the tokens
//              (summed over tp): MoE router and shared experts (the MoE layer runs on N/tp tokens per rank)
//   expert     routed experts: whole (expert tensor parallel 1), each held by one rank of the expert
//              grid's ep group (expert-layers.ts), not split over tp
// and the refusals of layouts the model does not divide.
import type { ModelConfig } from '../nn/config.js';
import { ConfigError } from '../nn/config.js';
import { assertRanksFit } from './layout-ranks.js';

export type ShardKind = 'column' | 'row' | 'vocab' | 'replicate' | 'moe-replicate' | 'expert';

const RULES: readonly [RegExp, ShardKind][] = [
  [/^layers\.\d+\.feed_forward\.experts\.\d+\.w[123]\.weight$/, 'expert'],
  [/^layers\.\d+\.feed_forward\.(router|shared\.\d+\.w[123])\.weight$/, 'moe-replicate'],
  [/^layers\.\d+\.attention\.w[qkv]\.weight$/, 'column'],
  [/^layers\.\d+\.attention\.wo\.weight$/, 'row'],
  [/^layers\.\d+\.feed_forward\.w[13]\.weight$/, 'column'],
  [/^layers\.\d+\.feed_forward\.w2\.weight$/, 'row'],
  [/^(tok_embeddings|output)\.weight$/, 'vocab'],
  [/(^|\.)(attention_norm|ffn_norm|norm)\.weight$/, 'replicate'],
];

/** How parameter `name` is split; a parameter no rule names is refused (never silently replicated). */
export function shardKindOf(name: string): ShardKind {
  for (const [re, kind] of RULES) if (re.test(name)) return kind;
  throw new ConfigError(`tensor parallel: no plan for parameter '${name}'; add a rule to src/dist/tensor-parallel-plan.ts`);
}

/** The dimension a kind splits (null: replicated). */
export function shardDimOf(kind: ShardKind): 0 | 1 | null {
  return kind === 'row' ? 1 : kind === 'column' || kind === 'vocab' ? 0 : null;
}

/** The shape of one rank's shard of a parameter of global shape `shape`. */
export function localShape(shape: readonly number[], kind: ShardKind, tp: number): number[] {
  const d = shardDimOf(kind);
  return shape.map((n, i) => (i === d ? n / tp : n));
}

/**
 * Refuses a tp degree that does not divide the model (heads, KV heads, FFN width, vocabulary) or,
 * with sequence parallelism, the tokens of a micro-batch; and what is not implemented with it yet.
 */
export function validateTensorParallel(c: ModelConfig, tp: number, sp: boolean, microBatchTokens: number): void {
  if (!Number.isInteger(tp) || tp < 1) throw new ConfigError(`--tp must be a positive integer, got ${tp}`);
  if (sp && tp === 1) throw new ConfigError(`--sp (sequence parallel) splits norms and residuals over the tensor-parallel ranks; it needs --tp 2 or more`);
  if (tp === 1) return;
  const parts: [string, number, string][] = [
    ['attention heads', c.heads, '--heads'],
    ['KV heads', c.kvHeads, '--kv-heads'],
    ['FFN hidden size', c.ffnHidden, '--ffn-hidden'],
    ['vocabulary', c.vocab, '--vocab'],
  ];
  const fits = [...Array(c.kvHeads).keys()].map((i) => i + 1).filter((d) => parts.every(([, n]) => n % d === 0));
  for (const [what, n, flag] of parts)
    if (n % tp !== 0) throw new ConfigError(`--tp ${tp} does not divide model '${c.name}': ${n} ${what} (${flag}) must be a multiple of ${tp}; --tp ${fits.join('|')} would fit`);
  if (sp && microBatchTokens % tp !== 0)
    throw new ConfigError(`--sp splits each micro-batch's ${microBatchTokens} tokens over --tp ${tp} ranks; use a --micro-batch x --seq that is a multiple of ${tp}`);
}

/** --tp / --sp of a training run (TrainConfig.tensorParallel). */
export interface TensorParallelConfig {
  tp: number;
  /** sequence parallel: norms and residuals split over the tp ranks' tokens */
  sp: boolean;
}

/** Refuses a tensor-parallel run that does not fit the job's ranks, the model or the micro-batch. */
export function assertTensorParallelFits(c: { model: ModelConfig; dp: number; zero: number; microBatch: number; seqLen: number; }, t: TensorParallelConfig, worldSize: number): void {
  validateTensorParallel(c.model, t.tp, t.sp, c.microBatch * c.seqLen);
  assertRanksFit({ tp: t.tp }, c.dp, worldSize);
  if (c.zero > 1) throw new ConfigError(`--tp ${t.tp} with --zero ${c.zero}: ZeRO-2/3 over the replicas of tensor-parallel shards are not implemented yet; use --zero 1 or 0`);
}
