// What ended a failed attempt of a supervised job: which rank, which signal or exit status, at which
// step — read from the launcher's report (mpirun: "process rank 1 with PID 123 on node n exited on
// signal 9 (Killed)"; srun: "task 1: Killed" / "error: ... task 1 ... exited with exit code 3"), the
// ranks' own one-line errors ("zili train: ...") and the run's metrics (the last step it logged).
export interface Failure {
  /** the rank that failed first, or null when the launcher did not say */
  rank: number | null;
  /** e.g. "signal 9 (Killed)", "exit status 1" */
  how: string;
  /** the step that was running: one after the last step in the metrics */
  step: number;
  /** the rank's own error line, when it printed one */
  message: string | null;
}

export function parseFailure(output: string, exitCode: number | null, signal: string | null, lastStep: number): Failure {
  let rank: number | null = null;
  let how: string | null = null;
  const mpi = /process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+)(?: \(([^)]+)\))?/.exec(output);
  const mpiExit = /rank (\d+) with PID \d+ on node \S+ exited with status (\d+)|Process name: \[\[\d+,\d+\],(\d+)\][\s\S]*?Exit code:\s+(\d+)/.exec(output);
  const srun = /task (\d+): (Killed|Segmentation fault|Aborted)/.exec(output) ?? /task (\d+)[^\n]*exited with exit code (\d+)/.exec(output);
  if (mpi) {
    rank = Number(mpi[1]);
    how = `signal ${mpi[2]}${mpi[3] ? ` (${mpi[3]})` : ''}`;
  } else if (mpiExit) {
    rank = Number(mpiExit[1] ?? mpiExit[3]);
    how = `exit status ${mpiExit[2] ?? mpiExit[4]}`;
  } else if (srun) {
    rank = Number(srun[1]);
    how = /^\d+$/.test(srun[2]!) ? `exit status ${srun[2]}` : srun[2]!;
  }
  const injected = /ZILI_FAULT [^:]+: (?:rank (\d+) )?\(?pid/.exec(output);
  if (rank === null && injected?.[1]) rank = Number(injected[1]);
  if (how === null) how = signal ? `signal ${signal}` : `exit status ${exitCode}`;
  const lines = output.split('\n').filter((l) => /^zili train: /.test(l));
  return { rank, how, step: lastStep + 1, message: lines.length ? lines[lines.length - 1]!.slice('zili train: '.length) : null };
}

export function describeFailure(f: Failure): string {
  return `${f.rank !== null ? `rank ${f.rank}` : 'the job'} ended with ${f.how} at step ${f.step}${f.message ? `: ${f.message}` : ''}`;
}

/** Two failures with the same cause at the same step: a deterministic crash that a restart will not get past. */
export function sameFailure(a: Failure, b: Failure): boolean {
  return a.step === b.step && a.rank === b.rank && a.how === b.how && a.message === b.message;
}
