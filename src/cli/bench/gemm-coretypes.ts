// `zili bench gemm --core-types`: zili's f32 GEMM at one shape against OpenBLAS under every core
// type this CPU supports (OPENBLAS_CORETYPE is read when OpenBLAS loads, so each one runs in its own
// `bin/zili bench gemm` child with tuning off), measured alternately with zili's own GEMM in this
// process. Answers "is zili within 10% of the best OpenBLAS can do here, whatever it detected?".
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../util/paths.js';
import { cpuIdentity, supportedOpenblasCores } from '../../backend/cpu/cpu-info.js';
import { USER_CORETYPE_VAR } from '../../backend/cpu/gemm-tune.js';

export interface CoreTypeRow { core: string; gflops: number | null; error?: string }

export function openblasPerCoreType(m: number, n: number, k: number, repeat: number, threads: number): CoreTypeRow[] {
  const zili = join(repoRoot(), 'bin', 'zili');
  const rows: CoreTypeRow[] = [];
  for (const core of ['(own detection)', ...supportedOpenblasCores(cpuIdentity())]) {
    const env: NodeJS.ProcessEnv = { ...process.env, ZILI_GEMM_TUNE: 'off', ZILI_THREADS: String(threads) };
    delete env['OPENBLAS_CORETYPE'];
    delete env['OPENBLAS_L2_SIZE'];
    delete env[USER_CORETYPE_VAR];
    if (!core.startsWith('(')) env['OPENBLAS_CORETYPE'] = core;
    const r = spawnSync(zili, ['bench', 'gemm', '--m', String(m), '--n', String(n), '--k', String(k), '--repeat', String(repeat), '--json'], { env, encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) {
      rows.push({ core, gflops: null, error: `exit ${r.status ?? r.signal}` });
      continue;
    }
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { baselineGflops: number };
    rows.push({ core, gflops: j.baselineGflops });
  }
  return rows;
}
