// openWorld: the communicator over every process of the job. A job of one process gets the local
// communicator (libmpi is never loaded); more ranks — launched by mpirun, srun or the MPI Operator —
// get Open MPI through the native binding.
import type { World } from './communicator.js';
import { LocalCommunicator } from './local.js';
import { loadMpiBinding } from './mpi-native.js';
import { MpiWorld } from './mpi.js';

export interface WorldOptions {
  /** collective watchdog: a call still running after this long aborts the job (default 300 s, env ZILI_COMM_TIMEOUT_S) */
  timeoutMs?: number;
  /** largest message per MPI call (default 16 MiB; smaller only for tests) */
  chunkBytes?: number;
  /** 'auto' (default): MPI when the launcher says the job has more than one rank */
  transport?: 'auto' | 'local' | 'mpi';
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_COMM_TIMEOUT_MS = 300_000;
export const DEFAULT_CHUNK_BYTES = 16 << 20;

/** The number of ranks the launcher started (mpirun: OMPI_COMM_WORLD_SIZE, srun: SLURM_STEP_NUM_TASKS, PMI-2: PMI_SIZE), 1 when none did. */
export function launchedWorldSize(env: NodeJS.ProcessEnv = process.env): number {
  for (const k of ['OMPI_COMM_WORLD_SIZE', 'SLURM_STEP_NUM_TASKS', 'PMI_SIZE']) {
    const v = env[k];
    if (v !== undefined && /^\d+$/.test(v)) return Number(v);
  }
  return 1;
}

export function commTimeoutMs(opts: WorldOptions, env: NodeJS.ProcessEnv): number {
  if (opts.timeoutMs !== undefined) return opts.timeoutMs;
  const s = env['ZILI_COMM_TIMEOUT_S'];
  if (s === undefined) return DEFAULT_COMM_TIMEOUT_MS;
  const n = Number(s);
  if (!(n > 0)) throw new RangeError(`ZILI_COMM_TIMEOUT_S=${s} is not a positive number of seconds`);
  return n * 1000;
}

export async function openWorld(opts: WorldOptions = {}): Promise<World> {
  const env = opts.env ?? process.env;
  const size = launchedWorldSize(env);
  const transport = opts.transport ?? 'auto';
  if (transport === 'local' || (transport === 'auto' && size <= 1)) {
    if (size > 1) throw new Error(`the launcher started ${size} ranks but the local communicator serves one process; drop transport 'local'`);
    return new LocalCommunicator();
  }
  const timeoutMs = commTimeoutMs(opts, env);
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!(chunkBytes >= 4)) throw new RangeError(`chunkBytes ${chunkBytes} must be at least 4`);
  const mpi = loadMpiBinding(`this process is one of ${size} ranks`);
  return new MpiWorld(mpi, mpi.init(chunkBytes, timeoutMs));
}
