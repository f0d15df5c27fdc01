// `zili run --np N [--max-restarts K] -- train ...`: a supervised training job (src/train/fault/supervisor.ts).
import * as path from 'node:path';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { chooseLauncher, type Launcher, supervise } from '../train/fault/supervisor.js';
import { repoRoot } from '../util/paths.js';

const FLAGS = {
  np: { kind: 'int', help: 'ranks of the job', default: 1, min: 1 },
  'max-restarts': { kind: 'int', help: 'restarts from the latest checkpoint before giving up', default: 3, min: 0 },
  backoff: { kind: 'number', help: 'seconds before the first restart (doubled after each)', default: 2, min: 0 },
  'max-backoff': { kind: 'number', help: 'longest wait before a restart, seconds', default: 300, min: 0 },
  launcher: { kind: 'string', help: 'auto (srun inside a Slurm allocation, else mpirun for --np > 1), mpirun, srun or none', default: 'auto' },
  'launcher-args': { kind: 'string', help: "extra launcher arguments, e.g. '--oversubscribe --bind-to none'", default: '' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

/** The value of `--name V` / `--name=V` in train arguments. */
function flagValue(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i]!.startsWith(`--${name}=`)) return args[i]!.slice(name.length + 3);
  }
  return undefined;
}

export async function run(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const job = dash < 0 ? [] : argv.slice(dash + 1);
  const a = parseArgs(own, FLAGS, 'run');
  if (a.help) {
    console.log(formatHelp('run', FLAGS, '--np N [--max-restarts K] -- train --preset NAME --out DIR [train options]'));
    return 0;
  }
  if (a._.length) throw new UsageError(`unexpected argument '${a._[0]}': put the training command after --, e.g. zili run --np 2 -- train --preset tiny --out runs/x`);
  if (job[0] !== 'train') throw new UsageError(`name the job after --: zili run --np ${a.np} -- train --preset NAME --out DIR`);
  const trainArgs = job.slice(1);
  const preset = flagValue(trainArgs, 'preset');
  const out = flagValue(trainArgs, 'out') ?? (preset ? path.join('runs', preset) : undefined);
  if (!out) throw new UsageError('name the run folder with --out DIR in the train arguments (the supervisor resumes from its checkpoints)');
  const launcher = a.launcher === 'auto' ? chooseLauncher(a.np!, process.env) : (a.launcher as Launcher);
  if (!['mpirun', 'srun', 'none'].includes(launcher)) throw new UsageError(`--launcher must be auto, mpirun, srun or none, got '${a.launcher}'`);
  if (launcher === 'none' && a.np !== 1) throw new UsageError(`--launcher none runs one process; use --np 1, or mpirun/srun for ${a.np} ranks`);
  return supervise({
    np: a.np!,
    maxRestarts: a['max-restarts']!,
    backoffS: a.backoff!,
    maxBackoffS: a['max-backoff']!,
    launcher,
    launcherArgs: a['launcher-args']!.split(/\s+/).filter(Boolean),
    trainArgs,
    out,
    metrics: flagValue(trainArgs, 'metrics') ?? path.join(out, 'metrics.jsonl'),
    zili: path.join(repoRoot(), 'bin', 'zili'),
    log: (l) => process.stderr.write(l + '\n'),
  });
}
