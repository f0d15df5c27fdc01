// How long a rank waited during a training step: the time its JavaScript thread sat idle (awaiting a
// collective, a pipeline transfer or a peer's bubble: the communicator progresses on a native thread)
// plus the time spent inside blocking collectives (reduceScatterSync/allGatherSync hold the thread).
// The rest of the step is compute (and host work). One clock per rank, read around each step.
import { performance } from 'node:perf_hooks';
import type { Communicator } from './communicator.js';

/** Time sources (milliseconds): a monotonic clock and the event loop's idle time so far. */
export interface WaitSources {
  now(): number;
  idleMs(): number;
}

const processSources: WaitSources = { now: () => performance.now(), idleMs: () => performance.eventLoopUtilization().idle };

export class StepWaitClock {
  private idleAtStart: number;
  private blockedMs = 0;

  constructor(private readonly src: WaitSources = processSources) {
    this.idleAtStart = src.idleMs();
  }

  /** Times the blocking collectives of `comm` (wraps its own methods; other communicators are untouched). */
  watch(comm: Communicator): this {
    for (const k of ['reduceScatterSync', 'allGatherSync'] as const) {
      const f = comm[k];
      if (!f) continue;
      comm[k] = (...args: Parameters<NonNullable<Communicator[typeof k]>>) => {
        const t0 = this.src.now();
        try {
          return f.apply(comm, args as never);
        } finally {
          this.blockedMs += this.src.now() - t0;
        }
      };
    }
    return this;
  }

  /** Starts a step. */
  start(): void {
    this.idleAtStart = this.src.idleMs();
    this.blockedMs = 0;
  }

  /** Seconds waited since start(): idle event loop plus blocking collectives. */
  waitedS(): number {
    return (this.src.idleMs() - this.idleAtStart + this.blockedMs) / 1000;
  }
}
