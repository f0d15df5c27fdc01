// Several ranks on this machine, as the planner needs them to predict zili's own data-parallel runs
// (`hardware: "local"` with chips > 1): the communicator's measured all-reduce bandwidth and latency,
// and the share of one process's GEMM and memory throughput that each rank gets while every rank
// computes at once (ranks on one host share its cores: two ranks of 2 threads on 2 cores each run at
// about half speed). Measured under mpirun by `zili plan measure-ranks` through the communicator's
// public API, cached in .cache/zili/local-ranks.json per CPU, rank count and threads per rank.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { NativeKernels } from '../backend/cpu/native.js';
import type { Communicator } from '../dist/communicator.js';
import { writeFileAtomic } from '../util/atomic-fs.js';
import { PlanError } from './hardware.js';
import { medianSeconds } from './local-chip.js';

export interface AllReducePoint {
  bytes: number;
  /** median seconds, barrier to the slowest rank's completion */
  seconds: number;
}

export interface LocalRanks {
  /** cpuKey of the machine measured */
  cpu: string;
  ranks: number;
  /** compute threads per rank */
  threads: number;
  allReduce: AllReducePoint[];
  /** fitted per-link bandwidth, GB/s (the planner's ring: 2(P-1)/P · bytes / bandwidth) */
  linkGBs: number;
  /** fitted per-step latency, microseconds (2(P-1) steps per all-reduce) */
  latencyUs: number;
  /** per GEMM shape: time alone / time with every rank computing (rank 0's view; median of alternating rounds) */
  gemmShares: { shape: [number, number, number]; share: number }[];
  /** median of gemmShares: the factor on the single-process GEMM and attention rates */
  gemmShare: number;
  /** streaming-bandwidth share: time alone / time with every rank streaming */
  bandwidthShare: number;
  /** 1-minute load average when measured */
  load: number;
  measuredAt: string;
}

/** The command that measures `ranks` ranks (named in errors and docs). */
export function measureRanksCommand(ranks: number): string {
  return `mpirun --oversubscribe -np ${ranks} bin/zili plan measure-ranks`;
}

/**
 * Fits t = 2(P-1)·latency + 2(P-1)/P · bytes / bandwidth through the smallest and the largest message
 * (the planner's ring all-reduce, src/plan/collectives.ts): the slope gives the bandwidth, the
 * intercept the latency (clamped at 0 when noise makes it negative).
 */
export function fitAllReduce(points: readonly AllReducePoint[], ranks: number): { linkGBs: number; latencyUs: number } {
  if (points.length < 2 || ranks < 2) throw new PlanError('fitting the all-reduce needs at least two message sizes on at least two ranks');
  const sorted = [...points].sort((a, b) => a.bytes - b.bytes);
  const s = sorted[0]!, l = sorted[sorted.length - 1]!;
  const x = (b: number) => (2 * (ranks - 1) / ranks) * b;
  const slope = (l.seconds - s.seconds) / (x(l.bytes) - x(s.bytes));
  if (!(slope > 0)) throw new PlanError(`all-reduce of ${l.bytes} bytes was not slower than of ${s.bytes} bytes; measure again on a quieter machine`);
  const intercept = Math.max(0, s.seconds - slope * x(s.bytes));
  return { linkGBs: 1 / slope / 1e9, latencyUs: (intercept / (2 * (ranks - 1))) * 1e6 };
}

const GEMM_SHAPES: [number, number, number][] = [[1024, 384, 384], [1024, 1024, 384], [1024, 384, 1024]];
const ALLREDUCE_BYTES = [4 << 10, 256 << 10, 4 << 20, 32 << 20];

/** Median seconds of `iterations` all-reduces of `bytes`, each from a barrier to the slowest rank's end. */
async function timeAllReduce(comm: Communicator, bytes: number, iterations: number): Promise<number> {
  const buf = new Float32Array(bytes / 4).fill(comm.rank + 1);
  const slowest = new Float32Array(1);
  const times: number[] = [];
  for (let it = -2; it < iterations; it++) {
    await comm.barrier();
    const t0 = performance.now();
    await comm.allReduce(buf);
    slowest[0] = (performance.now() - t0) / 1000;
    await comm.allReduce(slowest, 'max');
    if (it >= 0) times.push(slowest[0]!);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * Rank 0 times `fn` alone (the other ranks wait in a receive, which backs off and leaves the cores
 * free), then every rank times it at once; `rounds` alternations, each timing a median of 3. Returns
 * the median over rounds of rank 0's alone / together ratio (other ranks: NaN). Alternating, and the
 * median of ratios, keep a moment of background load from deciding the share.
 */
async function shareOf(comm: Communicator, fn: () => void, rounds: number): Promise<number> {
  const token = new Int32Array(1);
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let alone = NaN;
    await comm.barrier();
    if (comm.rank === 0) {
      alone = medianSeconds(fn, 3, 0.05);
      for (let q = 1; q < comm.size; q++) await comm.send(token, q, 7);
    } else {
      await comm.recv(token, 0, 7);
    }
    await comm.barrier();
    const together = medianSeconds(fn, 3, 0.05);
    ratios.push(alone / together);
  }
  await comm.barrier();
  ratios.sort((a, b) => a - b);
  return ratios[Math.floor(rounds / 2)]!;
}

/** Measures the communicator and the ranks' shares of the cores; every rank calls it, rank 0's result is the one to keep. */
export async function measureLocalRanks(comm: Communicator, native: NativeKernels, cpu: string, load: number, iterations = 10, shareRounds = 5): Promise<LocalRanks> {
  const allReduce: AllReducePoint[] = [];
  for (const bytes of ALLREDUCE_BYTES) allReduce.push({ bytes, seconds: await timeAllReduce(comm, bytes, iterations) });
  const gemmShares: LocalRanks['gemmShares'] = [];
  for (const [m, n, k] of GEMM_SHAPES) {
    const a = new Float32Array(m * k).fill(0.5), b = new Float32Array(k * n).fill(0.25), c = new Float32Array(m * n);
    gemmShares.push({ shape: [m, n, k], share: await shareOf(comm, () => native.sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n), shareRounds) });
  }
  const x = new Float32Array(1 << 23).fill(1), y = new Float32Array(1 << 23);
  const bandwidthShare = await shareOf(comm, () => native.axpy(0.5, x, y), shareRounds);
  const shares = gemmShares.map((g) => g.share).sort((p, q) => p - q);
  return {
    cpu, ranks: comm.size, threads: native.threads(), allReduce, ...fitAllReduce(allReduce, comm.size),
    gemmShares, gemmShare: shares[Math.floor(shares.length / 2)]!, bandwidthShare, load, measuredAt: new Date().toISOString(),
  };
}

function cacheFile(dir: string): string {
  return join(dir, 'local-ranks.json');
}

function readTable(dir: string): LocalRanks[] {
  try {
    const f = cacheFile(dir);
    if (!existsSync(f)) return [];
    const t = JSON.parse(readFileSync(f, 'utf8')) as unknown;
    return Array.isArray(t) ? (t as LocalRanks[]).filter((e) => e && typeof e.linkGBs === 'number' && typeof e.gemmShare === 'number') : [];
  } catch {
    return [];
  }
}

/** Stores (replacing the entry of the same CPU, ranks and threads). */
export function saveLocalRanks(dir: string, m: LocalRanks): void {
  const table = readTable(dir).filter((e) => !(e.cpu === m.cpu && e.ranks === m.ranks && e.threads === m.threads)).concat(m);
  mkdirSync(dirname(cacheFile(dir)), { recursive: true });
  writeFileAtomic(cacheFile(dir), JSON.stringify(table, null, 2));
}

/** The stored measurement for this CPU, rank count and threads per rank; a PlanError naming the command when there is none. */
export function loadLocalRanks(dir: string, cpu: string, ranks: number, threads: number): LocalRanks {
  const hit = readTable(dir).find((e) => e.cpu === cpu && e.ranks === ranks && e.threads === threads);
  if (!hit) {
    throw new PlanError(`hardware "local" on ${ranks} ranks needs this machine's measured communicator and core sharing for ${ranks} ranks of ${threads} thread(s), ` +
      `and none is stored in ${cacheFile(dir)}: run \`${measureRanksCommand(ranks)}\``);
  }
  return hit;
}
