// A progress bar for long work: redrawn in place on a terminal (throttled to ~10 Hz), plain periodic lines in logs (CI).
import { formatDuration, formatValue } from './format.js';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface ProgressOptions {
  /** units of work in all (e.g. the run's total steps) */
  total: number;
  /** shown before the bar */
  label?: string;
  stream?: ProgressStream;
  /** force terminal (in-place) or log (line) mode; default: stream.isTTY */
  tty?: boolean;
  /** bar width in characters (default 20) */
  width?: number;
  /** terminal mode: least time between redraws (default 100 ms) */
  redrawMs?: number;
  /** log mode: print a line each time this percent of the work is crossed (default 10) */
  everyPercent?: number;
  /** log mode: and at least this often while work progresses (default 10 s) */
  everyMs?: number;
  /** clock in milliseconds (for tests) */
  now?: () => number;
}

export type ProgressFields = Record<string, number | string | undefined>;

/** `[#####.....]`: `width` characters, filled in proportion to done/total. */
export function renderBar(done: number, total: number, width: number): string {
  const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  const filled = Math.floor(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/** `key value` pairs separated by spaces; undefined values are left out. */
export function renderFields(fields: ProgressFields): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k} ${formatValue(v!)}`)
    .join(' ');
}

export class Progress {
  readonly total: number;
  private readonly label: string;
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly width: number;
  private readonly redrawMs: number;
  private readonly everyPercent: number;
  private readonly everyMs: number;
  private readonly now: () => number;
  private startTime: number | null = null;
  private startDone = 0;
  private lastDraw = -Infinity;
  private lastBucket = -1;
  private lastLineLength = 0;
  private done = 0;
  private fields: ProgressFields = {};
  private finished = false;
  /** the last update has not been drawn yet */
  private dirty = false;

  constructor(opts: ProgressOptions) {
    this.total = opts.total;
    this.label = opts.label ?? '';
    this.stream = opts.stream ?? process.stderr;
    this.tty = opts.tty ?? this.stream.isTTY === true;
    this.width = opts.width ?? 20;
    this.redrawMs = opts.redrawMs ?? 100;
    this.everyPercent = opts.everyPercent ?? 10;
    this.everyMs = opts.everyMs ?? 10_000;
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * Seconds left at the rate measured since the first update (so a resumed run, or a slow first
   * step, does not skew it), or NaN before there is a rate.
   */
  eta(): number {
    if (this.startTime === null) return NaN;
    const elapsed = (this.now() - this.startTime) / 1000;
    const progressed = this.done - this.startDone;
    if (progressed <= 0 || elapsed <= 0) return NaN;
    return ((this.total - this.done) * elapsed) / progressed;
  }

  /** The status line: `label [#####.....] 120/300 loss 3.412 tok/s 1523 ETA 1m12s`. */
  line(): string {
    const parts = [];
    if (this.label) parts.push(this.label);
    parts.push(renderBar(this.done, this.total, this.width), `${this.done}/${this.total}`);
    const f = renderFields(this.fields);
    if (f) parts.push(f);
    if (this.done < this.total) parts.push(`ETA ${formatDuration(this.eta())}`);
    else if (this.startTime !== null) parts.push(`in ${formatDuration((this.now() - this.startTime) / 1000)}`);
    return parts.join(' ');
  }

  /** Records progress (done units, of total) and the fields to show; draws when due. */
  update(done: number, fields: ProgressFields = {}): void {
    if (this.finished) return;
    const t = this.now();
    if (this.startTime === null) {
      this.startTime = t;
      this.startDone = done;
      this.lastBucket = this.bucket(done);
    }
    this.done = done;
    this.fields = fields;
    this.dirty = true;
    if (this.tty) {
      if (t - this.lastDraw >= this.redrawMs || done >= this.total) this.draw(t);
    } else {
      const b = this.bucket(done);
      if (b > this.lastBucket || t - this.lastDraw >= this.everyMs) {
        this.lastBucket = b;
        this.draw(t);
      }
    }
  }

  /** Prints a message above the bar (terminal) or as its own line (log), without losing the bar. */
  log(message: string): void {
    if (this.tty && this.lastLineLength > 0) {
      this.stream.write(`\r\x1b[K${message}\n`);
      this.stream.write(this.line());
    } else this.stream.write(`${message}\n`);
  }

  /** Draws the final state and ends the line. */
  finish(fields?: ProgressFields): void {
    if (this.finished) return;
    if (fields) {
      this.fields = fields;
      this.dirty = true;
    }
    const t = this.now();
    if (this.startTime === null) this.startTime = t;
    if (this.tty) {
      this.draw(t);
      this.stream.write('\n');
    } else if (this.dirty || this.lastLineLength === 0) this.draw(t);
    this.finished = true;
  }

  private bucket(done: number): number {
    if (this.total <= 0 || this.everyPercent <= 0) return 0;
    return Math.floor((done / this.total) * (100 / this.everyPercent) + 1e-9);
  }

  private draw(t: number): void {
    const text = this.line();
    this.lastDraw = t;
    this.dirty = false;
    this.lastLineLength = text.length;
    this.stream.write(this.tty ? `\r${text}\x1b[K` : `${text}\n`);
  }
}
