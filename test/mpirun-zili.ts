// Test helper: `zili` as one process or under mpirun (oversubscribed on the 2 cores, not bound), and
// the reason to skip the mpirun tests on a machine without mpirun or the MPI binding.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mpiBindingPath } from '../src/dist/mpi-native.js';
import { repoRoot } from '../src/util/paths.js';

export const ZILI = path.join(repoRoot(), 'bin', 'zili');

/** Why the mpirun tests cannot run here (false: they can); printed once with `what`. */
export function mpirunSkip(what: string): string | false {
  const hasMpirun = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).status === 0;
  const skip = !hasMpirun ? 'mpirun is not installed (scripts/setup installs openmpi-bin)' : !fs.existsSync(mpiBindingPath()) ? `the MPI binding is not built (${mpiBindingPath()})` : false;
  if (skip) console.log(`# skipping the mpirun ${what}: ${skip}`);
  return skip;
}

/** Runs `zili args` on np ranks (np 0: one process without mpirun); killed after timeoutMs. */
export function zili(np: number, args: string[], timeoutMs = 240_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const argv = np > 0 ? ['--allow-run-as-root', '--oversubscribe', '--bind-to', 'none', '-np', String(np), process.execPath, ZILI, ...args] : [ZILI, ...args];
    const p = spawn(np > 0 ? 'mpirun' : process.execPath, argv);
    let stderr = '';
    p.stdout.on('data', () => {});
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}
