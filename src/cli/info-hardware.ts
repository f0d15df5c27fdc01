// `zili info --hardware`: what the cpu backend found on this machine and chose — the CPU, the
// measured peak of each compute unit, and the GEMM engine per dtype and shape class with the
// GFLOP/s of every candidate it timed (src/backend/cpu/gemm-tune.ts).
import { cpuIdentity, cpuKey, bestOpenblasCore } from '../backend/cpu/cpu-info.js';
import { type GemmTuning, gemmTuning } from '../backend/cpu/gemm-tune.js';
import { gemmChoice, loadNative, PEAK_UNITS } from '../backend/cpu/native.js';
import { cpuPeak } from '../backend/cpu/peak.js';
import { GEMM_CLASSES, SAMPLE_SHAPES } from '../backend/cpu/gemm-engines.js';

function candidates(c: Record<string, number>): string {
  return Object.entries(c).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
}

export function hardwareReport(opts: { retune: boolean }): { text: string; json: unknown } {
  const n = loadNative();
  const threads = n.threads();
  const id = cpuIdentity();
  let t: GemmTuning | undefined = gemmChoice();
  if (opts.retune || (t && t.threads !== threads)) t = gemmTuning(threads, { retune: opts.retune, log: (s) => console.error(s) });
  const peak = cpuPeak(threads);
  const lines: string[] = [];
  lines.push(`cpu: ${cpuKey(id)}, ${threads} threads; OpenBLAS core type: ${n.openblasCore()}${t?.openblasCore ? ` (forced by zili; OpenBLAS itself chose ${t.openblasDetected})` : ''}; best the flags support: ${bestOpenblasCore(id) ?? 'unknown'}`);
  lines.push(`peaks (measured, GFLOP/s): ${PEAK_UNITS.map((u) => `${u} ${peak.units[u] > 0 ? peak.units[u].toFixed(0) : '-'}`).join(', ')}`);
  if (!t) {
    lines.push('GEMM engines: not tuned (ZILI_GEMM_TUNE=off): OpenBLAS for f32, oneDNN bf16 where it exists');
  } else {
    lines.push(`GEMM engines (measured ${t.measuredAt} in ${t.seconds} s; cached, keyed by CPU model+flags, threads, OPENBLAS_CORETYPE, ONEDNN_MAX_CPU_ISA):`);
    for (const dtype of ['f32', 'bf16'] as const) {
      for (const c of GEMM_CLASSES) {
        const ch = t[dtype][c];
        const s = SAMPLE_SHAPES[c][0]!;
        const impl = dtype === 'bf16' ? ` [${(ch as { impl: string }).impl}]` : '';
        lines.push(`  ${dtype.padEnd(4)} ${c.padEnd(5)} (e.g. ${s.m}x${s.n}x${s.k}): ${ch.engine.padEnd(8)} ${ch.gflops.toFixed(1).padStart(7)} GFLOP/s${impl}   candidates: ${candidates(ch.candidates)}`);
      }
    }
  }
  return { text: lines.join('\n'), json: { cpu: cpuKey(id), threads, openblasCore: n.openblasCore(), peaks: peak.units, gemm: t ?? null } };
}
