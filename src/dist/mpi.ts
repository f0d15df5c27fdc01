// The Open MPI communicator: each call hands typed arrays to the native binding (native/mpi/), which
// runs it on the communicator's own thread and resolves the Promise when MPI is done with the buffers.
import type { CommBuffer, CommDType, CommReduceOp, Communicator, World } from './communicator.js';
import { BaseCommunicator, type CallTicket, type HostCommArray } from './base.js';
import type { MpiBinding, NativeComm } from './mpi-native.js';

const DTYPE_CODE: Readonly<Record<CommDType, number>> = { f32: 0, bf16: 1, i32: 2 };
const OP_CODE: Readonly<Record<CommReduceOp, number>> = { sum: 0, max: 1, min: 2 };

export class MpiCommunicator extends BaseCommunicator {
  readonly kind = 'mpi' as const;
  readonly rank: number;
  readonly size: number;
  protected readonly handle: unknown;

  constructor(
    protected readonly mpi: MpiBinding,
    comm: NativeComm,
    readonly name: string,
    readonly worldRank: number,
  ) {
    super();
    this.handle = comm.handle;
    this.rank = comm.rank;
    this.size = comm.size;
  }

  protected hostAllReduce(buf: HostCommArray, dtype: CommDType, op: CommReduceOp): Promise<void> {
    return this.mpi.allReduce(this.handle, DTYPE_CODE[dtype], OP_CODE[op], buf);
  }
  protected hostReduceScatter(input: HostCommArray, output: HostCommArray, dtype: CommDType, op: CommReduceOp): Promise<void> {
    return this.mpi.reduceScatter(this.handle, DTYPE_CODE[dtype], OP_CODE[op], input, output);
  }
  protected hostAllGather(input: HostCommArray, output: HostCommArray, dtype: CommDType): Promise<void> {
    return this.mpi.allGather(this.handle, DTYPE_CODE[dtype], 0, input, output);
  }
  reduceScatterSync(input: CommBuffer, output: CommBuffer, op: CommReduceOp = 'sum'): void {
    this.reduceScatterBlocking(input, output, op, (i, o, dtype) => this.mpi.reduceScatterSync(this.handle, DTYPE_CODE[dtype], OP_CODE[op], i, o));
  }
  allGatherSync(input: CommBuffer, output: CommBuffer): void {
    this.allGatherBlocking(input, output, (i, o, dtype) => this.mpi.allGatherSync(this.handle, DTYPE_CODE[dtype], 0, i, o));
  }
  /** The collective just handed to the binding: its worker runs it now; done/wait read its completion counter. */
  protected override startedTicket(): CallTicket {
    const seq = this.mpi.lastSeq(this.handle);
    return { done: () => this.mpi.doneSeq(this.handle) >= seq, wait: () => this.mpi.waitSeq(this.handle, seq) };
  }
  protected hostBroadcast(buf: HostCommArray, dtype: CommDType, root: number): Promise<void> {
    return this.mpi.broadcast(this.handle, DTYPE_CODE[dtype], root, buf);
  }
  protected hostSend(buf: HostCommArray, dtype: CommDType, dst: number, tag: number): Promise<void> {
    return this.mpi.send(this.handle, DTYPE_CODE[dtype], dst, tag, buf);
  }
  protected hostRecv(buf: HostCommArray, dtype: CommDType, src: number, tag: number): Promise<void> {
    return this.mpi.recv(this.handle, DTYPE_CODE[dtype], src, tag, buf);
  }
  protected hostAllToAllV(input: HostCommArray, sendCounts: Int32Array, output: HostCommArray, recvCounts: Int32Array, dtype: CommDType): Promise<void> {
    return this.mpi.allToAllV(this.handle, DTYPE_CODE[dtype], input, sendCounts, output, recvCounts);
  }
  protected transportBarrier(): Promise<void> {
    return this.mpi.barrier(this.handle);
  }
  protected async transportSplit(color: number, key: number, name: string): Promise<Communicator | null> {
    const c = await this.mpi.split(this.handle, color, key, name);
    return c === null ? null : new MpiCommunicator(this.mpi, c, name, this.worldRank);
  }
  expedite(src?: number, tag?: number): void {
    if (src === undefined || tag === undefined) this.mpi.hurry?.(this.handle);
    else this.mpi.hurry?.(this.handle, src, tag);
  }
  /** How many of this communicator's pending sends and receives are expedited (tests). */
  urgentCount(): number {
    return this.mpi.urgent?.(this.handle) ?? 0;
  }
  setStep(step: number): void {
    this.mpi.setStep(step);
  }
  abort(message: string, exitCode = 1): never {
    return this.mpi.abort(`zili: rank ${this.worldRank}: ${message}`, exitCode);
  }
}

/** MPI_COMM_WORLD plus the job's lifecycle: finalize at the end, abort the job when this rank fails. */
export class MpiWorld extends MpiCommunicator implements World {
  private finalized = false;

  constructor(mpi: MpiBinding, comm: NativeComm) {
    super(mpi, comm, 'world', comm.rank);
    // A rank that exits with an error (or with calls still in flight) ends the whole job at once,
    // instead of leaving the other ranks blocked in a collective until the watchdog fires.
    // Node prints an uncaught error only after the 'exit' handlers, and the abort below ends the
    // process inside them: print it here first, so the reason a rank failed is not lost.
    process.on('uncaughtExceptionMonitor', (err) => {
      process.stderr.write(`zili: rank ${this.rank}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    });
    process.on('exit', (code) => {
      if (this.finalized) return;
      const pending = this.mpi.pending();
      if (code === 0 && pending === 0) this.finalizeNow();
      else this.mpi.abort(`zili: rank ${this.rank} ${code !== 0 ? `exited with code ${code}` : `exited with ${pending} communication call(s) still pending`}; aborting the job`, code || 1);
    });
  }

  async finalize(): Promise<void> {
    if (this.finalized) return;
    await this.barrier();
    this.finalizeNow();
  }

  private finalizeNow(): void {
    this.finalized = true;
    this.mpi.finalize();
  }
}
