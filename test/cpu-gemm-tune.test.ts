// GEMM engine selection (src/backend/cpu/gemm-tune.ts): the decision rule on given measurements,
// the core type ladder and ISA cap, that a cached decision is applied before OpenBLAS loads, that
// every engine a class can be given computes the same product, and one real tuning run with
// OpenBLAS forced onto its generic Prescott kernels, which must time the stronger core type the
// CPU supports. No assertion depends on how fast anything ran.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type GemmTuning, type VariantRun, chooseF32, tuneGemm } from '../src/backend/cpu/gemm-tune.js';
import { bestOpenblasCore, coreRank, cpuIdentity, cpuKey } from '../src/backend/cpu/cpu-info.js';
import { BF16_ENGINES, F32_ENGINES, GEMM_CLASSES, classIndex } from '../src/backend/cpu/gemm-engines.js';
import { loadNative } from '../src/backend/cpu/native.js';
import { mfu, unitOfImpl } from '../src/train/mfu.js';
import { preset } from '../src/nn/presets.js';
import { assertClose, randArray, rng } from './native-helpers.js';

const rates = (openblas: number, onednn: number) => Object.fromEntries(GEMM_CLASSES.map((c) => [c, { openblas, onednn }]));

test('chooseF32: a forced core type replaces a fallen-back detection; oneDNN wins the classes where it is faster', () => {
  const runs: VariantRun[] = [
    { core: null, detected: 'Prescott', f32: rates(40, 150) },
    { core: 'SkylakeX', detected: 'SkylakeX', f32: rates(290, 150) },
  ];
  const d = chooseF32(runs);
  assert.equal(d.openblasCore, 'SkylakeX');
  for (const c of GEMM_CLASSES) assert.deepEqual([d.f32[c].engine, d.f32[c].gflops], ['openblas', 290]);
  assert.deepEqual(d.f32.large.candidates, { 'openblas (Prescott)': 40, 'openblas:SkylakeX': 290, onednn: 150 });
  // without the forced variant, oneDNN beats the Prescott kernels everywhere
  const alone = chooseF32([runs[0]!]);
  assert.equal(alone.openblasCore, null);
  for (const c of GEMM_CLASSES) assert.equal(alone.f32[c].engine, 'onednn');
  // a forced variant within 5% of OpenBLAS's own choice is not worth overriding the library
  assert.equal(chooseF32([{ core: null, detected: 'Zen', f32: rates(100, 50) }, { core: 'Haswell', detected: 'Haswell', f32: rates(104, 50) }]).openblasCore, null);
});

test('core type ladder: the strongest the flags support, capped by ONEDNN_MAX_CPU_ISA', () => {
  const spr = { model: 'Xeon', arch: 'x64', flags: ['pni', 'sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512_bf16', 'amx_tile'] };
  assert.equal(bestOpenblasCore(spr, {}), 'Cooperlake');
  assert.equal(bestOpenblasCore(spr, { ONEDNN_MAX_CPU_ISA: 'AVX2' }), 'Haswell');
  assert.equal(bestOpenblasCore({ ...spr, flags: ['pni', 'sse4_2', 'avx', 'avx2', 'fma'] }, {}), 'Haswell');
  assert.ok(coreRank('x64', 'Prescott') < coreRank('x64', 'Haswell'));
  assert.equal(coreRank('x64', 'Zen'), coreRank('x64', 'Haswell'), 'Zen runs the Haswell kernels');
  assert.notEqual(cpuKey(spr), cpuKey({ ...spr, flags: spr.flags.slice(1) }), 'the cache key changes with the flags');
});

test('MFU: the unit follows the GEMM implementation and MFU never exceeds 1', () => {
  assert.equal(unitOfImpl('brg:avx512_core_amx_bf16'), 'amx-bf16');
  assert.equal(unitOfImpl('brg:avx512_core_bf16'), 'avx512-bf16');
  assert.equal(unitOfImpl('f32-widen:openblas'), 'f32-fma');
  const c = preset('tiny');
  assert.equal(mfu(1e12, c, c.seqLen, 1e9), 1);
  assert.equal(mfu(1000, c, c.seqLen, 0), 0);
});

test('every engine a shape class can be given computes the same product', () => {
  const N = loadNative();
  const r = rng(5);
  // one shape per class: small, thin (a dimension < 512), large
  const shapes = { small: [64, 48, 32], thin: [512, 128, 256], large: [512, 512, 512] } as const;
  try {
    for (const cls of GEMM_CLASSES) {
      const [m, n, k] = shapes[cls];
      assert.equal(N.gemmClass(m, n, k), cls);
      const a = randArray(m * k, r), b = randArray(n * k, r);
      const ab = new Uint16Array(a.length), bb = new Uint16Array(b.length);
      N.castF32ToBf16(a, ab);
      N.castF32ToBf16(b, bb);
      const results: Float32Array[] = [];
      for (const e of Object.values(F32_ENGINES)) {
        N.setGemmChoice(false, classIndex(cls), e);
        const c = new Float32Array(m * n);
        N.sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n);
        results.push(c);
      }
      assertClose(results[1]!, results[0]!, 1e-4, 1e-4, `${cls}: onednn vs openblas`);
      const bres: Float32Array[] = [];
      for (const e of N.onednnBf16() ? Object.values(BF16_ENGINES) : [BF16_ENGINES.widen]) {
        N.setGemmChoice(true, classIndex(cls), e);
        const c = new Float32Array(m * n);
        N.bgemm(false, true, m, n, k, 1, ab, k, bb, k, 0, c, n);
        bres.push(c);
      }
      for (const c of bres.slice(1)) assertClose(c, bres[0]!, 1e-4, 1e-4, `${cls}: bf16 engines`);
      assert.throws(() => N.setGemmChoice(false, classIndex(cls), 7), /unknown f32 engine 7/);
    }
  } finally {
    // back to what this process was tuned to (other tests in this file use the addon too)
    for (const cls of GEMM_CLASSES) N.setGemmChoice(false, classIndex(cls), F32_ENGINES.openblas);
  }
});

const id = cpuIdentity();
const best = bestOpenblasCore(id, {});
const canForce = best !== undefined && coreRank(id.arch, best) > coreRank(id.arch, 'Prescott');

function cachedEntry(): GemmTuning {
  const choice = (engine: string) => ({ engine, gflops: 1, candidates: {} });
  return {
    cpu: cpuKey(id), threads: 2, env: { openblasCoretype: 'Prescott', isaCap: '' }, measuredAt: 'test', seconds: 0,
    openblasDetected: 'Prescott', openblasCore: best!,
    f32: { small: choice('openblas'), thin: choice('onednn'), large: choice('openblas') } as GemmTuning['f32'],
    bf16: Object.fromEntries(GEMM_CLASSES.map((c) => [c, { ...choice('widen'), impl: 'f32-widen:openblas' }])) as GemmTuning['bf16'],
  };
}
const loadScript = `import('${new URL('../src/backend/cpu/native.js', import.meta.url).href}').then((m) => { const n = m.loadNative();
  console.log(JSON.stringify({ core: n.openblasCore(), thin: n.sgemmEngine(false, true, 2048, 384, 384), large: n.sgemmEngine(false, true, 1024, 1024, 1024), bf16: n.bgemmImpl(false, true, 2048, 384, 384) })); })`;
function childEnv(dir: string): NodeJS.ProcessEnv {
  const { ZILI_USER_OPENBLAS_CORETYPE: _u, ...env } = process.env;
  return { ...env, ZILI_CACHE: dir, ZILI_THREADS: '2', OPENBLAS_CORETYPE: 'Prescott' };
}

test('a process that finds another one tuning waits for its result instead of measuring too', { skip: !canForce && 'no OpenBLAS core type above Prescott on this CPU' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zili-tune-'));
  try {
    writeFileSync(join(dir, 'gemm-engines.json.lock'), '');
    const child = spawn(process.execPath, ['--input-type=module', '-e', loadScript], { env: childEnv(dir) });
    let out = '', err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const done = new Promise<number>((res) => child.on('close', (code) => res(code ?? -1)));
    // once it says it waits, the "other process" finishes: writes its result, then releases the lock
    await new Promise<void>((res) => child.stderr.on('data', () => /waiting for another process/.test(err) && res()));
    writeFileSync(join(dir, 'gemm-engines.json'), JSON.stringify([cachedEntry()]));
    rmSync(join(dir, 'gemm-engines.json.lock'));
    assert.equal(await done, 0, err);
    assert.doesNotMatch(err, /^tuning the GEMM engines/m);
    assert.equal((JSON.parse(out.trim()) as { core: string }).core.toLowerCase(), best!.toLowerCase());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cached decision is applied: its core type is set before OpenBLAS loads, its engines are handed to the addon', { skip: !canForce && 'no OpenBLAS core type above Prescott on this CPU' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'zili-tune-'));
  try {
    writeFileSync(join(dir, 'gemm-engines.json'), JSON.stringify([cachedEntry()]));
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', loadScript], { env: childEnv(dir), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout.trim()) as Record<string, string>;
    assert.equal(got['core']!.toLowerCase(), best!.toLowerCase());
    assert.equal(got['thin'], 'onednn');
    assert.equal(got['large'], 'openblas');
    assert.equal(got['bf16'], 'f32-widen:onednn', 'widening runs the f32 engine of its class');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tuning with OpenBLAS forced to Prescott times the strongest core type the CPU supports and keeps the fastest candidate', { skip: !canForce && 'no OpenBLAS core type above Prescott on this CPU' }, () => {
  const { ZILI_USER_OPENBLAS_CORETYPE: _u, ...base } = process.env;
  const t = tuneGemm(2, { ...base, OPENBLAS_CORETYPE: 'Prescott' });
  assert.equal(t.openblasDetected, 'Prescott');
  for (const c of GEMM_CLASSES) {
    const cand = t.f32[c].candidates;
    assert.ok(`openblas:${best}` in cand && 'openblas (Prescott)' in cand && 'onednn' in cand, JSON.stringify(cand));
    const selectable = ['onednn', t.openblasCore ? `openblas:${t.openblasCore}` : 'openblas (Prescott)'];
    assert.equal(t.f32[c].gflops, Math.max(...selectable.map((k) => cand[k]!)));
    assert.equal(t.bf16[c].gflops, Math.max(...Object.values(t.bf16[c].candidates)));
  }
});
