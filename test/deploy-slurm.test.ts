// deploy/slurm/zili.sbatch for real: a throwaway single-node Slurm cluster runs it through sbatch as
// a 2-rank job (srun --mpi=pmix, no mpirun) training `tiny` with --dp 2; its per-step losses must
// match a one-process run within 1e-5 relative. Skips with the reason only when Slurm cannot start
// here (programs missing, not root, daemons that die) or the MPI binding is not built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mpiBindingPath } from '../src/dist/mpi-native.js';
import { readMetrics } from '../src/train/metrics.js';
import { repoRoot } from '../src/util/paths.js';
import { type SlurmCluster, startSlurm } from './slurm-cluster.js';

const ROOT = repoRoot();
const TRAIN = ['train', '--preset', 'tiny', '--steps', '3', '--global-batch', '8', '--seed', '7', '--eval-every', '0', '--threads', '1'];

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env, cwd: ROOT });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test('deploy/slurm/zili.sbatch: a 2-rank sbatch job trains dp 2 with the losses of one process', async (t) => {
  if (!existsSync(mpiBindingPath())) return t.skip(`the MPI binding is not built (${mpiBindingPath()}; run scripts/setup)`);
  if (spawnSync('sh', ['-c', 'command -v srun']).status !== 0) return t.skip('srun is not installed (scripts/setup installs slurm-client)');
  const cluster: SlurmCluster | string = await startSlurm();
  if (typeof cluster === 'string') {
    console.log(`# skipping the Slurm test: ${cluster}`);
    return t.skip(cluster);
  }
  try {
    const one = join(cluster.dir, 'one'), two = join(cluster.dir, 'two'), log = join(cluster.dir, 'job.out');
    const ref = await run(process.execPath, [join(ROOT, 'bin', 'zili'), ...TRAIN, '--out', one], process.env, 180_000);
    assert.equal(ref.code, 0, ref.out);
    const job = await run('sbatch', ['--wait', '--nodes=1', '--ntasks=2', `--output=${log}`, join(ROOT, 'deploy', 'slurm', 'zili.sbatch'), ...TRAIN, '--dp', '2', '--out', two], cluster.env, 300_000);
    const jobLog = existsSync(log) ? readFileSync(log, 'utf8') : '(no job output)';
    assert.equal(job.code, 0, `sbatch: ${job.out}\n${jobLog}`);
    assert.match(jobLog, /2 ranks on 1 node/);
    const want = readMetrics(join(one, 'metrics.jsonl')).map((m) => m.loss);
    const got = readMetrics(join(two, 'metrics.jsonl'));
    assert.equal(got.length, want.length, `the job logged ${got.length} steps, expected ${want.length}\n${jobLog}`);
    got.forEach((m, i) => {
      assert.ok(Math.abs(m.loss - want[i]!) <= 1e-5 * Math.abs(want[i]!), `step ${i + 1}: loss ${m.loss} under Slurm dp 2 vs ${want[i]} in one process`);
      assert.equal((m as { rankStepS?: number[] }).rankStepS?.length, 2, 'every step line carries both ranks\' step times');
    });
  } finally {
    await cluster.stop();
  }
});
