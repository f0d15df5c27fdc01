// The planner's hardware catalog: accelerators with their figures, where each figure comes from and
// how sure we are, plus user-defined chips (JSON) and per-field overrides.
import { ConfigError } from '../nn/config.js';

export type Confidence = 'vendor' | 'paper' | 'reported' | 'low' | 'unknown';

/** One accelerator. `null` means no public figure: the user must supply it before planning. */
export interface Chip {
  id: string;
  name: string;
  vendor: string;
  /** dense bf16/fp16 TFLOP/s (no sparsity) */
  peakTflops: number | null;
  /** device memory, GiB */
  memoryGiB: number | null;
  /** what a framework can actually allocate (defaults to memoryGiB) */
  usableMemoryGiB?: number | null;
  /** memory bandwidth, TB/s */
  memoryBandwidthTBs: number | null;
  /** chips in one scale-up domain (a node, or a supernode when the scale-up fabric spans racks) */
  chipsPerNode: number | null;
  /** scale-up bandwidth per chip, one direction, GB/s */
  intraNodeGBs: number | null;
  /** scale-out bandwidth per chip, one direction, GB/s */
  interNodeGBs: number | null;
  /** board power, W (for energy); null when unknown */
  tdpW: number | null;
  /** where the figures come from */
  source: string;
  confidence: Confidence;
  /** fields that are our assumption, not a published figure */
  assumed?: string[];
  notes?: string;
}

/** A chip with every field needed to plan present. */
export interface ResolvedChip extends Chip {
  /**
   * Measured GEMM throughput (FLOP/s) at an M x N x K shape, for a machine described by its own
   * measurements (`hardware: "local"`); catalog chips use the fitted roofline instead.
   */
  measuredGemm?: (M: number, N: number, K: number) => number;
  /** measured FLOP/s of the causal flash-attention kernel at (batch, seq, heads, headDim), counting the computed half */
  measuredAttention?: (batch: number, seq: number, heads: number, headDim: number) => number;
  /** measured per-step latency of the links, microseconds (`hardware: "local"` on several ranks) */
  linkLatencyUs?: number;
  peakTflops: number;
  memoryGiB: number;
  usableMemoryGiB: number;
  memoryBandwidthTBs: number;
  chipsPerNode: number;
  intraNodeGBs: number;
  interNodeGBs: number;
}

const ASCEND_MFU_NOTE = 'Ascend papers do not say which peak they divide by when they report MFU.';

const ascend910b = (bin: string, tflops: number, mem: number, usable: number): Chip => ({
  id: `ascend-910${bin}`,
  name: `Huawei Ascend 910${bin.toUpperCase()} (Atlas 800T A2)`,
  vendor: 'Huawei',
  peakTflops: tflops,
  memoryGiB: mem,
  usableMemoryGiB: usable,
  memoryBandwidthTBs: 1.6,
  chipsPerNode: 8,
  intraNodeGBs: 196,
  interNodeGBs: 25,
  tdpW: 400,
  source: 'node layout and memory: Pangu Ultra paper; TFLOP/s bins: secondary reports (910B4 ~280, 910B3 ~313, 910B2 ~376)',
  confidence: 'reported',
  assumed: ['intraNodeGBs', 'tdpW'],
  notes: `HCCS full mesh of 8, ~392 GB/s aggregate taken as both directions (196 GB/s each way). Frameworks cap usable memory near 55 GB. ${ASCEND_MFU_NOTE}`,
});

const ASSUMED_ROCE = 'scale-out assumed 200 Gb/s RoCE per chip (25 GB/s): no published per-chip figure';

/** The built-in catalog, each entry with its source and confidence (`zili plan --list-chips`). Ids are lower-case with dashes. */
export const CATALOG: readonly Chip[] = [
  {
    id: 'ascend-910', name: 'Huawei Ascend 910 (910A, 2019)', vendor: 'Huawei', peakTflops: 256, memoryGiB: 32, memoryBandwidthTBs: 1.2,
    chipsPerNode: 8, intraNodeGBs: 45, interNodeGBs: 25, tdpW: 310,
    source: 'Hot Chips 2019 (peak, HCCS 3 x 30 GB/s in two full-mesh groups of 4); memory reported', confidence: 'paper',
    assumed: ['intraNodeGBs'],
    notes: `HCCS 3 x 30 GB/s taken as 45 GB/s each way; the two groups of 4 are joined by PCIe, which this model does not capture. ${ASCEND_MFU_NOTE}`,
  },
  { ...ascend910b('b', 313, 64, 55), notes: `Defaults to the 910B3 bin (313 TFLOP/s); see ascend-910b2 / ascend-910b4 for other bins. ${ascend910b('b', 0, 0, 0).notes}` },
  ascend910b('b2', 376, 64, 55),
  ascend910b('b3', 313, 64, 55),
  ascend910b('b4', 280, 32, 28),
  {
    id: 'ascend-910c', name: 'Huawei Ascend 910C (CloudMatrix 384)', vendor: 'Huawei', peakTflops: 752, memoryGiB: 128, memoryBandwidthTBs: 3.2,
    chipsPerNode: 384, intraNodeGBs: 196, interNodeGBs: 25, tdpW: null,
    source: 'CloudMatrix 384 paper summaries (two dies, UB ~196 GB/s per direction measured, 1.2 us)', confidence: 'reported',
    assumed: ['interNodeGBs'],
    notes: `The scale-up domain is the 384-chip supernode (UB fabric), so chipsPerNode is 384. ${ASSUMED_ROCE}. ${ASCEND_MFU_NOTE}`,
  },
  {
    id: 'cambricon-mlu370-x8', name: 'Cambricon MLU370-X8', vendor: 'Cambricon', peakTflops: 96, memoryGiB: 48, memoryBandwidthTBs: 0.61,
    chipsPerNode: 8, intraNodeGBs: 100, interNodeGBs: 25, tdpW: 250,
    source: 'secondary reports', confidence: 'reported', assumed: ['intraNodeGBs', 'interNodeGBs'],
    notes: `MLU-Link ~200 GB/s taken as both directions. ${ASSUMED_ROCE}.`,
  },
  {
    id: 'cambricon-mlu590', name: 'Cambricon MLU590', vendor: 'Cambricon', peakTflops: 300, memoryGiB: 64, memoryBandwidthTBs: 2.0,
    chipsPerNode: 8, intraNodeGBs: null, interNodeGBs: 25, tdpW: null,
    source: 'secondary reports that conflict', confidence: 'low', assumed: ['interNodeGBs'],
    notes: `MLU-Link bandwidth not published: set intraNodeGBs. ${ASSUMED_ROCE}.`,
  },
  {
    id: 'hygon-k100-ai', name: 'Hygon DCU K100 AI', vendor: 'Hygon', peakTflops: 196, memoryGiB: 64, memoryBandwidthTBs: 2.0,
    chipsPerNode: 8, intraNodeGBs: null, interNodeGBs: 25, tdpW: null,
    source: 'secondary reports', confidence: 'low', assumed: ['interNodeGBs'],
    notes: `xGMI-class link, bandwidth not published: set intraNodeGBs. ${ASSUMED_ROCE}.`,
  },
  {
    id: 'mthreads-s4000', name: 'Moore Threads MTT S4000', vendor: 'Moore Threads', peakTflops: 100, memoryGiB: 48, memoryBandwidthTBs: 0.77,
    chipsPerNode: 8, intraNodeGBs: 120, interNodeGBs: 25, tdpW: 450,
    source: 'secondary reports', confidence: 'reported', assumed: ['intraNodeGBs', 'interNodeGBs'],
    notes: `MTLink ~240 GB/s taken as both directions. ${ASSUMED_ROCE}.`,
  },
  {
    id: 'metax-c500', name: 'MetaX C500', vendor: 'MetaX', peakTflops: 280, memoryGiB: 64, memoryBandwidthTBs: 1.8,
    chipsPerNode: 8, intraNodeGBs: 448, interNodeGBs: 25, tdpW: 350,
    source: 'secondary reports', confidence: 'reported', assumed: ['intraNodeGBs', 'interNodeGBs', 'tdpW'],
    notes: `MetaXLink full mesh of 8, 896 GB/s taken as both directions. ${ASSUMED_ROCE}.`,
  },
  {
    id: 'biren-br100', name: 'Biren BR100', vendor: 'Biren', peakTflops: 1000, memoryGiB: 64, memoryBandwidthTBs: 1.8,
    chipsPerNode: 8, intraNodeGBs: null, interNodeGBs: 25, tdpW: 550,
    source: 'launch claims (nominal peak); memory bandwidth quoted 1.6-2.0 TB/s', confidence: 'low', assumed: ['interNodeGBs', 'memoryBandwidthTBs'],
    notes: `BLink bandwidth not published: set intraNodeGBs. ${ASSUMED_ROCE}.`,
  },
  {
    id: 'kunlunxin-p800', name: 'Kunlunxin P800', vendor: 'Kunlunxin', peakTflops: null, memoryGiB: null, memoryBandwidthTBs: null,
    chipsPerNode: null, intraNodeGBs: null, interNodeGBs: null, tdpW: null,
    source: 'no public figures found', confidence: 'unknown',
    notes: 'Every field must be supplied by the user (--chip-set or a JSON chip file with "base": "kunlunxin-p800").',
  },
  {
    id: 'a100-sxm-80gb', name: 'NVIDIA A100 SXM 80GB', vendor: 'NVIDIA', peakTflops: 312, memoryGiB: 80, memoryBandwidthTBs: 2.04,
    chipsPerNode: 8, intraNodeGBs: 300, interNodeGBs: 25, tdpW: 400, source: 'NVIDIA datasheet', confidence: 'vendor',
    notes: 'NVLink3 600 GB/s bidirectional; one 200 Gb/s HDR InfiniBand port per GPU.',
  },
  {
    id: 'h100-sxm', name: 'NVIDIA H100 SXM', vendor: 'NVIDIA', peakTflops: 989.5, memoryGiB: 80, memoryBandwidthTBs: 3.35,
    chipsPerNode: 8, intraNodeGBs: 450, interNodeGBs: 50, tdpW: 700, source: 'NVIDIA datasheet', confidence: 'vendor',
    notes: 'NVLink4 900 GB/s bidirectional; one 400 Gb/s port per GPU.',
  },
  {
    id: 'h800-sxm', name: 'NVIDIA H800 SXM', vendor: 'NVIDIA', peakTflops: 989.5, memoryGiB: 80, memoryBandwidthTBs: 3.35,
    chipsPerNode: 8, intraNodeGBs: 200, interNodeGBs: 50, tdpW: 700, source: 'secondary reports', confidence: 'reported',
    notes: 'NVLink 400 GB/s bidirectional (about 160 GB/s achieved in one report); ~50 GB/s IB achieved.',
  },
  {
    id: 'h20', name: 'NVIDIA H20', vendor: 'NVIDIA', peakTflops: 148, memoryGiB: 96, memoryBandwidthTBs: 4.0,
    chipsPerNode: 8, intraNodeGBs: 450, interNodeGBs: 25, tdpW: 400, source: 'secondary reports', confidence: 'reported',
    assumed: ['interNodeGBs', 'tdpW'], notes: `NVLink 900 GB/s bidirectional. ${ASSUMED_ROCE}.`,
  },
  {
    id: 'h200-sxm', name: 'NVIDIA H200 SXM', vendor: 'NVIDIA', peakTflops: 989.5, memoryGiB: 141, memoryBandwidthTBs: 4.8,
    chipsPerNode: 8, intraNodeGBs: 450, interNodeGBs: 50, tdpW: 700, source: 'NVIDIA datasheet', confidence: 'vendor',
    notes: 'NVLink4 900 GB/s bidirectional; one 400 Gb/s port per GPU.',
  },
  {
    id: 'mi300x', name: 'AMD Instinct MI300X', vendor: 'AMD', peakTflops: 1307, memoryGiB: 192, memoryBandwidthTBs: 5.3,
    chipsPerNode: 8, intraNodeGBs: 448, interNodeGBs: 50, tdpW: 750, source: 'AMD datasheet', confidence: 'vendor',
    assumed: ['interNodeGBs'], notes: 'Infinity Fabric 896 GB/s aggregate taken as both directions; scale-out assumed 400 Gb/s per GPU.',
  },
];

/** Aliases users are likely to type. */
const ALIASES: Record<string, string> = {
  '910b': 'ascend-910b', '910c': 'ascend-910c', '910': 'ascend-910', a100: 'a100-sxm-80gb', h100: 'h100-sxm', h800: 'h800-sxm',
  h200: 'h200-sxm', 'a100-sxm4-80gb': 'a100-sxm-80gb',
};

export class PlanError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

export function catalogIds(): string[] {
  return CATALOG.map((c) => c.id);
}

/** Looks a chip up by id (or alias); throws a PlanError listing the catalog when unknown. */
export function catalogChip(id: string): Chip {
  const key = id.trim().toLowerCase();
  const c = CATALOG.find((x) => x.id === key || x.name.toLowerCase() === key) ?? CATALOG.find((x) => x.id === ALIASES[key]);
  if (!c) {
    const near = CATALOG.filter((x) => x.id.includes(key) || key.includes(x.id.split('-')[1] ?? '#')).map((x) => x.id);
    throw new PlanError(
      `unknown chip '${id}'.${near.length ? ` Did you mean ${near.join(', ')}?` : ''} Known chips: ${catalogIds().join(', ')}. ` +
        'Or describe your own in a JSON file (--chip my-chip.json) with the fields peakTflops, memoryGiB, memoryBandwidthTBs, ' +
        'chipsPerNode, intraNodeGBs, interNodeGBs (optionally "base": "<catalog id>" to start from a known chip).',
    );
  }
  return { ...c, assumed: c.assumed ? [...c.assumed] : undefined };
}

function tryCatalog(name: string): Chip | null {
  try {
    return name ? catalogChip(name) : null;
  } catch {
    return null;
  }
}

const NUMERIC_FIELDS = ['peakTflops', 'memoryGiB', 'usableMemoryGiB', 'memoryBandwidthTBs', 'chipsPerNode', 'intraNodeGBs', 'interNodeGBs', 'tdpW'] as const;
const TEXT_FIELDS = ['id', 'name', 'vendor', 'source', 'notes'] as const;

/**
 * Builds a chip from a JSON object: either a full description or `{"base": "<catalog id>", ...overrides}`.
 * The planner-io `hardware` object (name, peakTflops, ...) is accepted as is.
 */
export function chipFromJson(obj: unknown, origin = 'chip JSON'): Chip {
  if (typeof obj === 'string') return catalogChip(obj);
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new PlanError(`${origin}: expected an object describing a chip or a catalog id string`);
  const o = obj as Record<string, unknown>;
  const known = typeof o['base'] !== 'string' ? tryCatalog(String(o['id'] ?? o['name'] ?? '')) : null;
  const base: Chip = typeof o['base'] === 'string'
    ? catalogChip(o['base'])
    : known ? { ...known, source: `user (${origin}), missing fields from the catalog entry ${known.id}` } : {
        id: String(o['id'] ?? o['name'] ?? 'custom').toLowerCase().replace(/\s+/g, '-'), name: String(o['name'] ?? o['id'] ?? 'custom chip'),
        vendor: 'user', peakTflops: null, memoryGiB: null, memoryBandwidthTBs: null, chipsPerNode: null, intraNodeGBs: null,
        interNodeGBs: null, tdpW: null, source: `user (${origin})`, confidence: 'vendor',
      };
  const overrides: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (k !== 'base') overrides[k] = v;
  return overrideChip(base, overrides, origin);
}

/** Applies field overrides (numbers or numeric strings) to a chip; unknown fields are errors. */
export function overrideChip(chip: Chip, overrides: Record<string, unknown>, origin = 'override'): Chip {
  const out: Chip = { ...chip, assumed: chip.assumed ? [...chip.assumed] : undefined };
  const touched: string[] = [];
  for (const [k, v] of Object.entries(overrides)) {
    if ((NUMERIC_FIELDS as readonly string[]).includes(k)) {
      const n = v === null ? null : Number(v);
      if (n !== null && (!Number.isFinite(n) || n <= 0)) throw new PlanError(`${origin}: ${k} must be a positive number, got ${JSON.stringify(v)}`);
      (out as unknown as Record<string, unknown>)[k] = n;
      touched.push(k);
    } else if ((TEXT_FIELDS as readonly string[]).includes(k)) {
      (out as unknown as Record<string, unknown>)[k] = String(v);
    } else if (k === 'confidence') {
      out.confidence = String(v) as Confidence;
    } else if (k === 'assumed') {
      out.assumed = Array.isArray(v) ? v.map(String) : undefined;
    } else {
      throw new PlanError(`${origin}: unknown chip field '${k}'. Fields: ${[...NUMERIC_FIELDS, ...TEXT_FIELDS, 'confidence', 'base'].join(', ')}`);
    }
  }
  if (touched.length) {
    out.assumed = out.assumed?.filter((f) => !touched.includes(f));
    if (out.source && !out.source.includes('user override')) out.source = `${out.source}; user override of ${touched.join(', ')}`;
  }
  return out;
}

/** Parses `field=value,field=value` (the --chip-set flag). */
export function parseOverrides(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new PlanError(`--chip-set expects field=value pairs separated by commas, got '${part}'`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/**
 * Share of a chip's memory kept free when no usable figure is given (driver context, communicator
 * buffers, allocator caching beyond the modelled fragmentation): every chip gets headroom, not only
 * the Ascend entries whose frameworks cap usable memory at 55 of 64 GB.
 */
export const MEMORY_HEADROOM = 0.05;

/** Checks that every figure the cost model needs is known; the message says which fields to set. */
export function resolveChip(chip: Chip): ResolvedChip {
  const need = ['peakTflops', 'memoryGiB', 'memoryBandwidthTBs', 'chipsPerNode', 'intraNodeGBs', 'interNodeGBs'] as const;
  const missing = need.filter((k) => chip[k] === null || chip[k] === undefined);
  if (missing.length) {
    throw new PlanError(
      `chip '${chip.id}' has no figure for ${missing.join(', ')} (${chip.source}). Supply them with ` +
        `--chip-set ${missing.map((m) => `${m}=...`).join(',')} or a JSON chip file {"base": "${chip.id}", ${missing.map((m) => `"${m}": ...`).join(', ')}}.`,
    );
  }
  const usable = chip.usableMemoryGiB ?? chip.memoryGiB! * (1 - MEMORY_HEADROOM);
  return { ...(chip as ResolvedChip), usableMemoryGiB: Number(Math.min(usable, chip.memoryGiB!).toFixed(2)) };
}

export function isAscend(chip: Chip): boolean {
  return chip.vendor === 'Huawei' || chip.id.startsWith('ascend');
}

export const ASCEND_PEAK_CAVEAT = ASCEND_MFU_NOTE;
