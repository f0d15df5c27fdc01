// Follows one run folder as it grows: metrics.jsonl read incrementally (complete lines only; a torn
// last line waits for its end; a file replaced or cut, as --resume does, is read again from the
// start), checkpoint folders, the run's configuration (newest checkpoint's manifest) and restarts
// (event lines, or the elapsed time falling back to zero when a resumed process starts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MANIFEST_FILE, parseStepDirName } from '../train/checkpoint.js';
import { MetricsColumns } from './metrics-columns.js';

export const METRICS_FILE = 'metrics.jsonl';

export class RunFolderError extends Error {
  readonly userFacing = true;
}

export interface RunConfig {
  /** the checkpoint the configuration was read from */
  checkpoint: string;
  modelConfig: Record<string, unknown>;
  trainConfig: Record<string, unknown>;
}

export interface PollResult {
  /** the file was replaced or cut: everything was read again */
  reset: boolean;
  /** rows before this index were there before the poll */
  fromRow: number;
  /** checkpoint steps or the configuration changed */
  infoChanged: boolean;
}

export class RunWatch {
  readonly dir: string;
  readonly metricsFile: string;
  readonly name: string;
  data = new MetricsColumns();
  /** bytes of the metrics file consumed (complete lines) */
  offset = 0;
  /** the file's size at the last poll */
  size = 0;
  private ino = -1;
  /** checkpoint steps seen (kept when later pruned) */
  readonly checkpoints = new Set<number>();
  config: RunConfig | null = null;

  /** `target`: a run folder, or a metrics file (its folder is the run folder). */
  constructor(target: string) {
    const abs = path.resolve(target);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch {
      throw new RunFolderError(`run folder ${target} does not exist; name the --out folder of a zili train run (it holds ${METRICS_FILE})`);
    }
    this.dir = st.isDirectory() ? abs : path.dirname(abs);
    this.metricsFile = st.isDirectory() ? path.join(abs, METRICS_FILE) : abs;
    this.name = path.basename(this.dir);
  }

  /** Reads what was appended since the last poll, at most `maxBytes` of it (the rest next time). */
  poll(maxBytes = 64 << 20): PollResult {
    const infoChanged = this.pollCheckpoints();
    let st: fs.Stats;
    try {
      st = fs.statSync(this.metricsFile);
    } catch {
      const reset = this.data.rows > 0;
      if (reset) this.restart();
      return { reset, fromRow: 0, infoChanged };
    }
    let reset = false;
    if (st.ino !== this.ino || st.size < this.offset) {
      reset = this.ino !== -1;
      this.restart();
      this.ino = st.ino;
    }
    this.size = st.size;
    const fromRow = reset ? 0 : this.data.rows;
    const want = Math.min(st.size - this.offset, maxBytes);
    if (want > 0) {
      const buf = new Uint8Array(want);
      const fd = fs.openSync(this.metricsFile, 'r');
      let got = 0;
      try {
        while (got < want) {
          const n = fs.readSync(fd, buf, got, want - got, this.offset + got);
          if (n === 0) break;
          got += n;
        }
      } finally {
        fs.closeSync(fd);
      }
      const end = buf.lastIndexOf(0x0a, got - 1) + 1; // complete lines only
      if (end > 0) {
        this.data.addLines(buf, 0, end);
        this.offset += end;
      } else if (got === maxBytes) throw new RunFolderError(`${this.metricsFile}: a line longer than ${maxBytes} bytes; is this a metrics file?`);
    }
    return { reset, fromRow, infoChanged };
  }

  /** Bytes of complete lines not read yet (an initial load in progress). */
  backlog(): number {
    return Math.max(0, this.size - this.offset);
  }

  private restart(): void {
    this.data = new MetricsColumns();
    this.offset = 0;
    this.ino = -1;
  }

  /** Checkpoint steps: folders seen, and checkpoint events. */
  checkpointSteps(): number[] {
    const out = new Set(this.checkpoints);
    for (const e of this.data.events) if (e.event === 'checkpoint') out.add(e.step);
    return [...out].sort((a, b) => a - b);
  }

  /** Steps where the run restarted: restart events, and rows whose elapsed time fell back. */
  restarts(): number[] {
    const out = new Set<number>();
    for (const e of this.data.events) if (e.event === 'restart') out.add(e.step);
    const step = this.data.values('step');
    const elapsed = this.data.values('elapsedS');
    for (let i = 1; i < step.length; i++) if (elapsed[i]! < elapsed[i - 1]!) out.add(step[i]!);
    return [...out].sort((a, b) => a - b);
  }

  private pollCheckpoints(): boolean {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return false;
    }
    let changed = false;
    let newest = -1;
    for (const n of names) {
      const s = parseStepDirName(n);
      if (s === null || !fs.existsSync(path.join(this.dir, n, MANIFEST_FILE))) continue;
      if (!this.checkpoints.has(s)) (this.checkpoints.add(s), (changed = true));
      newest = Math.max(newest, s);
    }
    if (newest >= 0 && this.config?.checkpoint !== names.find((n) => parseStepDirName(n) === newest)) {
      const dir = names.find((n) => parseStepDirName(n) === newest)!;
      try {
        const m = JSON.parse(fs.readFileSync(path.join(this.dir, dir, MANIFEST_FILE), 'utf8')) as { modelConfig?: Record<string, unknown>; trainConfig?: Record<string, unknown> };
        if (m.modelConfig) {
          this.config = { checkpoint: dir, modelConfig: m.modelConfig, trainConfig: m.trainConfig ?? {} };
          changed = true;
        }
      } catch {
        // a manifest being replaced right now: next poll
      }
    }
    return changed;
  }
}
