// Per-step training metrics as JSON lines (`--metrics FILE`): appended, one write per line, so a crash loses no written line.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic-fs.js';

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  tokensPerSec: number;
  [field: string]: unknown;
}

export interface MetricsWriterOptions {
  /**
   * Resuming from this step: lines of later steps (written after the checkpoint by the run that
   * crashed or was stopped) are dropped first, so the file holds each step once.
   */
  resumeStep?: number;
  /** also fsync after every line (survives power loss, not only a crash of the process) */
  fsync?: boolean;
}

/** Reads a metrics file's lines as objects (a torn last line is ignored). */
function readLines(file: string): Record<string, unknown>[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line torn by a crash mid-write
    }
  }
  return out;
}

/** Reads a metrics file's step lines: one object per complete line (a torn last line and event lines are left out). */
export function readMetrics(file: string): StepMetrics[] {
  return readLines(file).filter((r) => typeof r['event'] !== 'string') as StepMetrics[];
}

/** Reads a metrics file's event lines (`{"event": ..., "step": N, ...}`). */
export function readMetricEvents(file: string): { event: string; step: number; [field: string]: unknown }[] {
  return readLines(file).filter((r) => typeof r['event'] === 'string') as { event: string; step: number }[];
}

/** Cuts a torn last line (a crash mid-write) so the next line starts on a line of its own. */
function dropTornTail(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return;
    const last = new Uint8Array(1);
    fs.readSync(fd, last, 0, 1, size - 1);
    if (last[0] === 0x0a) return;
    const chunk = new Uint8Array(Math.min(size, 1 << 20));
    const from = size - chunk.length;
    fs.readSync(fd, chunk, 0, chunk.length, from);
    const nl = chunk.lastIndexOf(0x0a);
    fs.ftruncateSync(fd, nl < 0 ? (from === 0 ? 0 : size) : from + nl + 1);
  } finally {
    fs.closeSync(fd);
  }
}

export class MetricsWriter {
  readonly file: string;
  private fd: number | null;
  private readonly fsync: boolean;

  constructor(file: string, opts: MetricsWriterOptions = {}) {
    this.file = file;
    this.fsync = opts.fsync ?? false;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    if (fs.existsSync(file)) {
      dropTornTail(file);
      if (opts.resumeStep !== undefined) {
        const keep = fs
          .readFileSync(file, 'utf8')
          .split('\n')
          .filter((line) => {
            if (!line.trim()) return false;
            try {
              const r = JSON.parse(line) as { step?: unknown };
              return !(typeof r.step === 'number' && r.step > opts.resumeStep!);
            } catch {
              return true;
            }
          });
        writeFileAtomic(file, keep.length ? keep.join('\n') + '\n' : '');
      }
    }
    this.fd = fs.openSync(file, 'a');
  }

  /** Appends one line; it is in the operating system's hands (survives a crash of this process) when this returns. */
  write(record: StepMetrics): void {
    if (this.fd === null) throw new Error(`metrics file ${this.file} is closed`);
    for (const k of ['step', 'loss', 'lr', 'tokensPerSec'] as const)
      if (typeof record[k] !== 'number') throw new TypeError(`metrics record needs a number '${k}', got ${JSON.stringify(record[k])}`);
    const buf = new TextEncoder().encode(JSON.stringify(record) + '\n');
    for (let at = 0; at < buf.length; ) at += fs.writeSync(this.fd, buf, at, buf.length - at);
    if (this.fsync) fs.fsyncSync(this.fd);
  }

  /** Appends an event line (`{"event": ..., "step": N, ...}`: a restart, a skipped step, a rollback, goodput). */
  event(e: { event: string; step: number; [field: string]: unknown }): void {
    if (this.fd === null) throw new Error(`metrics file ${this.file} is closed`);
    const buf = new TextEncoder().encode(JSON.stringify(e) + '\n');
    for (let at = 0; at < buf.length; ) at += fs.writeSync(this.fd, buf, at, buf.length - at);
    if (this.fsync) fs.fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
