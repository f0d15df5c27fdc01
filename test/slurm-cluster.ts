// Test helper: a throwaway single-node Slurm cluster (slurmctld + slurmd 22.05, munge) in a temp
// folder, on free ports, run as root with `SlurmdParameters=config_overrides` so the node may claim
// more CPUs than this 2-core machine has. `start` resolves once the node is idle, or resolves with the
// reason Slurm could not start (missing programs, daemons that die) so the caller can skip.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';

export interface SlurmCluster {
  dir: string;
  /** environment for sbatch/srun/squeue (SLURM_CONF) */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

const PROGRAMS = ['munged', 'mungekey', 'slurmctld', 'slurmd', 'sbatch', 'sinfo'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function tail(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ') : '(no log)';
}

export async function startSlurm(cpus = 4): Promise<SlurmCluster | string> {
  const missing = PROGRAMS.filter((p) => spawnSync('sh', ['-c', `command -v ${p}`]).status !== 0);
  if (missing.length) return `${missing.join(', ')} not installed (scripts/setup installs slurmctld slurmd slurm-client munge)`;
  if (process.getuid?.() !== 0) return 'the throwaway Slurm cluster runs its daemons as root, and this test is not root';
  const dir = mkdtempSync('/tmp/zili-slurm-'); // short: the munge socket path must fit in sun_path
  chmodSync(dir, 0o755);
  for (const d of ['state', 'spool']) mkdirSync(join(dir, d));
  const [ctldPort, dPort] = [await freePort(), await freePort()];
  const host = hostname();
  const socket = join(dir, 'munge.socket');
  const conf = join(dir, 'slurm.conf');
  writeFileSync(
    conf,
    [
      'ClusterName=zili-test', `SlurmctldHost=${host}`, 'SlurmUser=root', 'SlurmdUser=root',
      'AuthType=auth/munge', `AuthInfo=socket=${socket}`, 'CredType=cred/munge',
      `StateSaveLocation=${dir}/state`, `SlurmdSpoolDir=${dir}/spool`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`, `SlurmdPidFile=${dir}/slurmd.pid`,
      `SlurmctldPort=${ctldPort}`, `SlurmdPort=${dPort}`,
      'ProctrackType=proctrack/linuxproc', 'TaskPlugin=task/none', 'SchedulerType=sched/builtin',
      'SelectType=select/cons_tres', 'SelectTypeParameters=CR_CPU', 'MpiDefault=none', 'ReturnToService=2',
      'SlurmdParameters=config_overrides', 'JobCompType=jobcomp/none', 'AccountingStorageType=accounting_storage/none',
      `SlurmctldLogFile=${dir}/slurmctld.log`, `SlurmdLogFile=${dir}/slurmd.log`,
      `NodeName=${host} CPUs=${cpus} State=UNKNOWN`,
      'PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES',
      '',
    ].join('\n'),
  );
  const env = { ...process.env, SLURM_CONF: conf };
  const daemons: ChildProcess[] = [];
  const stop = async () => {
    spawnSync('scancel', ['--full', '--quiet', '--partition=test'], { env });
    for (const p of daemons.reverse()) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const key = spawnSync('mungekey', ['-c', '-k', join(dir, 'munge.key')], { encoding: 'utf8' });
  if (key.status !== 0) {
    await stop();
    return `mungekey failed: ${key.stderr.trim()}`;
  }
  const run = (cmd: string, args: string[]) => {
    const p = spawn(cmd, args, { env, stdio: 'ignore' });
    daemons.push(p);
    return p;
  };
  run('munged', ['-F', '--force', '-S', socket, `--key-file=${dir}/munge.key`, `--log-file=${dir}/munged.log`, `--pid-file=${dir}/munged.pid`, `--seed-file=${dir}/munged.seed`]);
  for (let i = 0; i < 50 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
  run('slurmctld', ['-D', '-f', conf]);
  run('slurmd', ['-D', '-f', conf]);
  for (let i = 0; i < 60; i++) {
    const s = spawnSync('sinfo', ['-h', '-o', '%t'], { env, encoding: 'utf8' });
    if (s.status === 0 && /idle|mix|alloc/.test(s.stdout)) return { dir, env, stop };
    if (daemons.some((p) => p.exitCode !== null)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const why = `Slurm did not come up: slurmctld: ${tail(join(dir, 'slurmctld.log'))}; slurmd: ${tail(join(dir, 'slurmd.log'))}; munged: ${tail(join(dir, 'munged.log'))}`;
  await stop();
  return why;
}
