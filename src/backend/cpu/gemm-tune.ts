// Chooses the GEMM engine per (CPU, dtype, shape class) by measurement, once per machine, and
// caches the result in .cache/zili/gemm-engines.json beside the peak cache (keyed by CPU model and
// flags, thread count and the environment that changes the libraries' kernels).
//
// Candidates: f32 — OpenBLAS with its own detection, OpenBLAS with the strongest core type the
// CPU's flags support (only when its detection fell below that, e.g. Prescott on an unknown newer
// model), oneDNN's sgemm; bf16 — oneDNN's bf16 matmul (AVX512-BF16 / AMX) where it exists, and
// widening to f32 (the f32 winner then does the arithmetic). OpenBLAS reads OPENBLAS_CORETYPE only
// when it loads, so every OpenBLAS variant is timed in its own child process (gemm-probe-main.ts),
// alternating the variants to even out load from other processes; loadNative then sets the
// winning core type before it loads the addon and hands the per-class choices to it.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../../util/paths.js';
import { writeFileAtomic } from '../../util/atomic-fs.js';
import { bestOpenblasCore, coreRank, cpuIdentity, cpuKey } from './cpu-info.js';
import type { ProbeRequest, ProbeResult } from './gemm-probe.js';
import { type Bf16Engine, type F32Engine, GEMM_CLASSES, type GemmClass } from './gemm-engines.js';

export interface EngineChoice<E extends string> {
  engine: E;
  gflops: number;
  /** GFLOP/s of every candidate timed, by label (e.g. "openblas (Zen)", "openblas:Haswell", "onednn") */
  candidates: Record<string, number>;
}

export interface GemmTuning {
  cpu: string;
  threads: number;
  /** environment the measurement was made under (part of the cache key) */
  env: { openblasCoretype: string; isaCap: string };
  measuredAt: string;
  seconds: number;
  /** the core type OpenBLAS chose by itself (or as OPENBLAS_CORETYPE told it) */
  openblasDetected: string;
  /** the core type zili sets in OPENBLAS_CORETYPE before loading OpenBLAS; null = leave it */
  openblasCore: string | null;
  f32: Record<GemmClass, EngineChoice<F32Engine>>;
  bf16: Record<GemmClass, EngineChoice<Bf16Engine> & { impl: string }>;
}

/** The environment variable zili keeps the user's own OPENBLAS_CORETYPE in once it overrides it. */
export const USER_CORETYPE_VAR = 'ZILI_USER_OPENBLAS_CORETYPE';

/** The user's OPENBLAS_CORETYPE ('' when unset), even after zili has overridden it. */
export function userCoretype(env: NodeJS.ProcessEnv = process.env): string {
  return env[USER_CORETYPE_VAR] ?? env['OPENBLAS_CORETYPE'] ?? '';
}

function keyOf(threads: number, env: NodeJS.ProcessEnv) {
  return { cpu: cpuKey(cpuIdentity()), threads, env: { openblasCoretype: userCoretype(env), isaCap: env['ONEDNN_MAX_CPU_ISA'] ?? env['DNNL_MAX_CPU_ISA'] ?? '' } };
}

function cacheFile(): string {
  return join(cacheDir(), 'gemm-engines.json');
}

function readTable(): GemmTuning[] {
  try {
    const file = cacheFile();
    if (!existsSync(file)) return [];
    const t = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return Array.isArray(t) ? (t as GemmTuning[]).filter((e) => e && e.f32 && e.bf16 && e.env) : [];
  } catch {
    return [];
  }
}

const sameKey = (e: GemmTuning, k: ReturnType<typeof keyOf>) =>
  e.cpu === k.cpu && e.threads === k.threads && e.env.openblasCoretype === k.env.openblasCoretype && e.env.isaCap === k.env.isaCap;

/** Runs one probe child with OPENBLAS_CORETYPE = core (null: the user's environment as is). */
function runProbe(core: string | null, req: ProbeRequest, env: NodeJS.ProcessEnv): ProbeResult | string {
  const main = fileURLToPath(new URL('./gemm-probe-main.js', import.meta.url));
  const childEnv: NodeJS.ProcessEnv = { ...env, ZILI_GEMM_TUNE: 'off', ZILI_THREADS: String(req.threads) };
  const user = userCoretype(env);
  delete childEnv[USER_CORETYPE_VAR];
  if (core) childEnv['OPENBLAS_CORETYPE'] = core;
  else if (user) childEnv['OPENBLAS_CORETYPE'] = user;
  else delete childEnv['OPENBLAS_CORETYPE'];
  const r = spawnSync(process.execPath, [main, JSON.stringify(req)], { env: childEnv, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) return `exit ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}`;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as ProbeResult;
  } catch {
    return `unreadable output: ${r.stdout.slice(0, 200)}`;
  }
}

function mergeMax(into: Record<string, Record<string, number>>, from: Record<string, Record<string, number>>): void {
  for (const [cls, engines] of Object.entries(from)) {
    const t = (into[cls] ??= {});
    for (const [e, v] of Object.entries(engines)) t[e] = Math.max(t[e] ?? 0, v);
  }
}

/** One OpenBLAS variant's f32 measurements (best over passes). */
export interface VariantRun {
  /** forced core type, or null for OpenBLAS's own detection */
  core: string | null;
  detected: string;
  f32: Record<string, Record<string, number>>;
}

const geomean = (xs: number[]) => Math.exp(xs.reduce((s, x) => s + Math.log(Math.max(x, 1e-9)), 0) / xs.length);

/**
 * The f32 decision from measurements: the OpenBLAS variant with the best geometric mean over the
 * classes (a forced core type must beat OpenBLAS's own choice by 5%, so noise does not flip it),
 * then per class the faster of that variant and oneDNN.
 */
export function chooseF32(runs: VariantRun[]): { openblasCore: string | null; f32: Record<GemmClass, EngineChoice<F32Engine>> } {
  const score = (r: VariantRun) => geomean(GEMM_CLASSES.map((c) => r.f32[c]?.['openblas'] ?? 0));
  const own = runs.find((r) => r.core === null) ?? runs[0]!;
  let best = own;
  for (const r of runs) if (r !== own && score(r) > 1.05 * score(own) && score(r) > score(best)) best = r;
  const label = (r: VariantRun) => (r.core ? `openblas:${r.core}` : `openblas (${r.detected})`);
  const f32 = {} as Record<GemmClass, EngineChoice<F32Engine>>;
  for (const c of GEMM_CLASSES) {
    const candidates: Record<string, number> = {};
    let onednn = 0;
    for (const r of runs) {
      candidates[label(r)] = round(r.f32[c]?.['openblas'] ?? 0);
      onednn = Math.max(onednn, r.f32[c]?.['onednn'] ?? 0);
    }
    candidates['onednn'] = round(onednn);
    const blas = best.f32[c]?.['openblas'] ?? 0;
    f32[c] = onednn > blas ? { engine: 'onednn', gflops: round(onednn), candidates } : { engine: 'openblas', gflops: round(blas), candidates };
  }
  return { openblasCore: best.core, f32 };
}

const round = (x: number) => Math.round(x * 10) / 10;

/** Measures every candidate (a few seconds) and returns the decision; throws when no probe runs. */
export function tuneGemm(threads: number, env: NodeJS.ProcessEnv = process.env, log: (s: string) => void = () => {}): GemmTuning {
  const t0 = performance.now();
  const key = keyOf(threads, env);
  const req: ProbeRequest = { threads, f32: true, bf16: false, repeat: 2 };
  const first = runProbe(null, req, env);
  if (typeof first === 'string') throw new Error(`GEMM tuning: the probe process failed (${first}); set ZILI_GEMM_TUNE=off to skip tuning`);
  const id = cpuIdentity();
  const best = bestOpenblasCore(id, env);
  const variants: (string | null)[] = [null];
  // a forced core type is worth timing only when OpenBLAS settled for a weaker one than the flags allow
  if (best && coreRank(id.arch, first.openblasCore) < coreRank(id.arch, best)) variants.push(best);
  const runs: VariantRun[] = variants.map((core) => ({ core, detected: first.openblasCore, f32: {} }));
  mergeMax(runs[0]!.f32, first.f32);
  // alternate the variants (own, forced, own, forced) when there is more than one to compare
  for (let pass = 0; pass < (runs.length > 1 ? 2 : 0); pass++) {
    for (const run of runs) {
      if (pass === 0 && run.core === null) continue; // measured above
      const r = runProbe(run.core, req, env);
      if (typeof r === 'string') {
        log(`GEMM tuning: OpenBLAS core type ${run.core ?? 'default'} failed (${r}); left out`);
        run.f32 = {};
        continue;
      }
      if (run.core) run.detected = r.openblasCore;
      mergeMax(run.f32, r.f32);
    }
  }
  const usable = runs.filter((r) => Object.keys(r.f32).length > 0);
  const f32 = chooseF32(usable);
  const f32Choice = Object.fromEntries(GEMM_CLASSES.map((c) => [c, f32.f32[c].engine])) as Record<GemmClass, F32Engine>;
  const b = runProbe(f32.openblasCore, { threads, f32: false, bf16: true, f32Choice, repeat: 2 }, env);
  if (typeof b === 'string') throw new Error(`GEMM tuning: the bf16 probe failed (${b}); set ZILI_GEMM_TUNE=off to skip tuning`);
  const bf16 = {} as GemmTuning['bf16'];
  for (const c of GEMM_CLASSES) {
    const cand = b.bf16[c] ?? {};
    const onednn = cand['onednn'] ?? 0, widen = cand['widen'] ?? 0;
    const engine: Bf16Engine = onednn > widen ? 'onednn' : 'widen';
    bf16[c] = {
      engine,
      gflops: round(Math.max(onednn, widen)),
      candidates: Object.fromEntries(Object.entries(cand).map(([k, v]) => [k === 'widen' ? `f32-widen:${f32Choice[c]}` : `onednn-bf16`, round(v)])),
      impl: engine === 'widen' ? `f32-widen:${f32Choice[c]}` : b.bf16Impl[c] ?? 'onednn',
    };
  }
  return { ...key, measuredAt: new Date().toISOString(), seconds: round((performance.now() - t0) / 1000), openblasDetected: first.openblasCore, openblasCore: f32.openblasCore, f32: f32.f32, bf16 };
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes the tuning lock (a file created exclusively beside the cache), so that processes starting
 * together on a fresh machine (ranks of one job) measure once instead of all at once. `waited`:
 * another process held it, so its result may be in the cache now.
 */
function lockTuning(log?: (s: string) => void): { release: () => void; waited: boolean } {
  const lock = cacheFile() + '.lock';
  const none = () => {};
  try {
    mkdirSync(dirname(lock), { recursive: true });
  } catch {
    return { release: none, waited: false }; // read-only cache: measure without a lock
  }
  let waited = false;
  const start = Date.now();
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      return { release: () => rmSync(lock, { force: true }), waited };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return { release: none, waited };
    }
    try {
      if (Date.now() - statSync(lock).mtimeMs > 300_000) rmSync(lock, { force: true }); // its holder died while tuning
    } catch {
      // released meanwhile
    }
    if (Date.now() - start > 300_000) return { release: none, waited };
    if (!waited) log?.(`waiting for another process that is tuning the GEMM engines (${lock})`);
    waited = true;
    sleepMs(200);
  }
}

/** The cached decision for this CPU and environment, tuning (and caching) it on first use. */
export function gemmTuning(threads: number, opts: { retune?: boolean; env?: NodeJS.ProcessEnv; log?: (s: string) => void } = {}): GemmTuning {
  const env = opts.env ?? process.env;
  const key = keyOf(threads, env);
  const hit = opts.retune ? undefined : readTable().find((e) => sameKey(e, key));
  if (hit) return hit;
  const { release, waited } = lockTuning(opts.log);
  try {
    const theirs = waited && !opts.retune ? readTable().find((e) => sameKey(e, key)) : undefined;
    return theirs ?? tuneAndStore(threads, env, key, opts.log);
  } finally {
    release();
  }
}

function tuneAndStore(threads: number, env: NodeJS.ProcessEnv, key: ReturnType<typeof keyOf>, log?: (s: string) => void): GemmTuning {
  log?.(`tuning the GEMM engines for ${key.cpu}, ${threads} threads (once; cached in ${cacheFile()})`);
  const t = tuneGemm(threads, env, log);
  const table = readTable();
  try {
    mkdirSync(dirname(cacheFile()), { recursive: true });
    writeFileAtomic(cacheFile(), JSON.stringify(table.filter((e) => !sameKey(e, key)).concat(t), null, 2));
  } catch {
    // a read-only cache only costs a re-measurement
  }
  return t;
}
