// The CPU's measured peak FLOP/s per compute unit (f32 FMA, AVX512-BF16 dot products, AMX bf16
// tiles), the denominators of MFU on the cpu backend. Measured once per CPU (model and flags) and
// thread count and cached in .cache/zili/cpu-peak.json, because a datasheet number says little
// about what this machine's cores sustain.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PEAK_UNITS, type PeakUnit, loadNative } from './native.js';
import { cpuIdentity, cpuKey } from './cpu-info.js';
import { cacheDir } from '../../util/paths.js';
import { writeFileAtomic } from '../../util/atomic-fs.js';

export interface CpuPeak {
  cpu: string;
  threads: number;
  /** GFLOP/s per unit; 0 where this CPU (or this build) has no such unit */
  units: Record<PeakUnit, number>;
}

function cacheFile(): string {
  return join(cacheDir(), 'cpu-peak.json');
}

const memo = new Map<number, CpuPeak>();

/** Peaks for `threads` threads; measures (about a second per unit present) on first use on this machine. */
export function cpuPeak(threads: number, opts: { remeasure?: boolean } = {}): CpuPeak {
  const hit = memo.get(threads);
  if (hit && !opts.remeasure) return hit;
  const cpu = cpuKey(cpuIdentity());
  const file = cacheFile();
  let table: CpuPeak[] = [];
  try {
    if (existsSync(file)) table = (JSON.parse(readFileSync(file, 'utf8')) as CpuPeak[]).filter((e) => e && typeof e.units === 'object');
  } catch {
    table = [];
  }
  let entry = opts.remeasure ? undefined : table.find((e) => e.cpu === cpu && e.threads === threads);
  if (!entry) {
    const n = loadNative();
    const units = Object.fromEntries(PEAK_UNITS.map((u, i) => [u, n.measurePeakGflops(i, threads)])) as Record<PeakUnit, number>;
    entry = { cpu, threads, units };
    table = table.filter((e) => !(e.cpu === cpu && e.threads === threads)).concat(entry);
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileAtomic(file, JSON.stringify(table, null, 2));
    } catch {
      // a read-only cache only costs a re-measurement
    }
  }
  memo.set(threads, entry);
  return entry;
}
