// The shape-only communicator of a dry run (`zili train --backend meta --dry-run-rank R`): one
// process pretends to be rank R of a large world. Its collectives check their buffers' dtypes and
// element counts as a real transport would, move no data (buffers keep what they hold: on the meta
// backend, nothing), resolve at once (no peer is waited for) and count the bytes this rank would put
// on the wire, per mesh dimension. `split` with a mesh group's name answers as the other ranks
// would (the group's size and this rank's position come from src/dist/mesh-layout.ts), so the
// parallel wrappers build their groups exactly as under mpirun. One exception to "no data": an
// all-to-all of host arrays (the sizes an MoE dispatch exchanges before moving its rows) fills every
// received block with the block this rank sends itself — the peers are assumed to run the same
// program on the same shapes (the meta backend's balanced routing), so each expert rank receives the
// rows a real run with balanced routing would send it, and computes and sends back as many.
//
// Bytes sent by this rank, with n the group size and B the bytes of the buffer named (ring algorithms,
// as NCCL runs them and the planner's collectives model, src/plan/collectives.ts, assumes):
//   allReduce(B)                  2·(n−1)/n·B
//   reduceScatter(input of B)     (n−1)/n·B
//   allGather(output of B)        (n−1)/n·B
//   broadcast(B)                  B, except on the rank before the root in the ring (it sends nothing)
//   send(B)                       B;  recv: 0
//   allToAllV                     the elements sent to the other ranks × element bytes
//   barrier, split, groups of 1   0
import { elementCount, commDType } from './buffers.js';
import { Tensor } from '../tensor/tensor.js';
import type { HostArray } from '../tensor/dtype.js';
import type { CommBuffer, CommDType, CommReduceOp, Communicator, World } from './communicator.js';
import { type MeshGroupName, MESH_GROUPS, type ResolvedMesh, groupPosition } from './mesh-layout.js';

/** The dimension a mesh group's traffic counts under (the JSON's keys: tp, dp, pp, ep, cp). */
const DIMENSION_OF: Readonly<Record<MeshGroupName, string>> = {
  tp: 'tp', etp: 'tp', cp: 'cp', dp: 'dp', dpCp: 'dp', edp: 'dp', pp: 'pp', ep: 'ep', mp: 'mp',
};

const ELEMENT_BYTES: Readonly<Record<CommDType, number>> = { f32: 4, bf16: 2, i32: 4 };

export type CommOp = 'allReduce' | 'reduceScatter' | 'allGather' | 'broadcast' | 'send' | 'allToAllV';

/** Bytes sent (and calls made) per dimension and per collective, shared by a shape world and its groups. */
export class ByteCounter {
  private readonly bytes = new Map<string, number>();
  private readonly calls = new Map<string, number>();

  add(dimension: string, op: CommOp, bytes: number): void {
    this.bytes.set(dimension, (this.bytes.get(dimension) ?? 0) + bytes);
    const k = `${dimension}.${op}`;
    this.bytes.set(k, (this.bytes.get(k) ?? 0) + bytes);
    this.calls.set(k, (this.calls.get(k) ?? 0) + 1);
  }

  /** Bytes sent over `dimension` (tp, dp, pp, ep, cp, mp, world), or over one collective of it ('tp.allReduce'). */
  sent(key: string): number {
    return this.bytes.get(key) ?? 0;
  }

  /** Every (dimension, collective) with its calls and bytes, for a breakdown. */
  entries(): { dimension: string; op: CommOp; calls: number; bytes: number }[] {
    return [...this.calls].map(([k, calls]) => {
      const [dimension, op] = k.split('.') as [string, CommOp];
      return { dimension, op, calls, bytes: this.bytes.get(k)! };
    });
  }

  reset(): void {
    this.bytes.clear();
    this.calls.clear();
  }
}

export class ShapeCommunicator implements World {
  readonly kind = 'shape' as const;
  private step = -1;

  /**
   * A group of `size` ranks in which this process is `rank`; its traffic counts under `dimension`.
   * `mesh` (the world only) lets `split` answer for the mesh's groups.
   */
  constructor(
    readonly name: string,
    readonly rank: number,
    readonly size: number,
    readonly worldRank: number,
    readonly dimension: string,
    readonly counter: ByteCounter,
    private readonly mesh: ResolvedMesh | null = null,
  ) {
    if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size)
      throw new RangeError(`shape communicator '${name}': rank ${rank} is outside 0..${size - 1}`);
  }

  /** Rank `rank` of the world of `mesh` (tp·cp·dp·pp ranks); its own traffic counts under the one dimension above 1, else 'world'. */
  static world(mesh: ResolvedMesh, rank: number, counter = new ByteCounter()): ShapeCommunicator {
    const used = (['tp', 'cp', 'dp', 'pp'] as const).filter((d) => mesh[d] > 1);
    return new ShapeCommunicator('world', rank, mesh.world, rank, used.length === 1 ? used[0]! : 'world', counter, mesh);
  }

  private what(op: string): string {
    return `${op} on shape communicator '${this.name}' (rank ${this.rank} of ${this.size})`;
  }

  private count(op: CommOp, bytes: number): Promise<void> {
    if (this.size > 1) this.counter.add(this.dimension, op, bytes);
    return Promise.resolve();
  }

  private bytesOf(buf: CommBuffer, what: string): number {
    return elementCount(buf) * ELEMENT_BYTES[commDType(buf, what)];
  }

  private sameDType(a: CommBuffer, b: CommBuffer, what: string): void {
    const da = commDType(a, what), db = commDType(b, what);
    if (da !== db) throw new TypeError(`${what}: input is ${da} but output is ${db}; both must have the same dtype`);
  }

  private checkPeer(peer: number, role: string, what: string): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.size) throw new RangeError(`${what}: ${role} rank ${peer} is outside 0..${this.size - 1}`);
  }

  private ring(bytes: number): number {
    return ((this.size - 1) / this.size) * bytes;
  }

  allReduce(buf: CommBuffer, _op: CommReduceOp = 'sum'): Promise<void> {
    return this.count('allReduce', 2 * this.ring(this.bytesOf(buf, this.what('allReduce'))));
  }

  reduceScatter(input: CommBuffer, output: CommBuffer, _op: CommReduceOp = 'sum'): Promise<void> {
    const what = this.what('reduceScatter');
    this.sameDType(input, output, what);
    if (elementCount(input) !== this.size * elementCount(output))
      throw new RangeError(`${what}: input has ${elementCount(input)} elements, expected size·output = ${this.size}·${elementCount(output)}`);
    return this.count('reduceScatter', this.ring(this.bytesOf(input, what)));
  }

  reduceScatterSync(input: CommBuffer, output: CommBuffer, op: CommReduceOp = 'sum'): void {
    void this.reduceScatter(input, output, op);
  }

  allGather(input: CommBuffer, output: CommBuffer): Promise<void> {
    const what = this.what('allGather');
    this.sameDType(input, output, what);
    if (elementCount(output) !== this.size * elementCount(input))
      throw new RangeError(`${what}: output has ${elementCount(output)} elements, expected size·input = ${this.size}·${elementCount(input)}`);
    return this.count('allGather', this.ring(this.bytesOf(output, what)));
  }

  allGatherSync(input: CommBuffer, output: CommBuffer): void {
    void this.allGather(input, output);
  }

  broadcast(buf: CommBuffer, root: number): Promise<void> {
    const what = this.what('broadcast');
    this.checkPeer(root, 'root', what);
    const last = (root + this.size - 1) % this.size;
    return this.count('broadcast', this.rank === last ? 0 : this.bytesOf(buf, what));
  }

  send(buf: CommBuffer, dst: number, _tag = 0): Promise<void> {
    const what = this.what('send');
    this.checkPeer(dst, 'destination', what);
    return this.count('send', this.bytesOf(buf, what));
  }

  recv(buf: CommBuffer, src: number, _tag = 0): Promise<void> {
    const what = this.what('recv');
    this.checkPeer(src, 'source', what);
    commDType(buf, what);
    return Promise.resolve();
  }

  allToAllV(input: CommBuffer, sendCounts: readonly number[], output: CommBuffer, recvCounts: readonly number[]): Promise<void> {
    const what = this.what('allToAllV');
    this.sameDType(input, output, what);
    for (const [counts, buf, name] of [[sendCounts, input, 'sendCounts'], [recvCounts, output, 'recvCounts']] as const) {
      if (counts.length !== this.size) throw new RangeError(`${what}: ${name} has ${counts.length} entries, expected one per rank (${this.size})`);
      const total = counts.reduce((a, b) => a + b, 0);
      if (total > elementCount(buf)) throw new RangeError(`${what}: ${name} add up to ${total} elements but the buffer holds only ${elementCount(buf)}`);
    }
    const others = sendCounts.reduce((a, c, j) => (j === this.rank ? a : a + c), 0);
    if (!(input instanceof Tensor)) this.receiveAsSent(input, sendCounts, output as typeof input, recvCounts);
    return this.count('allToAllV', others * ELEMENT_BYTES[commDType(input, what)]);
  }

  /** Host arrays: every received block is a copy of the block this rank sends itself (symmetric peers), where the sizes agree. */
  private receiveAsSent(input: HostArray, sendCounts: readonly number[], output: HostArray, recvCounts: readonly number[]): void {
    const own = sendCounts[this.rank]!;
    const from = sendCounts.slice(0, this.rank).reduce((a, b) => a + b, 0);
    const block = input.subarray(from, from + own);
    for (let q = 0, at = 0; q < this.size; at += recvCounts[q]!, q++) if (recvCounts[q] === own) output.set(block as never, at);
  }

  barrier(): Promise<void> {
    return Promise.resolve();
  }

  /** Only the world splits, and only into the mesh's groups (whose members it can compute without the other ranks). */
  async split(color: number, key: number, name: string): Promise<Communicator | null> {
    const what = this.what('split');
    if (!this.mesh) throw new Error(`${what}: a dry run splits only the world; split '${name}' from the world`);
    if (!(MESH_GROUPS as readonly string[]).includes(name))
      throw new Error(`${what}: cannot tell the other ranks' colors for a group named '${name}'; a dry run knows the mesh's groups (${MESH_GROUPS.join(', ')})`);
    const g = groupPosition(this.mesh, name as MeshGroupName, this.worldRank);
    if (color !== g.color || key !== g.key)
      throw new Error(`${what}: '${name}' split with color ${color}, key ${key}, but the mesh puts rank ${this.worldRank} at color ${g.color}, key ${g.key}`);
    return new ShapeCommunicator(name, g.key, g.size, this.worldRank, DIMENSION_OF[name as MeshGroupName], this.counter);
  }

  setStep(step: number): void {
    this.step = step;
  }

  abort(message: string, exitCode = 1): never {
    process.stderr.write(`${message} (dry run of rank ${this.worldRank}, step ${this.step})\n`);
    process.exit(exitCode);
  }

  async finalize(): Promise<void> {}
}
