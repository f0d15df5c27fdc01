// Helpers of the `zili train` mpirun parity tests (launching and the skip reason: mpirun-zili.ts):
// a run's logged losses, the 1e-5 relative comparison with one process, a run copied to resume it.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readMetrics } from '../src/train/metrics.js';
import { zili } from './mpirun-zili.js';

export { mpirunSkip } from './mpirun-zili.js';

/** `zili args` on np ranks under mpirun, or as one process without mpirun when np is 0. */
export const launchZili = zili;

/** A run's per-step training losses, then its validation losses. */
export function loggedLosses(out: string): number[] {
  const m = readMetrics(path.join(out, 'metrics.jsonl'));
  return [...m.map((x) => x.loss), ...m.flatMap((x) => (typeof x['valLoss'] === 'number' ? [x['valLoss']] : []))];
}

/** Each loss within 1e-5 relative of one process's (`steps` training losses, then validation losses). */
export function assertLossesClose(got: number[], want: number[], what: string, steps = 10): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} losses logged, expected ${want.length}`);
  got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-5 * Math.abs(want[i]!), `${what}, ${i < steps ? `step ${i + 1}` : `validation ${i - steps + 1}`}: loss ${x} vs one process ${want[i]}`));
}

/** A new run folder `to` holding run `from`'s checkpoint of `step` and its metrics (to resume it under another layout). */
export function copyRunAt(from: string, step: number, to: string): void {
  const name = `step-${String(step).padStart(8, '0')}`;
  fs.mkdirSync(to);
  fs.cpSync(path.join(from, name), path.join(to, name), { recursive: true });
  fs.writeFileSync(path.join(to, 'metrics.jsonl'), fs.readFileSync(path.join(from, 'metrics.jsonl'), 'utf8'));
}

/** Runs `zili args --out out` (np ranks, 0: one process), asserts it succeeded and returns its logged losses. */
export async function trainLosses(np: number, args: string[], out: string): Promise<number[]> {
  const r = await launchZili(np, [...args, '--out', out]);
  assert.equal(r.code, 0, `${path.basename(out)} failed:\n${r.stderr.slice(-3000)}`);
  return loggedLosses(out);
}
