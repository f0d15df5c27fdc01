// A run's metrics.jsonl as columns (one Float64Array per numeric field, NaN where a line lacks it;
// an array field such as rankStepS becomes rankStepS.0, rankStepS.1, ...) plus its event lines.
// Lines that are not JSON (a torn last line, a foreign line) are counted and skipped.
import { isRunEvent, type RunEvent } from './run-record.js';

export class MetricsColumns {
  rows = 0;
  private capacity = 1024;
  private readonly columns = new Map<string, Float64Array>();
  readonly events: RunEvent[] = [];
  /** lines that were neither a step line nor an event */
  badLines = 0;

  private column(name: string): Float64Array {
    let c = this.columns.get(name);
    if (!c) {
      c = new Float64Array(this.capacity).fill(NaN);
      this.columns.set(name, c);
    }
    return c;
  }

  /** A column's values of the rows so far (NaN where absent; all NaN for a field never seen). */
  values(name: string): Float64Array {
    const c = this.columns.get(name);
    return c ? c.subarray(0, this.rows) : new Float64Array(this.rows).fill(NaN);
  }

  /** Field names seen, in first-seen order. */
  fields(): string[] {
    return [...this.columns.keys()];
  }

  /** Adds one parsed line: a step line (numeric `step`) or an event. */
  add(r: unknown): void {
    if (isRunEvent(r)) {
      this.events.push(r);
      return;
    }
    if (typeof r !== 'object' || r === null || typeof (r as { step?: unknown }).step !== 'number') {
      this.badLines++;
      return;
    }
    if (this.rows === this.capacity) {
      this.capacity *= 2;
      for (const [name, c] of this.columns) {
        const next = new Float64Array(this.capacity).fill(NaN, c.length);
        next.set(c);
        this.columns.set(name, next);
      }
    }
    for (const [k, v] of Object.entries(r)) {
      if (typeof v === 'number') this.column(k)[this.rows] = v;
      else if (Array.isArray(v)) for (let i = 0; i < v.length; i++) if (typeof v[i] === 'number') this.column(`${k}.${i}`)[this.rows] = v[i] as number;
    }
    this.rows++;
  }

  /** Adds the lines of bytes[from, to), which must end at a line end. */
  addLines(bytes: Uint8Array, from = 0, to = bytes.length): void {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // memchr-fast indexOf, direct decoding
    for (let pos = from; pos < to; ) {
      let end = buf.indexOf(0x0a, pos);
      if (end < 0 || end > to) end = to;
      if (end > pos) {
        let r: unknown;
        try {
          r = JSON.parse(buf.toString('utf8', pos, end));
        } catch {
          r = undefined;
        }
        this.add(r);
      }
      pos = end + 1;
    }
  }
}
