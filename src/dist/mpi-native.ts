// Typed loader for the MPI binding (native/mpi/build/Release/zili_mpi.node, a separate node-gyp
// project built by scripts/setup when libopenmpi-dev is installed). Loaded only by openWorld when the
// job has more than one rank, so a single process never needs libmpi.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../util/paths.js';

/** An MPI communicator as the binding hands it out. */
export interface NativeComm {
  readonly handle: unknown;
  readonly rank: number;
  readonly size: number;
}

type Typed = Float32Array | Uint16Array | Int32Array;

/** dtype codes: 0 f32, 1 bf16 (u16), 2 i32; op codes: 0 sum, 1 max, 2 min. */
export interface MpiBinding {
  init(chunkBytes: number, timeoutMs: number): NativeComm;
  allReduce(comm: unknown, dtype: number, op: number, buf: Typed): Promise<void>;
  broadcast(comm: unknown, dtype: number, root: number, buf: Typed): Promise<void>;
  send(comm: unknown, dtype: number, dst: number, tag: number, buf: Typed): Promise<void>;
  recv(comm: unknown, dtype: number, src: number, tag: number, buf: Typed): Promise<void>;
  reduceScatter(comm: unknown, dtype: number, op: number, input: Typed, output: Typed): Promise<void>;
  allGather(comm: unknown, dtype: number, unused: number, input: Typed, output: Typed): Promise<void>;
  /** blocking forms: return once the communicator's worker has run the collective */
  reduceScatterSync(comm: unknown, dtype: number, op: number, input: Typed, output: Typed): void;
  allGatherSync(comm: unknown, dtype: number, unused: number, input: Typed, output: Typed): void;
  /** sequence number of the last collective issued on comm (each starts on its worker at the call) */
  lastSeq(comm: unknown): number;
  /** every collective of comm up to this sequence number has completed */
  doneSeq(comm: unknown): number;
  /** blocks until collective `seq` of comm has completed (its Promise resolves later, on the event loop) */
  waitSeq(comm: unknown, seq: number): void;
  /** JavaScript is about to wait for comm's receive from peer with tag (without them: every send and receive pending now): its p2p thread polls it without backoff until it completes; nothing when it already has */
  hurry?(comm: unknown, peer?: number, tag?: number): void;
  /** how many of comm's pending sends and receives are hurried (tests) */
  urgent?(comm: unknown): number;
  allToAllV(comm: unknown, dtype: number, input: Typed, sendCounts: Int32Array, output: Typed, recvCounts: Int32Array): Promise<void>;
  barrier(comm: unknown): Promise<void>;
  split(comm: unknown, color: number, key: number, name: string): Promise<NativeComm | null>;
  setStep(step: number): void;
  setTimeout(ms: number): void;
  pending(): number;
  abort(message: string, exitCode: number): never;
  finalize(): void;
}

export function mpiBindingPath(): string {
  return join(repoRoot(), 'native', 'mpi', 'build', 'Release', 'zili_mpi.node');
}

/** Loads the binding, or throws one line saying how to build it. */
export function loadMpiBinding(why: string): MpiBinding {
  const path = mpiBindingPath();
  if (!existsSync(path))
    throw new Error(`${why}, but the MPI binding is not built (${path} is missing): install Open MPI (apt-get install libopenmpi-dev openmpi-bin) and run scripts/setup`);
  try {
    return createRequire(join(repoRoot(), 'package.json'))(path) as MpiBinding;
  } catch (e) {
    throw new Error(`${why}, but the MPI binding ${path} does not load (${(e as Error).message.split('\n')[0]}): rebuild it with scripts/setup`);
  }
}
