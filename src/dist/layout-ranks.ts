// The one check every model-parallel layout makes first: the product of its degrees times --dp must
// be the job's ranks; the error says which --dp or how many ranks would fit.
import { ConfigError } from '../nn/config.js';

/** Throws unless the model-parallel `degrees` (by flag, e.g. { tp: 2, pp: 2 }) × dp equal the job's ranks. */
export function assertRanksFit(degrees: Readonly<Record<string, number>>, dp: number, worldSize: number): void {
  const model = Object.values(degrees).reduce((a, b) => a * b, 1);
  const world = model * dp;
  if (world === worldSize) return;
  const flags = [...Object.entries(degrees).map(([f, n]) => `--${f} ${n}`), `--dp ${dp}`].join(' x ');
  throw new ConfigError(
    worldSize % model === 0 && worldSize > 1
      ? `${flags} = ${world} ranks, but the job has ${worldSize}; use --dp ${worldSize / model} or launch ${world} ranks (mpirun -np ${world})`
      : `${flags} needs ${world} ranks but the job has ${worldSize}; launch it with mpirun -np ${world}`,
  );
}
