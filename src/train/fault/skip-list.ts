// The steps a run skips (`<out>/skip-steps.json`): steps whose batches are read and discarded without
// an update, because a loss spike was rolled back at them. Kept in the run folder, not only in
// checkpoints, because the checkpoint a rollback returns to predates the decision: a run resumed from
// any checkpoint skips the same steps, so it stays reproducible.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../util/atomic-fs.js';

export const SKIP_FILE = 'skip-steps.json';

export class SkipList {
  private readonly steps: Set<number>;

  private constructor(
    private readonly file: string,
    steps: number[],
  ) {
    this.steps = new Set(steps);
  }

  /** The run folder's list (empty when there is none yet). */
  static open(out: string): SkipList {
    const file = path.join(out, SKIP_FILE);
    let steps: number[] = [];
    if (fs.existsSync(file)) {
      const j = JSON.parse(fs.readFileSync(file, 'utf8')) as { steps?: unknown };
      if (!Array.isArray(j.steps) || !j.steps.every((s) => Number.isSafeInteger(s))) throw new Error(`${file} is damaged: expected {"steps": [integers]}; delete it to skip no steps`);
      steps = j.steps as number[];
    }
    return new SkipList(file, steps);
  }

  has(step: number): boolean {
    return this.steps.has(step);
  }

  get size(): number {
    return this.steps.size;
  }

  /** Adds steps; `persist` (rank 0) writes the file atomically. */
  add(steps: number[], persist: boolean): void {
    for (const s of steps) this.steps.add(s);
    if (persist) writeFileAtomic(this.file, JSON.stringify({ steps: [...this.steps].sort((a, b) => a - b) }) + '\n');
  }
}
