// `zili train --tensorboard DIR`: the run's metrics as TensorBoard scalars, in a new event file per
// process. Its first point is preceded by a SessionLog START at that step, so TensorBoard drops the
// points a crashed run wrote after the checkpoint a resumed run continues from (each step once), and
// a process that starts past step 1 marks `events/restart` there. Event lines (skipped steps, ...)
// come through event() from whoever produces them.
import type { StepMetrics } from '../train/metrics.js';
import { EventFileWriter, scalarEvent, sessionStartEvent } from './event-file.js';
import { type MetricsSink, type RunEvent, stepScalars } from './run-record.js';

export class TensorBoardSink implements MetricsSink {
  private writer: EventFileWriter | null = null;
  private readonly dir: string;
  private readonly now: () => number;

  /** `now`: wall-clock seconds (for tests). The file is made at the first record (a run that fails its checks leaves none). */
  constructor(dir: string, now: () => number = () => Date.now() / 1000) {
    this.dir = dir;
    this.now = now;
  }

  /** the event file (null before the first record) */
  get file(): string | null {
    return this.writer?.file ?? null;
  }

  private start(step: number): EventFileWriter {
    if (this.writer) return this.writer;
    this.writer = new EventFileWriter(this.dir, new Date(this.now() * 1000));
    this.writer.append(sessionStartEvent(this.now(), step, `zili run (re)started at step ${step}`));
    if (step > 1) this.writer.append(scalarEvent(this.now(), step, [['events/restart', 1]])); // a resumed run
    return this.writer;
  }

  step(record: StepMetrics): void {
    this.start(record.step).append(scalarEvent(this.now(), record.step, stepScalars(record)));
  }

  /** `events/<name>` at the event's step (value: its count, or 1). */
  event(e: RunEvent): void {
    const value = typeof e.count === 'number' && Number.isFinite(e.count) ? e.count : 1;
    this.start(e.step).append(scalarEvent(this.now(), e.step, [[`events/${e.event}`, value]]));
  }

  close(): void {
    this.writer?.close();
  }
}
