// Goodput: the share of wall time that advanced training. A ledger of one run (or, in the supervisor,
// of all its attempts): time in useful steps (each step counted once, in the attempt whose result was
// kept), checkpoint stalls, steps recomputed after a rollback or restart (and their time), and the
// rest (start-up, restarts, backoff, evaluation). Printed at the end and written to the metrics as a
// `goodput` event line.
import type { RunEvent } from '../observe/run-record.js';
import { formatDuration, formatPercent } from './format.js';

export interface GoodputSummary {
  wallS: number;
  usefulS: number;
  checkpointStallS: number;
  recomputedSteps: number;
  recomputedS: number;
  /** wall time neither in kept steps, stalls nor recomputed steps: start-up, restarts, backoff, evaluation */
  otherS: number;
  restarts: number;
  skippedSteps: number;
  goodput: number;
}

export class GoodputLedger {
  /** step -> seconds, of steps whose result is kept */
  private readonly steps = new Map<number, number>();
  checkpointStallS = 0;
  recomputedSteps = 0;
  recomputedS = 0;
  restarts = 0;
  skippedSteps = 0;

  /** steps whose result is kept */
  get keptSteps(): number {
    return this.steps.size;
  }

  step(step: number, seconds: number): void {
    this.steps.set(step, seconds);
  }

  /** The run went back to the checkpoint of `step`: later steps are lost, and will be recomputed. */
  rollbackTo(step: number): void {
    for (const [s, t] of this.steps)
      if (s > step) {
        this.recomputedSteps++;
        this.recomputedS += t;
        this.steps.delete(s);
      }
  }

  summary(wallS: number): GoodputSummary {
    let usefulS = 0;
    for (const t of this.steps.values()) usefulS += t;
    const otherS = Math.max(0, wallS - usefulS - this.checkpointStallS - this.recomputedS);
    return {
      wallS,
      usefulS,
      checkpointStallS: this.checkpointStallS,
      recomputedSteps: this.recomputedSteps,
      recomputedS: this.recomputedS,
      otherS,
      restarts: this.restarts,
      skippedSteps: this.skippedSteps,
      goodput: wallS > 0 ? Math.min(1, usefulS / wallS) : 0,
    };
  }
}

export function formatGoodput(g: GoodputSummary): string {
  return (
    `goodput ${formatPercent(g.goodput)}: wall ${formatDuration(g.wallS)}, useful steps ${formatDuration(g.usefulS)}, checkpoint stalls ${formatDuration(g.checkpointStallS)}, ` +
    `${g.recomputedSteps} step(s) recomputed (${formatDuration(g.recomputedS)}), ${g.restarts} restart(s), ${g.skippedSteps} step(s) skipped, start-up/restarts/other ${formatDuration(g.otherS)}`
  );
}

export function goodputEvent(step: number, g: GoodputSummary): RunEvent {
  return { event: 'goodput', step, ...g };
}
