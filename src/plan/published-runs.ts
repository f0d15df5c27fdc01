// The validation set: published training runs (paper or official repository table) with their
// layout, hardware, shape and measured throughput, each with its citation and what the source
// actually reports (MFU, hardware FLOP/s including recomputation, or seconds per iteration, from
// which MFU is derived with the planner's model-FLOP count). docs/planner.md lists them; the data
// here is the single source of the table (test/plan-published.test.ts recomputes it).
import type { ResolvedChip } from './hardware.js';
import { catalogChip, overrideChip, resolveChip } from './hardware.js';
import { causalHalfModelFlopsPerToken, hardwareFlopsPerToken, modelFlopsPerToken } from './flops.js';
import type { Layout } from './layout.js';
import { modelFromJson, type PlanModel } from './model.js';
import type { Stack } from './stack.js';

export interface Source {
  id: string;
  cite: string;
}

export const SOURCES: readonly Source[] = [
  { id: 'narayanan2021', cite: 'Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", SC21, Table 1' },
  { id: 'korthikanti2022', cite: 'Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", MLSys 2023, Tables 4-5' },
  { id: 'smith2022', cite: 'Smith et al. 2022, "Using DeepSpeed and Megatron to Train Megatron-Turing NLG 530B", arXiv 2201.11990, Sec. 2.3 (iteration time and TFLOP/s per GPU at 280, 350, 420 DGX nodes)' },
  { id: 'bigscience2022', cite: 'BigScience 2022, "BLOOM: A 176B-Parameter Open-Access Multilingual Language Model", arXiv 2211.05100, Sec. 3.4 (156 TFLOP/s per GPU, 48 nodes of 8 A100-80GB, Omni-Path 4 x 100 Gb/s per node)' },
  { id: 'dubey2024', cite: 'Llama Team, Meta 2024, "The Llama 3 Herd of Models", arXiv 2407.21783, Table 4 (BF16 MFU of Llama 3 405B)' },
  { id: 'jiang2024', cite: 'Jiang et al. 2024, "MegaScale: Scaling Large Language Model Training to More Than 10,000 GPUs", NSDI 24 (175B on 12,288 GPUs: 55.2% MFU, 1.34x Megatron-LM)' },
  { id: 'nvidia2024', cite: 'NVIDIA 2024, "Nemotron-4 340B Technical Report", arXiv 2406.11704, Table 2 (iteration time and MFU at 1,536 / 3,072 / 6,144 H100)' },
  { id: 'dgxc2024', cite: 'NVIDIA DGX Cloud Benchmarking (github.com/NVIDIA/dgxc-benchmarking and NGC catalog): Nemotron4 340B recipe 24.11 (128 H100, TP 8 PP 8 VP 12, GBS 32, 4.77 s per step); Grok 1 314B recipe, grok1/README_314b.md (BF16 seconds per step at 512 / 1,024 / 2,048 H100, TP 4 PP 8 CP 2 EP 8 VP 8, sequence 8,192, micro-batch 1)' },
  { id: 'yin2025', cite: 'Yin et al. 2025, "Pangu Ultra: Pushing the Limits of Dense Large Language Models on Ascend NPUs", arXiv 2504.07866 (8,192 NPUs: MFU about 43% baseline, over 52% optimised)' },
];

export interface PublishedRun {
  id: string;
  source: string;
  /** the model as a planner-io model object */
  model: Record<string, unknown>;
  chip: string;
  /** per-run facts of the installation the source states (e.g. BLOOM's Omni-Path), not fitted */
  chipOverrides?: Record<string, number>;
  gpus: number;
  layout: Layout;
  stack: Stack;
  /** what the source reports, verbatim in meaning */
  reports: string;
  /** published seconds per iteration, when given */
  stepTimeS?: number;
  /** the MFU to compare with: published, or derived (see `derive`) */
  mfu: number;
}

const GPT_VOCAB = 51200;
const gpt = (layers: number, hidden: number, heads: number, extra: Record<string, unknown> = {}) => ({
  name: `gpt-${layers}x${hidden}`, layers, hidden, heads, ffnHidden: 4 * hidden, ffnKind: 'gelu', vocab: GPT_VOCAB, seqLen: 2048, tiedEmbeddings: true, dropout: true, ...extra,
});

function lay(p: Partial<Layout> & Pick<Layout, 'tp' | 'pp' | 'dp' | 'globalBatch'>): Layout {
  return { cp: 1, ep: 1, vpp: 1, sequenceParallel: false, zero: 1, microBatch: 1, recompute: 'none', attention: 'flash', ...p };
}

/** MFU from seconds per iteration with the planner's model FLOPs (flops.ts). */
function mfuFromStep(model: Record<string, unknown>, chipId: string, gpus: number, globalBatch: number, stepS: number): number {
  const m = modelFromJson(model);
  const tokens = globalBatch * m.config.seqLen;
  return (modelFlopsPerToken(m.config) * tokens) / stepS / (gpus * resolveChip(catalogChip(chipId)).peakTflops * 1e12);
}

/** MFU from a published hardware FLOP/s per GPU that includes recomputation (model/hardware FLOPs ratio). */
function mfuFromHfu(model: Record<string, unknown>, chipId: string, tflops: number, l: Layout): number {
  const m = modelFromJson(model).config;
  return (tflops / resolveChip(catalogChip(chipId)).peakTflops) * (modelFlopsPerToken(m) / hardwareFlopsPerToken(m, l.recompute, l.attention));
}

/** An MFU published with the causal-half attention count, restated with the planner's full-square count. */
function mfuFromCausalHalf(model: Record<string, unknown>, mfu: number): number {
  const m = modelFromJson(model).config;
  return mfu * (modelFlopsPerToken(m) / causalHalfModelFlopsPerToken(m));
}

const nar = (params: string, layers: number, hidden: number, heads: number, gpus: number, tp: number, pp: number, dp: number, gb: number, tflops: number): PublishedRun => {
  const model = gpt(layers, hidden, heads);
  const layout = lay({ tp, pp, dp, globalBatch: gb, zero: 0, recompute: 'full', attention: 'standard' });
  return {
    id: `narayanan-${params}`, source: 'narayanan2021', model, chip: 'a100-sxm-80gb', gpus, layout, stack: 'megatron',
    reports: `${tflops} TFLOP/s per GPU including the full-recompute forward (their Eq. 3); micro-batch not given (1, one rule for all)`,
    mfu: mfuFromHfu(model, 'a100-sxm-80gb', tflops, layout),
  };
};

const kor = (params: string, layers: number, hidden: number, heads: number, gpus: number, tp: number, pp: number, gb: number, mb: number, stepS: number): PublishedRun => {
  const model = gpt(layers, hidden, heads);
  return {
    id: `korthikanti-${params}`, source: 'korthikanti2022', model, chip: 'a100-sxm-80gb', gpus, stack: 'megatron',
    layout: lay({ tp, pp, dp: 1, globalBatch: gb, microBatch: mb, zero: 0, recompute: 'selective', sequenceParallel: true, attention: 'standard' }),
    reports: `${stepS} s per iteration (selective recompute + SP); MFU derived`, stepTimeS: stepS,
    mfu: mfuFromStep(model, 'a100-sxm-80gb', gpus, gb, stepS),
  };
};

const mtnlg = (nodes: number, stepS: number, tflops: number): PublishedRun => {
  const model = gpt(105, 20480, 128);
  const gpus = nodes * 8;
  return {
    id: `mt-nlg-530B-${gpus}`, source: 'smith2022', model, chip: 'a100-sxm-80gb', gpus, stack: 'deepspeed-legacy',
    layout: lay({ tp: 8, pp: 35, dp: gpus / 280, globalBatch: 1920, recompute: 'full', attention: 'standard' }),
    reports: `${stepS} s per iteration, ${tflops} TFLOP/s per GPU (with recomputation); MFU derived from the iteration time`, stepTimeS: stepS,
    mfu: mfuFromStep(model, 'a100-sxm-80gb', gpus, 1920, stepS),
  };
};

const llama405 = { name: 'llama3-405b', layers: 126, hidden: 16384, heads: 128, kvHeads: 8, ffnHidden: 53248, ffnKind: 'swiglu', vocab: 128256, seqLen: 8192 };
const llama3 = (gpus: number, cp: number, dp: number, seq: number, perDp: number, mfu: number): PublishedRun => ({
  id: `llama3-405B-${gpus}${cp > 1 ? `-cp${cp}` : ''}`, source: 'dubey2024', model: { ...llama405, seqLen: seq }, chip: 'h100-sxm', gpus, stack: 'overlapped',
  layout: lay({ tp: 8, pp: 16, vpp: 8, cp, dp, globalBatch: perDp * dp, sequenceParallel: true }),
  reports: `BF16 MFU ${(mfu * 100).toFixed(0)}% (${Math.round(mfu * 989.5 / 10) * 10} TFLOP/s per GPU), read as counting half the causal attention square (evidence in docs/published-runs.md) and restated with the full square; pp 16 x vpp 8 = 126 layers + embedding-only and loss-only chunks`,
  mfu: mfuFromCausalHalf({ ...llama405, seqLen: seq }, mfu),
});

const gpt175 = gpt(96, 12288, 96);
const nemotron = { name: 'nemotron4-340b', layers: 96, hidden: 18432, heads: 96, kvHeads: 8, ffnHidden: 73728, ffnKind: 'relu', vocab: 256000, seqLen: 4096, dropout: false };
const nemo = (gpus: number, dp: number, gb: number, stepS: number, mfu: number): PublishedRun => ({
  id: `nemotron4-340B-${gpus}`, source: 'nvidia2024', model: nemotron, chip: 'h100-sxm', gpus, stack: 'overlapped',
  layout: lay({ tp: 8, pp: 12, vpp: 8, dp, globalBatch: gb, sequenceParallel: true }),
  reports: `${stepS} s per iteration, MFU ${(mfu * 100).toFixed(1)}% (virtual pipeline size not given: 8, one rule)`, stepTimeS: stepS,
  mfu,
});
// Grok-1 (xai-org/grok-1): 64 layers, d 6144, 48 query / 8 kv heads of 128, 8 experts of a gated-GELU FFN of 32768, top 2, vocab 131072
const grok1 = {
  name: 'grok1-314b', layers: 64, hidden: 6144, heads: 48, kvHeads: 8, ffnKind: 'geglu', vocab: 131072, seqLen: 8192,
  moe: { experts: 8, topK: 2, expertFfnHidden: 32768 },
};
/** DGX Cloud's Grok 1 table: its DP column excludes EP (GPUs = tp*pp*cp*ep*dp); in the Megatron-Core convention dp = GPUs / (tp*pp*cp), ep 8 folded inside it. */
const grok = (gpus: number, gb: number, stepS: number, mfu: number): PublishedRun => ({
  id: `dgxc-grok1-314B-${gpus}`, source: 'dgxc2024', model: grok1, chip: 'h100-sxm', gpus, stack: 'overlapped',
  layout: lay({ tp: 4, pp: 8, vpp: 8, cp: 2, ep: 8, dp: gpus / 64, globalBatch: gb, sequenceParallel: true }),
  reports: `BF16 ${stepS} s per step, MFU ${(mfu * 100).toFixed(1)}% counting 4.27e15 FLOPs per sequence (= the planner's count with half the causal attention square); MFU derived from the step time with the planner's FLOPs (full square)`,
  stepTimeS: stepS, mfu: mfuFromStep(grok1, 'h100-sxm', gpus, gb, stepS),
});
const pangu = { name: 'pangu-ultra-135b', layers: 94, hidden: 12288, heads: 96, kvHeads: 8, ffnHidden: 28672, ffnKind: 'swiglu', vocab: 153376, seqLen: 8192 };

export const PUBLISHED_RUNS: readonly PublishedRun[] = [
  nar('1.7B', 24, 2304, 24, 32, 1, 1, 32, 512, 137),
  nar('3.6B', 30, 3072, 32, 64, 2, 1, 32, 512, 138),
  nar('7.5B', 36, 4096, 32, 128, 4, 1, 32, 512, 142),
  nar('18.4B', 40, 6144, 48, 256, 8, 1, 32, 1024, 135),
  nar('39.1B', 48, 8192, 64, 512, 8, 2, 32, 1536, 138),
  nar('76.1B', 60, 10240, 80, 1024, 8, 4, 32, 1792, 140),
  nar('145.6B', 80, 12288, 96, 1536, 8, 8, 24, 2304, 148),
  nar('310.1B', 96, 16384, 128, 1920, 8, 16, 15, 2160, 155),
  nar('529.6B', 105, 20480, 128, 2520, 8, 35, 9, 2520, 163),
  nar('1008B', 128, 25600, 160, 3072, 8, 64, 6, 3072, 163),
  kor('22B', 48, 6144, 64, 8, 8, 1, 4, 4, 1.10),
  kor('175B', 96, 12288, 96, 64, 8, 8, 64, 1, 13.75),
  kor('530B', 105, 20480, 128, 280, 8, 35, 280, 1, 37.83),
  kor('1T', 128, 25600, 160, 512, 8, 64, 512, 1, 71.49),
  mtnlg(280, 60.1, 126),
  mtnlg(350, 50.2, 121),
  mtnlg(420, 44.4, 113),
  (() => {
    const model = { ...gpt(70, 14336, 112), name: 'bloom-176b', vocab: 250880, dropout: false };
    const layout = lay({ tp: 4, pp: 12, dp: 8, globalBatch: 2048, microBatch: 2, recompute: 'full', attention: 'standard' });
    return {
      id: 'bloom-176B-384', source: 'bigscience2022', model, chip: 'a100-sxm-80gb', chipOverrides: { interNodeGBs: 6.25 }, gpus: 384, layout,
      stack: 'deepspeed-legacy' as const, reports: '156 TFLOP/s per GPU with activation checkpointing; Omni-Path 4 x 100 Gb/s per node (6.25 GB/s per GPU); MFU derived',
      mfu: mfuFromHfu(model, 'a100-sxm-80gb', 156, layout),
    };
  })(),
  llama3(8192, 1, 64, 8192, 32, 0.43),
  llama3(16384, 1, 128, 8192, 16, 0.41),
  llama3(16384, 16, 8, 131072, 16, 0.38),
  {
    id: 'megascale-175B-megatron', source: 'jiang2024', model: gpt175, chip: 'a100-sxm-80gb', gpus: 12288, stack: 'megatron',
    layout: lay({ tp: 8, pp: 8, dp: 192, globalBatch: 6144, sequenceParallel: true }),
    reports: 'Megatron-LM baseline: 55.2% / 1.34 = 41.2% MFU (derived from the stated speed-up)', mfu: 0.552 / 1.34,
  },
  {
    id: 'megascale-175B', source: 'jiang2024', model: gpt175, chip: 'a100-sxm-80gb', gpus: 12288, stack: 'overlapped',
    layout: lay({ tp: 8, pp: 8, dp: 192, globalBatch: 6144, sequenceParallel: true }),
    reports: 'MegaScale 55.2% MFU', mfu: 0.552,
  },
  nemo(1536, 16, 768, 10.3, 0.424),
  nemo(3072, 32, 1536, 10.3, 0.423),
  nemo(6144, 64, 2304, 8.0, 0.41),
  {
    id: 'dgxc-nemotron4-340B-128', source: 'dgxc2024', model: nemotron, chip: 'h100-sxm', gpus: 128, stack: 'overlapped',
    layout: lay({ tp: 8, pp: 8, vpp: 12, dp: 2, globalBatch: 32, sequenceParallel: true }),
    reports: '4.77 s per step; MFU derived with the planner\'s FLOPs (the recipe\'s own 53.5% counts 1.01e16 FLOPs per sequence, 17% more)', stepTimeS: 4.77,
    mfu: mfuFromStep(nemotron, 'h100-sxm', 128, 32, 4.77),
  },
  grok(512, 1024, 20.83, 0.415),
  grok(1024, 2048, 21.0, 0.411),
  grok(2048, 4096, 21.09, 0.41),
  {
    id: 'pangu-ultra-135B-baseline', source: 'yin2025', model: pangu, chip: 'ascend-910b', gpus: 8192, stack: 'megatron',
    layout: lay({ tp: 8, pp: 8, vpp: 6, dp: 128, globalBatch: 1536, sequenceParallel: true }),
    reports: 'MFU about 43% before optimisation; global batch not stated (1536, see docs); the peak the MFU divides by is not stated', mfu: 0.43,
  },
  {
    id: 'pangu-ultra-135B', source: 'yin2025', model: pangu, chip: 'ascend-910b', gpus: 8192, stack: 'overlapped',
    layout: lay({ tp: 8, pp: 8, vpp: 6, dp: 128, globalBatch: 1536, sequenceParallel: true }),
    reports: 'MFU over 52% after optimisation (same caveats)', mfu: 0.52,
  },
];

export function runModel(r: PublishedRun): PlanModel {
  return modelFromJson(r.model, r.id);
}

export function runLayout(r: PublishedRun): Layout {
  return r.layout;
}

export function runChip(r: PublishedRun): ResolvedChip {
  const c = catalogChip(r.chip);
  return resolveChip(r.chipOverrides ? overrideChip(c, r.chipOverrides, r.id) : c);
}

export function sourceOf(r: PublishedRun): Source {
  return SOURCES.find((s) => s.id === r.source)!;
}
