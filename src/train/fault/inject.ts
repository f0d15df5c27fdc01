// Fault injection for tests and drills (`ZILI_FAULT`): a comma-separated list of faults, each
// `KIND@STEP[:rank=R][:always]` with KIND one of
//   nan            the step's loss becomes NaN (every rank sees it: the update must be skipped)
//   spike          the step's reported loss is multiplied by 100 (the spike guard must roll back)
//   kill           rank R (default 0) sends itself SIGKILL at the end of step STEP (as `kill -9` would)
//   kill-in-save   rank R sends itself SIGKILL while the checkpoint of step STEP is being written
// nan and spike act whenever the step is computed (a bad batch stays bad on replay). A kill fires once
// per run folder (a marker file `.fault-fired-...` records it) so a restarted job gets past it, unless
// `:always` is given (a deterministic crash, which the supervisor must refuse to loop on).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';

export type FaultKind = 'nan' | 'spike' | 'kill' | 'kill-in-save';
const KINDS: readonly FaultKind[] = ['nan', 'spike', 'kill', 'kill-in-save'];

export interface Fault {
  kind: FaultKind;
  step: number;
  rank: number;
  always: boolean;
}

/** The factor an injected spike multiplies the loss by. */
export const SPIKE_FACTOR = 100;

export function parseFaults(spec: string): Fault[] {
  const out: Fault[] = [];
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [head, ...opts] = item.split(':');
    const m = /^([a-z-]+)@(\d+)$/.exec(head!);
    if (!m || !KINDS.includes(m[1] as FaultKind))
      throw new UserError(`ZILI_FAULT: '${item}' is not KIND@STEP[:rank=R][:always] with KIND one of ${KINDS.join(', ')}`);
    const f: Fault = { kind: m[1] as FaultKind, step: Number(m[2]), rank: 0, always: false };
    for (const o of opts) {
      if (o === 'always') f.always = true;
      else if (/^rank=\d+$/.test(o)) f.rank = Number(o.slice(5));
      else throw new UserError(`ZILI_FAULT: unknown option '${o}' in '${item}' (rank=R or always)`);
    }
    out.push(f);
  }
  return out;
}

/** The faults planned for this process (one rank of one run folder). */
export class FaultPlan {
  private constructor(
    private readonly faults: Fault[],
    private readonly out: string,
    private readonly rank: number,
  ) {}

  static fromEnv(out: string, rank: number, env: NodeJS.ProcessEnv = process.env): FaultPlan {
    return new FaultPlan(env['ZILI_FAULT'] ? parseFaults(env['ZILI_FAULT']) : [], out, rank);
  }

  get empty(): boolean {
    return this.faults.length === 0;
  }

  private find(kind: FaultKind, step: number, anyRank = false): Fault | undefined {
    return this.faults.find((f) => f.kind === kind && f.step === step && (anyRank || f.rank === this.rank));
  }

  /** nan: rank 0 poisons its loss (the mean over ranks is then NaN on every rank). */
  poisonLoss(step: number): boolean {
    return this.rank === 0 && this.find('nan', step) !== undefined;
  }

  /** spike: the loss every rank reports for this step is multiplied by SPIKE_FACTOR. */
  spike(step: number): boolean {
    return this.find('spike', step, true) !== undefined;
  }

  private marker(f: Fault): string {
    return path.join(this.out, `.fault-fired-${f.kind}@${f.step}-rank${f.rank}`);
  }

  /** Whether a kill of this kind is due now (marks it fired unless `always`). */
  private due(kind: 'kill' | 'kill-in-save', step: number): boolean {
    const f = this.find(kind, step);
    if (!f) return false;
    if (f.always) return true;
    if (fs.existsSync(this.marker(f))) return false;
    fs.writeFileSync(this.marker(f), `${new Date().toISOString()}\n`);
    return true;
  }

  /** kill: SIGKILL to this process at the end of the step. */
  killAfterStep(step: number): void {
    if (this.due('kill', step)) killSelf(`kill@${step}`, this.rank);
  }

  /** kill-in-save: whether this rank must die partway through writing the checkpoint of `step`. */
  killInSave(step: number): boolean {
    return this.due('kill-in-save', step);
  }
}

export function killSelf(what: string, rank: number): never {
  fs.writeSync(2, `zili: ZILI_FAULT ${what}: rank ${rank} (pid ${process.pid}) kills itself with SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable: SIGKILL did not end the process');
}
