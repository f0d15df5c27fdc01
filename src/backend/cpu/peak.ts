// The CPU's measured peak FLOP/s (f32 FMA, bf16 dot products), the denominator of MFU on the cpu
// backend. Measured once per CPU model and thread count and cached in .cache/zili/cpu-peak.json,
// because a datasheet number says little about what this machine's cores sustain.
import { cpus } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadNative } from './native.js';
import { cacheDir } from '../../util/paths.js';

export interface CpuPeak {
  cpu: string;
  threads: number;
  f32Gflops: number;
  bf16Gflops: number;
}

function cacheFile(): string {
  return join(cacheDir(), 'cpu-peak.json');
}

const memo = new Map<number, CpuPeak>();

/** Peak for `threads` threads; measures (about a second) on first use on this machine. */
export function cpuPeak(threads: number, opts: { remeasure?: boolean } = {}): CpuPeak {
  const hit = memo.get(threads);
  if (hit && !opts.remeasure) return hit;
  const cpu = cpus()[0]?.model ?? 'unknown';
  const file = cacheFile();
  let table: CpuPeak[] = [];
  try {
    if (existsSync(file)) table = JSON.parse(readFileSync(file, 'utf8')) as CpuPeak[];
  } catch {
    table = [];
  }
  let entry = opts.remeasure ? undefined : table.find((e) => e.cpu === cpu && e.threads === threads);
  if (!entry) {
    const n = loadNative();
    entry = { cpu, threads, f32Gflops: n.measurePeakGflops(false, threads), bf16Gflops: n.measurePeakGflops(true, threads) };
    table = table.filter((e) => !(e.cpu === cpu && e.threads === threads)).concat(entry);
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, JSON.stringify(table, null, 2));
    } catch {
      // a read-only cache only costs a re-measurement
    }
  }
  memo.set(threads, entry);
  return entry;
}
