// What the data-parallel ranks of a training run agree on besides gradients: that the job's ranks
// match --dp (checked before anything is allocated), each rank's step time and peak memory (the
// slowest sets the pace; rank 0 reports them), whether any rank was interrupted (all stop and save
// at the same step), and means over ranks (validation loss over each rank's rows).
import { ConfigError } from '../nn/config.js';
import type { TrainConfig } from '../train/train-config.js';
import type { Communicator } from './communicator.js';

/**
 * Refuses, before anything is allocated, a data-parallel layout that does not match the job's ranks,
 * saying what would.
 */
export function assertWorldFits(c: TrainConfig, worldSize: number): void {
  if (c.dp !== worldSize)
    throw new ConfigError(
      worldSize === 1
        ? `--dp ${c.dp} needs ${c.dp} ranks but this process runs alone; launch it with mpirun -np ${c.dp} (or Slurm/the MPI Operator), or use --dp 1`
        : `--dp ${c.dp} does not match the job's ${worldSize} ranks; use --dp ${worldSize} (only data parallelism is implemented: world = dp), or launch it with mpirun -np ${c.dp}`,
    );
}

/** Every rank's step seconds, peak bytes and seconds waited in the step (src/dist/step-wait.ts), by rank (one all-gather). */
export async function gatherRankStats(comm: Communicator, stepS: number, peakBytes: number, waitS = 0): Promise<{ stepS: number[]; peakBytes: number[]; waitS: number[] }> {
  const all = new Float32Array(3 * comm.size);
  await comm.allGather(Float32Array.of(stepS, peakBytes / 2 ** 20, waitS), all);
  const stepOut: number[] = [], peak: number[] = [], wait: number[] = [];
  for (let r = 0; r < comm.size; r++) {
    stepOut.push(all[3 * r]!);
    peak.push(Math.round(all[3 * r + 1]! * 2 ** 20));
    wait.push(all[3 * r + 2]!);
  }
  return { stepS: stepOut, peakBytes: peak, waitS: wait };
}

/** True on every rank when `flag` is true on any (e.g. Ctrl-C reached some ranks first: all stop and save at the same step). */
export async function anyRank(comm: Communicator, flag: boolean): Promise<boolean> {
  const b = Int32Array.of(flag ? 1 : 0);
  await comm.allReduce(b, 'max');
  return b[0] === 1;
}

/** The mean over ranks of a per-rank value (each rank's validation loss over its rows of the same batches). */
export async function meanOverRanks(comm: Communicator, x: number): Promise<number> {
  const b = Float32Array.of(x);
  await comm.allReduce(b);
  return b[0]! / comm.size;
}
