// The process mesh's arithmetic, in the Megatron-Core convention, with no communication: validating a
// layout against the world size, rank → coordinates, and the rank groups of each parallel dimension.
//
// Dense grid: world = tp·cp·dp·pp, rank order tp-cp-dp-pp (tp fastest):
//   rank = tp_i + tp·(cp_i + cp·(dp_i + dp·pp_i)).
// Expert grid (MoE layers): the same ranks re-factored as etp-ep-edp-pp (etp fastest), with expert
// parallelism folded inside dp·cp: edp = tp·cp·dp / (etp·ep); etp defaults to tp (Megatron's
// expert_tensor_parallel_size default).
// A group of a dimension (or of several, e.g. dp·cp) is the set of ranks whose other coordinates are
// equal, ordered by the grouped coordinates (first dimension fastest) — Megatron's
// generate_masked_orthogonal_rank_groups.

/** Degrees of parallelism; field names match src/plan/layout.ts. */
export interface MeshLayout {
  tp: number;
  cp: number;
  dp: number;
  pp: number;
  ep: number;
  /** expert tensor parallel degree; defaults to tp */
  etp?: number;
}

export interface MeshCoords {
  tp: number;
  cp: number;
  dp: number;
  pp: number;
  etp: number;
  ep: number;
  edp: number;
}

/** The groups a mesh has, each named by the dimensions it spans. */
export const MESH_GROUPS = ['tp', 'cp', 'dp', 'pp', 'dpCp', 'mp', 'etp', 'ep', 'edp'] as const;
export type MeshGroupName = (typeof MESH_GROUPS)[number];

const DENSE = ['tp', 'cp', 'dp', 'pp'] as const;
const EXPERT = ['etp', 'ep', 'edp', 'pp'] as const;
/** which grid a group lives on and which of its dimensions it spans */
const GROUP_DIMS: Readonly<Record<MeshGroupName, { expert: boolean; dims: readonly string[] }>> = {
  tp: { expert: false, dims: ['tp'] },
  cp: { expert: false, dims: ['cp'] },
  dp: { expert: false, dims: ['dp'] },
  pp: { expert: false, dims: ['pp'] },
  dpCp: { expert: false, dims: ['cp', 'dp'] },
  mp: { expert: false, dims: ['tp', 'pp'] },
  etp: { expert: true, dims: ['etp'] },
  ep: { expert: true, dims: ['ep'] },
  edp: { expert: true, dims: ['edp'] },
};

/** A validated layout with every degree resolved. */
export interface ResolvedMesh {
  tp: number;
  cp: number;
  dp: number;
  pp: number;
  ep: number;
  etp: number;
  edp: number;
  world: number;
}

function divisors(n: number): number[] {
  return [...Array(n).keys()].map((i) => i + 1).filter((d) => n % d === 0);
}

/** Checks a layout against the world size; one-line errors say what would fit. */
export function resolveMesh(layout: MeshLayout, worldSize: number): ResolvedMesh {
  const etp = layout.etp ?? layout.tp;
  for (const [k, v] of Object.entries({ ...layout, etp })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`mesh: --${k} ${v} must be a positive integer`);
  }
  const { tp, cp, dp, pp, ep } = layout;
  const world = tp * cp * dp * pp;
  if (world !== worldSize) {
    const dpFit = worldSize % (tp * cp * pp) === 0 ? `; --dp ${worldSize / (tp * cp * pp)} would fit` : '';
    throw new RangeError(`mesh: tp·cp·dp·pp = ${tp}·${cp}·${dp}·${pp} = ${world} ranks, but the job has ${worldSize}: launch ${world} ranks or change the layout${dpFit}`);
  }
  const dense = tp * cp * dp;
  if (dense % (etp * ep) !== 0) {
    const fits = dense % etp === 0 ? `; --ep ${divisors(dense / etp).join('|')} would fit` : `; etp must divide ${dense}`;
    throw new RangeError(`mesh: expert parallelism folds inside tp·cp·dp = ${dense}, which etp·ep = ${etp}·${ep} does not divide${fits}`);
  }
  return { tp, cp, dp, pp, ep, etp, edp: dense / (etp * ep), world };
}

function sizesOf(m: ResolvedMesh, expert: boolean): number[] {
  return expert ? EXPERT.map((d) => m[d]) : DENSE.map((d) => m[d]);
}

function digits(rank: number, sizes: readonly number[]): number[] {
  const out: number[] = [];
  for (const s of sizes) {
    out.push(rank % s);
    rank = Math.floor(rank / s);
  }
  return out;
}

export function meshCoords(m: ResolvedMesh, rank: number): MeshCoords {
  if (!Number.isInteger(rank) || rank < 0 || rank >= m.world) throw new RangeError(`mesh: rank ${rank} is outside 0..${m.world - 1}`);
  const [tp, cp, dp, pp] = digits(rank, sizesOf(m, false)) as [number, number, number, number];
  const [etp, ep, edp] = digits(rank, sizesOf(m, true)) as [number, number, number, number];
  return { tp, cp, dp, pp, etp, ep, edp };
}

/**
 * Where `rank` sits in group `name`: color numbers the group (equal for its members), key is the
 * rank's position inside it — the arguments of MPI_Comm_split.
 */
export function groupPosition(m: ResolvedMesh, name: MeshGroupName, rank: number): { color: number; key: number; size: number } {
  const { expert, dims } = GROUP_DIMS[name];
  const names: readonly string[] = expert ? EXPERT : DENSE;
  const sizes = sizesOf(m, expert);
  const d = digits(rank, sizes);
  let color = 0, colorScale = 1, key = 0, keyScale = 1;
  names.forEach((dim, i) => {
    if (dims.includes(dim)) {
      key += d[i]! * keyScale;
      keyScale *= sizes[i]!;
    } else {
      color += d[i]! * colorScale;
      colorScale *= sizes[i]!;
    }
  });
  return { color, key, size: keyScale };
}

/** Every group of `name`, each as its world ranks in group order. */
export function meshGroups(m: ResolvedMesh, name: MeshGroupName): number[][] {
  const groups: number[][] = [];
  for (let r = 0; r < m.world; r++) {
    const { color, key } = groupPosition(m, name, r);
    (groups[color] ??= [])[key] = r;
  }
  return groups;
}
