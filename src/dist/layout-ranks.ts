// The one check every model-parallel layout makes first: its degree times --dp must be the job's
// ranks; the error says which --dp or how many ranks would fit.
import { ConfigError } from '../nn/config.js';

/** Throws unless `degree` (of --flag) × dp equals the job's ranks. */
export function assertRanksFit(flag: string, degree: number, dp: number, worldSize: number): void {
  const world = degree * dp;
  if (world === worldSize) return;
  throw new ConfigError(
    worldSize % degree === 0 && worldSize > 1
      ? `--${flag} ${degree} x --dp ${dp} = ${world} ranks, but the job has ${worldSize}; use --dp ${worldSize / degree} or launch ${world} ranks (mpirun -np ${world})`
      : `--${flag} ${degree} x --dp ${dp} needs ${world} ranks but the job has ${worldSize}; launch it with mpirun -np ${world}`,
  );
}
