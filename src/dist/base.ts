// What every Communicator implementation shares: argument checks (one-line errors at the call),
// host views of the buffers (zero copy or staged, see buffers.ts), and issue order — a call is
// handed to the transport only after the previous call on the same communicator was, even when its
// buffers must first be staged from an asynchronous device, so every rank's transport sees the same
// order. A call on host buffers with nothing ahead of it waiting to start is handed to the transport
// synchronously, at the call (not in a later microtask): its transfer then progresses while the
// caller keeps computing synchronously (a backward issuing gradient buckets, a forward prefetching
// ZeRO-3 weights), and waitSync/completed see it without the event loop. Implementations only move
// host typed arrays.
import type { CommBuffer, CommDType, CommReduceOp, Communicator } from './communicator.js';
import { Tensor } from '../tensor/tensor.js';
import type { HostBuffer } from '../backend/host-allocator.js';
import { type HostCommArray, type HostView, commDType, elementCount, hostView, zeroCopy } from './buffers.js';

export type { HostCommArray };

/** A collective handed to the transport: whether its transfer is complete, and a blocking wait for it. */
export interface CallTicket {
  done(): boolean;
  wait(): void;
}
const COMPLETED: CallTicket = { done: () => true, wait: () => {} };

export abstract class BaseCommunicator implements Communicator {
  abstract readonly kind: 'local' | 'mpi';
  abstract readonly name: string;
  abstract readonly rank: number;
  abstract readonly size: number;
  abstract readonly worldRank: number;
  private issued: Promise<unknown> = Promise.resolve();
  /** calls issued but not yet handed to the transport (a blocking call must not overtake them) */
  private waitingToStart = 0;
  /** collectives started at their call, by the Promise they returned */
  private readonly tickets = new WeakMap<Promise<unknown>, CallTicket>();

  protected abstract hostAllReduce(buf: HostCommArray, dtype: CommDType, op: CommReduceOp): Promise<void>;
  protected abstract hostReduceScatter(input: HostCommArray, output: HostCommArray, dtype: CommDType, op: CommReduceOp): Promise<void>;
  protected abstract hostAllGather(input: HostCommArray, output: HostCommArray, dtype: CommDType): Promise<void>;
  protected abstract hostBroadcast(buf: HostCommArray, dtype: CommDType, root: number): Promise<void>;
  protected abstract hostSend(buf: HostCommArray, dtype: CommDType, dst: number, tag: number): Promise<void>;
  protected abstract hostRecv(buf: HostCommArray, dtype: CommDType, src: number, tag: number): Promise<void>;
  protected abstract hostAllToAllV(input: HostCommArray, sendCounts: Int32Array, output: HostCommArray, recvCounts: Int32Array, dtype: CommDType): Promise<void>;
  protected abstract transportBarrier(): Promise<void>;
  protected abstract transportSplit(color: number, key: number, name: string): Promise<Communicator | null>;
  abstract setStep(step: number): void;
  /** The ticket of the collective the transport was just handed; the default: the transport completed it when it started it (a world of one process). */
  protected startedTicket(): CallTicket {
    return COMPLETED;
  }
  abstract abort(message: string, exitCode?: number): never;

  allReduce(buf: CommBuffer, op: CommReduceOp = 'sum'): Promise<void> {
    this.checkOp(op, 'allReduce');
    const dtype = commDType(buf, this.what('allReduce'));
    return this.ordered([[buf, 'inout']], ([v]) => this.hostAllReduce(v!.data, dtype, op));
  }

  reduceScatter(input: CommBuffer, output: CommBuffer, op: CommReduceOp = 'sum'): Promise<void> {
    const what = this.what('reduceScatter');
    this.checkOp(op, 'reduceScatter');
    const dtype = this.sameDType(input, output, what);
    if (elementCount(input) !== this.size * elementCount(output))
      throw new RangeError(`${what}: input has ${elementCount(input)} elements, expected size·output = ${this.size}·${elementCount(output)}`);
    return this.ordered([[input, 'in'], [output, 'out']], ([i, o]) => this.hostReduceScatter(i!.data, o!.data, dtype, op));
  }

  allGather(input: CommBuffer, output: CommBuffer): Promise<void> {
    const what = this.what('allGather');
    const dtype = this.sameDType(input, output, what);
    if (elementCount(output) !== this.size * elementCount(input))
      throw new RangeError(`${what}: output has ${elementCount(output)} elements, expected size·input = ${this.size}·${elementCount(input)}`);
    return this.ordered([[input, 'in'], [output, 'out']], ([i, o]) => this.hostAllGather(i!.data, o!.data, dtype));
  }

  broadcast(buf: CommBuffer, root: number): Promise<void> {
    const what = this.what('broadcast');
    this.checkPeer(root, 'root', what);
    const dtype = commDType(buf, what);
    return this.ordered([[buf, this.rank === root ? 'in' : 'out']], ([v]) => this.hostBroadcast(v!.data, dtype, root));
  }

  send(buf: CommBuffer, dst: number, tag = 0): Promise<void> {
    const what = this.what('send');
    this.checkPeer(dst, 'destination', what);
    this.checkTag(tag, what);
    const dtype = commDType(buf, what);
    return this.ordered([[buf, 'in']], ([v]) => this.hostSend(v!.data, dtype, dst, tag), false);
  }

  recv(buf: CommBuffer, src: number, tag = 0): Promise<void> {
    const what = this.what('recv');
    this.checkPeer(src, 'source', what);
    this.checkTag(tag, what);
    const dtype = commDType(buf, what);
    return this.ordered([[buf, 'out']], ([v]) => this.hostRecv(v!.data, dtype, src, tag), false);
  }

  allToAllV(input: CommBuffer, sendCounts: readonly number[], output: CommBuffer, recvCounts: readonly number[]): Promise<void> {
    const what = this.what('allToAllV');
    const dtype = this.sameDType(input, output, what);
    const sc = this.counts(sendCounts, elementCount(input), 'sendCounts', 'input', what);
    const rc = this.counts(recvCounts, elementCount(output), 'recvCounts', 'output', what);
    return this.ordered([[input, 'in'], [output, 'inout']], ([i, o]) => this.hostAllToAllV(i!.data, sc, o!.data, rc, dtype));
  }

  /** Blocking reduce-scatter (see Communicator); the transport runs it with `run` on the host arrays. */
  protected reduceScatterBlocking(input: CommBuffer, output: CommBuffer, op: CommReduceOp, run: (i: HostCommArray, o: HostCommArray, dtype: CommDType) => void): void {
    const what = this.what('reduceScatterSync');
    this.checkOp(op, 'reduceScatterSync');
    const dtype = this.sameDType(input, output, what);
    if (elementCount(input) !== this.size * elementCount(output))
      throw new RangeError(`${what}: input has ${elementCount(input)} elements, expected size·output = ${this.size}·${elementCount(output)}`);
    this.checkBlocking(what, input, output);
    run(syncView(input), syncView(output), dtype);
  }

  /** Blocking all-gather (see Communicator). */
  protected allGatherBlocking(input: CommBuffer, output: CommBuffer, run: (i: HostCommArray, o: HostCommArray, dtype: CommDType) => void): void {
    const what = this.what('allGatherSync');
    const dtype = this.sameDType(input, output, what);
    if (elementCount(output) !== this.size * elementCount(input))
      throw new RangeError(`${what}: output has ${elementCount(output)} elements, expected size·input = ${this.size}·${elementCount(input)}`);
    this.checkBlocking(what, input, output);
    run(syncView(input), syncView(output), dtype);
  }

  private checkBlocking(what: string, ...bufs: CommBuffer[]): void {
    if (!zeroCopy(...bufs)) throw new TypeError(`${what}: blocking calls need host buffers (cpu or reference backend); use the Promise form on this backend`);
    if (this.waitingToStart > 0)
      throw new Error(`${what}: ${this.waitingToStart} earlier call(s) on this communicator have not started yet; await them (or use the Promise form) so every rank keeps the same order`);
  }

  waitSync(pending: Promise<void>): void {
    this.ticket(pending, 'waitSync').wait();
  }

  completed(pending: Promise<void>): boolean {
    return this.ticket(pending, 'completed').done();
  }

  private ticket(pending: Promise<void>, what: string): CallTicket {
    const t = this.tickets.get(pending);
    if (!t)
      throw new Error(`${this.what(what)}: that call is not a collective of this communicator started at its call (it was staged from a device buffer, or queued behind a call waiting to start); await its Promise instead`);
    return t;
  }

  barrier(): Promise<void> {
    return this.ordered([], () => this.transportBarrier());
  }

  split(color: number, key: number, name: string): Promise<Communicator | null> {
    if (!Number.isInteger(color) || !Number.isInteger(key)) throw new TypeError(`${this.what('split')}: color and key must be integers (got ${color}, ${key})`);
    return this.ordered([], () => this.transportSplit(color, key, name));
  }

  /**
   * Runs `start` (which hands the call to the transport) after the previous call's start, then
   * commits staged outputs; at once when nothing is waiting to start and no buffer needs staging.
   */
  private ordered<T>(bufs: [CommBuffer, 'in' | 'out' | 'inout'][], start: (views: HostView[]) => Promise<T>, collective = true): Promise<T> {
    if (this.waitingToStart === 0 && zeroCopy(...bufs.map(([b]) => b))) {
      let done: Promise<T>;
      try {
        done = start(bufs.map(([b]) => ({ data: syncView(b), dtype: commDType(b, this.name), commit: () => {} })));
      } catch (e) {
        return Promise.reject(e);
      }
      if (collective) this.tickets.set(done, this.startedTicket());
      return done;
    }
    this.waitingToStart++;
    const started = this.issued.then(async () => {
      try {
        const views = await Promise.all(bufs.map(([b, mode]) => hostView(b, mode, this.name)));
        return { done: start(views), views };
      } finally {
        this.waitingToStart--;
      }
    });
    this.issued = started.catch(() => undefined);
    return started.then(async ({ done, views }) => {
      const r = await done;
      for (const v of views) v.commit();
      return r;
    });
  }

  protected what(op: string): string {
    return `${op} on communicator '${this.name}' (rank ${this.rank} of ${this.size})`;
  }

  private checkOp(op: CommReduceOp, name: string): void {
    if (op !== 'sum' && op !== 'max' && op !== 'min') throw new TypeError(`${this.what(name)}: unknown reduction '${String(op)}'; use sum, max or min`);
  }

  private checkPeer(peer: number, role: string, what: string): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.size) throw new RangeError(`${what}: ${role} rank ${peer} is outside 0..${this.size - 1}`);
  }

  private checkTag(tag: number, what: string): void {
    if (!Number.isInteger(tag) || tag < 0 || tag > 32767) throw new RangeError(`${what}: tag ${tag} must be an integer in 0..32767`);
  }

  private sameDType(a: CommBuffer, b: CommBuffer, what: string): CommDType {
    const da = commDType(a, what);
    const db = commDType(b, what);
    if (da !== db) throw new TypeError(`${what}: input is ${da} but output is ${db}; both must have the same dtype`);
    return da;
  }

  private counts(counts: readonly number[], available: number, name: string, buf: string, what: string): Int32Array {
    if (counts.length !== this.size) throw new RangeError(`${what}: ${name} has ${counts.length} entries, expected one per rank (${this.size})`);
    let total = 0;
    for (const c of counts) {
      if (!Number.isInteger(c) || c < 0 || c > 0x7fffffff) throw new RangeError(`${what}: ${name} holds ${c}; counts must be non-negative integers`);
      total += c;
    }
    if (total > available) throw new RangeError(`${what}: ${name} add up to ${total} elements but ${buf} holds only ${available}`);
    return Int32Array.from(counts);
  }
}

/** The typed array of a host buffer (checked zero-copy by the caller). */
function syncView(buf: CommBuffer): HostCommArray {
  return (buf instanceof Tensor ? (buf.buf as HostBuffer).data : buf) as HostCommArray;
}
