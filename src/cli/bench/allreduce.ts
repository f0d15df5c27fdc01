// `zili bench allreduce`: bandwidth of an all-reduce (sum) through zili's Communicator, run under
// mpirun next to bench/mpi_allreduce.c (the plain Open MPI program) by bench/mpi-allreduce.sh. Each
// iteration is timed from a barrier to the slowest rank's completion; rank 0 prints the median and
// best in the C program's format. busbw = algbw·2(P-1)/P (the ring's traffic per rank, as nccl-tests).
import { formatHelp, parseArgs, UsageError } from '../args.js';
import { openWorld } from '../../dist/world.js';
import { CpuBackend } from '../../backend/cpu/cpu-backend.js';
import * as T from '../../tensor/ops.js';

const SPECS = {
  mib: { kind: 'int', help: 'message size in MiB', default: 64 },
  iterations: { kind: 'int', help: 'timed iterations', default: 10 },
  warmup: { kind: 'int', help: 'untimed iterations first', default: 2 },
  buffer: { kind: 'string', help: 'tensor (a cpu-backend Tensor, in place) | host (a Float32Array)', default: 'tensor' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, SPECS, 'bench allreduce');
  if (a.help) {
    console.log(formatHelp('bench allreduce', SPECS, 'mpirun -np N bin/zili bench allreduce [options]'));
    return 0;
  }
  if (a.buffer !== 'tensor' && a.buffer !== 'host') throw new UsageError(`--buffer ${a.buffer}: use tensor or host`);
  const mib = a.mib!, iterations = Math.max(1, a.iterations!), warmup = Math.max(0, a.warmup!);
  const world = await openWorld();
  const n = (mib * 1024 * 1024) / 4;
  const init = Float32Array.from({ length: n }, (_, i) => (world.rank + i) % 7);
  const buf = a.buffer === 'tensor' ? T.tensor(new CpuBackend(), init, [n]) : init;
  const times: number[] = [];
  const slowest = new Float32Array(1);
  for (let it = -warmup; it < iterations; it++) {
    await world.barrier();
    const t0 = process.hrtime.bigint();
    await world.allReduce(buf);
    slowest[0] = Number(process.hrtime.bigint() - t0) / 1e9;
    await world.allReduce(slowest, 'max');
    if (it >= 0) times.push(slowest[0]!);
  }
  times.sort((x, y) => x - y);
  if (world.rank === 0) {
    const bytes = n * 4, med = times[Math.floor(times.length / 2)]!, P = world.size;
    console.log(
      `zili      allreduce f32 ${mib} MiB ranks ${P}: median ${(med * 1e3).toFixed(1)} ms, best ${(times[0]! * 1e3).toFixed(1)} ms, ` +
        `algbw ${(bytes / med / 1e9).toFixed(2)} GB/s, busbw ${((bytes / med / 1e9) * 2 * (P - 1) / P).toFixed(2)} GB/s (${a.buffer}, ${world.kind})`,
    );
  }
  await world.finalize();
  return 0;
}
