// What CPU this is, as the tuning caches key it: model name and the ISA flags the kernels depend
// on (from /proc/cpuinfo on Linux), plus the OpenBLAS kernel family ("core type") those flags
// support at best, so a fallback of OpenBLAS's own detection (an unknown newer model gets its
// generic Prescott kernels) can be recognised and a better core type measured.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createHash } from 'node:crypto';

export interface CpuIdentity {
  model: string;
  arch: string;
  /** ISA flags, sorted */
  flags: string[];
}

/** The running CPU: model and flags (flags empty where /proc/cpuinfo is not readable). */
export function cpuIdentity(): CpuIdentity {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    text = '';
  }
  // x86 lists "flags", ARM "Features"
  const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text);
  const flags = [...new Set((line?.[1] ?? '').trim().split(/\s+/).filter(Boolean))].sort();
  return { model: cpus()[0]?.model?.trim() || 'unknown', arch: process.arch, flags };
}

/** A short stable key for a CPU: model + a hash of its flags (changes when either does). */
export function cpuKey(id: CpuIdentity): string {
  const h = createHash('sha256').update(id.flags.join(' ')).digest('hex').slice(0, 12);
  return `${id.model} [${id.arch} ${h}]`;
}

// OpenBLAS x86 core types (DYNAMIC_ARCH names accepted by OPENBLAS_CORETYPE), weakest first, with
// the flags each one's kernels execute. Zen uses the Haswell kernels (other blocking).
const X86_CORES: { name: string; needs: string[] }[] = [
  { name: 'Prescott', needs: ['pni'] },
  { name: 'Nehalem', needs: ['sse4_2'] },
  { name: 'Sandybridge', needs: ['avx'] },
  { name: 'Haswell', needs: ['avx2', 'fma'] },
  { name: 'SkylakeX', needs: ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'] },
  { name: 'Cooperlake', needs: ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512_bf16'] },
];
const ARM_CORES: { name: string; needs: string[] }[] = [
  { name: 'ARMV8', needs: ['asimd'] },
  { name: 'NeoverseN1', needs: ['asimd', 'asimddp'] },
  { name: 'NeoverseV1', needs: ['asimd', 'sve'] },
];
// names OpenBLAS reports (openblas_get_corename) mapped onto the ladders above
const RANK_ALIASES: Record<string, string> = {
  core2: 'Prescott', penryn: 'Prescott', dunnington: 'Prescott', atom: 'Prescott', opteron: 'Prescott', barcelona: 'Nehalem',
  bobcat: 'Nehalem', bulldozer: 'Sandybridge', piledriver: 'Sandybridge', steamroller: 'Sandybridge', excavator: 'Sandybridge',
  zen: 'Haswell', skylake: 'Haswell', sapphirerapids: 'Cooperlake', cortexa57: 'ARMV8', cortexa72: 'ARMV8', cortexa73: 'ARMV8',
  cortexa53: 'ARMV8', thunderx2t99: 'ARMV8', neoversen2: 'NeoverseV1', a64fx: 'NeoverseV1',
};

// The ISA cap a user put on oneDNN (ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA) caps the OpenBLAS core
// types considered too, so an AVX2-only machine can be simulated on an AVX-512 one.
function isaCapAllows(core: string, env: NodeJS.ProcessEnv): boolean {
  const cap = (env['ONEDNN_MAX_CPU_ISA'] ?? env['DNNL_MAX_CPU_ISA'] ?? '').toLowerCase();
  if (!cap || cap === 'all' || cap.startsWith('avx512') || cap.startsWith('amx')) return true;
  const allowed: Record<string, string[]> = {
    sse41: ['Prescott', 'Nehalem'],
    avx: ['Prescott', 'Nehalem', 'Sandybridge'],
    avx2: ['Prescott', 'Nehalem', 'Sandybridge', 'Haswell'],
    avx2_vnni: ['Prescott', 'Nehalem', 'Sandybridge', 'Haswell'],
  };
  return (allowed[cap] ?? allowed['avx2']!).includes(core);
}

function ladder(arch: string) {
  return arch === 'arm64' ? ARM_CORES : arch === 'x64' ? X86_CORES : [];
}

/** The OpenBLAS core types this CPU's flags support (within an ISA cap), weakest first. */
export function supportedOpenblasCores(id: CpuIdentity, env: NodeJS.ProcessEnv = process.env): string[] {
  const have = new Set(id.flags);
  return ladder(id.arch).filter((c) => c.needs.every((f) => have.has(f)) && (id.arch !== 'x64' || isaCapAllows(c.name, env))).map((c) => c.name);
}

/** The strongest OpenBLAS core type this CPU's flags support (within an ISA cap); undefined if unknown. */
export function bestOpenblasCore(id: CpuIdentity, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return supportedOpenblasCores(id, env).pop();
}

/** Position of an OpenBLAS core name on this architecture's ladder (-1 when unknown). */
export function coreRank(arch: string, name: string): number {
  const l = ladder(arch);
  const lower = name.toLowerCase();
  const canon = l.find((c) => c.name.toLowerCase() === lower)?.name ?? RANK_ALIASES[lower];
  return canon ? l.findIndex((c) => c.name === canon) : -1;
}
