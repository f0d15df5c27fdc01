// `zili bench <what>`: dispatches to src/cli/bench/<what>.ts. Add a benchmark by adding a line to
// BENCHES; each module exports `run(argv: string[]): Promise<number>`.
import { UsageError } from './args.js';

const BENCHES: Record<string, { file: string; summary: string }> = {
  gemm: { file: './bench/gemm.js', summary: 'f32 / bf16 GEMM GFLOP/s against OpenBLAS cblas_sgemm' },
  kernels: { file: './bench/kernels.js', summary: 'fused CPU kernels against unfused compositions of primitives' },
  train: { file: './bench/train.js', summary: 'training throughput of a model configuration' },
  allreduce: { file: './bench/allreduce.js', summary: 'all-reduce bandwidth through the communicator (run under mpirun; see bench/mpi-allreduce.sh)' },
  serve: { file: './bench/serve.js', summary: 'load test of zili serve on loopback: tokens/s, time to first token, inter-token latency' },
};

function usage(): string {
  const lines = ['usage: zili bench <what> [options]', '', 'benchmarks:'];
  for (const [name, b] of Object.entries(BENCHES)) lines.push(`  ${name.padEnd(10)} ${b.summary}`);
  lines.push('', 'Run `zili bench <what> --help` for its options.');
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [what, ...rest] = argv;
  if (!what || what === '--help' || what === '-h') {
    console.log(usage());
    return what ? 0 : 2;
  }
  const entry = BENCHES[what];
  if (!entry) throw new UsageError(`unknown benchmark '${what}'. Valid: ${Object.keys(BENCHES).join(', ')}`);
  let mod: { run(argv: string[]): Promise<number> };
  try {
    mod = await import(entry.file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String(e).includes(entry.file.slice(2))) {
      console.error(`zili bench: '${what}' is not built into this version.`);
      return 2;
    }
    throw e;
  }
  return mod.run(rest);
}
