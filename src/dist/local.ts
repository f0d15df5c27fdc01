// The communicator of a world with one process: reductions are the identity, gathers and scatters
// copy, a send to oneself is delivered to one's own matching recv. No libmpi is loaded.
import type { CommBuffer, CommDType, CommReduceOp, Communicator, World } from './communicator.js';
import { BaseCommunicator, type HostCommArray } from './base.js';

export class LocalCommunicator extends BaseCommunicator implements World {
  readonly kind = 'local' as const;
  readonly rank = 0;
  readonly size = 1;
  /** messages sent to oneself and not yet received, per tag */
  private readonly mailbox = new Map<number, { data: HostCommArray; delivered: () => void }[]>();
  private readonly waiting = new Map<number, { buf: HostCommArray; received: () => void }[]>();
  step = -1;

  /** name: for messages; worldRank: this process's rank in the world (a local group inside a larger job) */
  constructor(readonly name = 'world', readonly worldRank = 0) {
    super();
  }

  protected async hostAllReduce(_buf: HostCommArray, _dtype: CommDType, _op: CommReduceOp): Promise<void> {}
  protected async hostReduceScatter(input: HostCommArray, output: HostCommArray): Promise<void> {
    output.set(input as never);
  }
  protected async hostAllGather(input: HostCommArray, output: HostCommArray): Promise<void> {
    output.set(input as never);
  }
  reduceScatterSync(input: CommBuffer, output: CommBuffer, op: CommReduceOp = 'sum'): void {
    this.reduceScatterBlocking(input, output, op, (i, o) => o.set(i as never));
  }
  allGatherSync(input: CommBuffer, output: CommBuffer): void {
    this.allGatherBlocking(input, output, (i, o) => o.set(i as never));
  }
  protected async hostBroadcast(_buf: HostCommArray, _dtype: CommDType, _root: number): Promise<void> {}
  protected hostSend(buf: HostCommArray, _dtype: CommDType, _dst: number, tag: number): Promise<void> {
    return new Promise((delivered) => {
      const w = this.waiting.get(tag)?.shift();
      if (w) {
        this.deliver(buf, w.buf, tag);
        w.received();
        delivered();
      } else {
        const q = this.mailbox.get(tag) ?? [];
        q.push({ data: buf, delivered: () => delivered() });
        this.mailbox.set(tag, q);
      }
    });
  }
  protected hostRecv(buf: HostCommArray, _dtype: CommDType, _src: number, tag: number): Promise<void> {
    return new Promise((received) => {
      const m = this.mailbox.get(tag)?.shift();
      if (m) {
        this.deliver(m.data, buf, tag);
        m.delivered();
        received();
      } else {
        const q = this.waiting.get(tag) ?? [];
        q.push({ buf, received: () => received() });
        this.waiting.set(tag, q);
      }
    });
  }
  protected async hostAllToAllV(input: HostCommArray, sendCounts: Int32Array, output: HostCommArray, recvCounts: Int32Array): Promise<void> {
    if (sendCounts[0] !== recvCounts[0]) throw new RangeError(`${this.what('allToAllV')}: sends ${sendCounts[0]} elements to itself but expects to receive ${recvCounts[0]}`);
    output.set(input.subarray(0, sendCounts[0]) as never);
  }
  protected async transportBarrier(): Promise<void> {}
  protected async transportSplit(color: number, _key: number, name: string): Promise<Communicator | null> {
    return color < 0 ? null : new LocalCommunicator(name, this.worldRank);
  }
  setStep(step: number): void {
    this.step = step;
  }
  abort(message: string, exitCode = 1): never {
    process.stderr.write(`${message}\n`);
    process.exit(exitCode);
  }
  async finalize(): Promise<void> {}

  private deliver(from: HostCommArray, to: HostCommArray, tag: number): void {
    if (from.length !== to.length) throw new RangeError(`${this.what('recv')}: a message of ${from.length} elements (tag ${tag}) does not fit a buffer of ${to.length}`);
    to.set(from as never);
  }
}
