// ProcessMesh: the sub-communicators of every parallel dimension for this rank, split from the world
// per mesh-layout.ts (Megatron-Core convention). Passed explicitly to whoever communicates; a
// dimension of degree 1 gets a local communicator (no MPI call, no thread).
import type { Communicator } from './communicator.js';
import { LocalCommunicator } from './local.js';
import { MESH_GROUPS, type MeshCoords, type MeshGroupName, type MeshLayout, type ResolvedMesh, groupPosition, meshCoords, resolveMesh } from './mesh-layout.js';

export class ProcessMesh {
  private constructor(
    readonly layout: ResolvedMesh,
    readonly world: Communicator,
    readonly coords: MeshCoords,
    private readonly groups: Readonly<Record<MeshGroupName, Communicator>>,
  ) {}

  /** Validates the layout against the world size and splits every group (collective over the world). */
  static async create(world: Communicator, layout: MeshLayout): Promise<ProcessMesh> {
    const m = resolveMesh(layout, world.size);
    const entries = await Promise.all(
      MESH_GROUPS.map(async (name): Promise<[MeshGroupName, Communicator]> => {
        const { color, key, size } = groupPosition(m, name, world.rank);
        if (size === 1) return [name, new LocalCommunicator(name, world.rank)];
        const comm = await world.split(color, key, name);
        if (!comm || comm.size !== size || comm.rank !== key)
          throw new Error(`mesh: split of '${name}' gave rank ${comm?.rank} of ${comm?.size}, expected ${key} of ${size}`);
        return [name, comm];
      }),
    );
    return new ProcessMesh(m, world, meshCoords(m, world.rank), Object.fromEntries(entries) as Record<MeshGroupName, Communicator>);
  }

  /** tensor parallel */
  get tp(): Communicator { return this.groups.tp; }
  /** context parallel */
  get cp(): Communicator { return this.groups.cp; }
  /** data parallel (replicas of the dense layers) */
  get dp(): Communicator { return this.groups.dp; }
  /** pipeline parallel */
  get pp(): Communicator { return this.groups.pp; }
  /** data × context parallel: where dense gradients are reduced when cp > 1 */
  get dpCp(): Communicator { return this.groups.dpCp; }
  /** model parallel (tensor × pipeline): where a global gradient norm is summed */
  get mp(): Communicator { return this.groups.mp; }
  /** expert tensor parallel */
  get etp(): Communicator { return this.groups.etp; }
  /** expert parallel (MoE all-to-all) */
  get ep(): Communicator { return this.groups.ep; }
  /** expert data parallel: where expert gradients are reduced */
  get edp(): Communicator { return this.groups.edp; }
}
