// The Communicator: collective and point-to-point communication between the ranks of a job, the one
// interface the trainer (data parallel, ZeRO, and later tensor/pipeline/expert parallelism) codes
// against. Implementations: `local` (a world of one process, no libmpi) and `mpi` (Open MPI through
// the native binding in native/mpi/). Every call is nonblocking: it returns a Promise at once and the
// transfer progresses on a native thread, so JavaScript keeps enqueueing work (e.g. the rest of
// backward) while gradients travel. Calls on one communicator execute in the order they were issued
// (like a CUDA/NCCL stream), so every rank must issue the collectives of a communicator in the same
// order; different communicators progress concurrently.
//
// Buffers: a Tensor (operated on in place — zero copy for the host backends cpu/reference, staged
// through the backend's async read/write for asynchronous backends such as webgpu) or a host typed
// array (Float32Array for f32, Uint16Array for bf16 bit patterns, Int32Array for i32). The caller
// must neither touch nor dispose a buffer until the Promise of the call using it has resolved.
import type { Tensor } from '../tensor/tensor.js';
import type { HostArray } from '../tensor/dtype.js';

/** Element types that travel: f32, bf16 (u16 bit patterns), i32. */
export type CommDType = 'f32' | 'bf16' | 'i32';
export const COMM_DTYPES: readonly CommDType[] = ['f32', 'bf16', 'i32'];

/** Reductions. bf16 sum/max/min use a user-defined MPI op that widens each pair to f32 and rounds back (RNE). */
export type CommReduceOp = 'sum' | 'max' | 'min';

/** A buffer a collective reads or writes: a Tensor of any backend, or a host typed array. */
export type CommBuffer = Tensor | HostArray;

export interface Communicator {
  /** 'local', 'mpi', or 'shape' (a dry run's: shapes and byte counts, no peers; shape-communicator.ts) */
  readonly kind: 'local' | 'mpi' | 'shape';
  /** a name for messages: 'world', 'dp', 'tp', 'dp-cp', … */
  readonly name: string;
  /** this process's rank in this communicator, 0 ≤ rank < size */
  readonly rank: number;
  readonly size: number;
  /** this process's rank in the world (for messages) */
  readonly worldRank: number;

  /** buf ← op over all ranks of buf, in place. */
  allReduce(buf: CommBuffer, op?: CommReduceOp): Promise<void>;
  /** input has size·n elements (rank r's block is [r·n, (r+1)·n)); output (n elements) ← op over all ranks of block `rank`. */
  reduceScatter(input: CommBuffer, output: CommBuffer, op?: CommReduceOp): Promise<void>;
  /** output (size·n elements) ← every rank's input (n elements) in rank order. */
  allGather(input: CommBuffer, output: CommBuffer): Promise<void>;
  /** buf ← root's buf. */
  broadcast(buf: CommBuffer, root: number): Promise<void>;
  /** Sends buf to rank `dst`; resolves when buf may be reused. Messages with the same (dst, tag) arrive in order. */
  send(buf: CommBuffer, dst: number, tag?: number): Promise<void>;
  /** Receives exactly buf's element count from rank `src` into buf. */
  recv(buf: CommBuffer, src: number, tag?: number): Promise<void>;
  /**
   * Optional hint: the caller is about to wait (idle) for its receive from `src` with `tag` (without
   * them: for every send and receive pending now), so the transport may poll it without backoff until
   * it completes (the MPI transport backs off while the caller computes, not to take its core). Name
   * the receive: a receive posted ahead for later must not be polled hard through the next compute.
   */
  expedite?(src?: number, tag?: number): void;
  /**
   * Variable all-to-all (MoE token dispatch): input holds sendCounts[j] elements for rank j, packed
   * in rank order; output receives recvCounts[j] elements from rank j, packed in rank order.
   */
  allToAllV(input: CommBuffer, sendCounts: readonly number[], output: CommBuffer, recvCounts: readonly number[]): Promise<void>;
  /**
   * Blocking forms of reduceScatter/allGather for callers inside synchronous code (autograd's hooks,
   * a layer's forward): they return once the collective is done, the transport progressing it while
   * JavaScript waits. Only on host buffers (no staging), and only when no earlier call on this
   * communicator is still waiting to start; absent where a transport cannot block (the loopback).
   */
  reduceScatterSync?(input: CommBuffer, output: CommBuffer, op?: CommReduceOp): void;
  allGatherSync?(input: CommBuffer, output: CommBuffer): void;
  /**
   * Blocks until the collective that returned `pending` has completed, without the event loop (its
   * Promise still resolves later). For synchronous code that issued a call earlier and now needs its
   * result, e.g. a ZeRO-3 weight prefetch inside forward. A call on host buffers, issued with no
   * earlier call of this communicator waiting to start, is handed to the transport at the call and
   * progresses while JavaScript computes; any other call throws here (await its Promise). Absent
   * where a transport cannot block (the loopback of the tests).
   */
  waitSync?(pending: Promise<void>): void;
  /** Whether that collective has completed (same conditions as waitSync; never blocks). */
  completed?(pending: Promise<void>): boolean;
  /** Resolves when every rank has entered the barrier. */
  barrier(): Promise<void>;
  /**
   * Collective over this communicator (ordered with its other calls): ranks with the same color form
   * a new communicator, ordered by key (then by rank). color < 0 → this rank joins none (resolves null).
   */
  split(color: number, key: number, name: string): Promise<Communicator | null>;
  /** The training step the watchdog names when a collective times out (shared by all communicators of the world). */
  setStep(step: number): void;
  /** Ends the whole job at once (every rank, MPI_Abort) after printing `message` with this rank's name. Never returns. */
  abort(message: string, exitCode?: number): never;
}

/** The world: the communicator over all ranks, plus process-wide lifecycle. */
export interface World extends Communicator {
  /** Waits for every pending call, then shuts communication down (MPI_Finalize). Idempotent. */
  finalize(): Promise<void>;
}

/** Watchdog settings: a collective that has not completed after timeoutMs aborts the job. */
export interface WatchdogOptions {
  /** default 300 000 ms; env ZILI_COMM_TIMEOUT_S overrides when the caller passes nothing */
  timeoutMs: number;
}
