// Tiled shared-memory GEMM in WGSL: C[b] = alpha · op(A[b]) @ op(B[b]) + beta · C[b], row-major.
// A 64×64 tile of C per workgroup of 16×16 invocations, each accumulating a 4×4 block (rows
// ty + 16r, columns tx + 16c so neighbouring invocations touch neighbouring addresses); K advances
// in steps of 16 through workgroup memory. Loads are arranged so that consecutive invocations read
// consecutive addresses for either transpose. Batch in workgroup_id.z (plus a base for > 65535).
export const TM = 64, TN = 64, TK = 16;

export function matmulShader(transA: boolean, transB: boolean): string {
  // element e (0..1023) of a 64×16 (A) or 16×64 (B) tile: which (row, k) it is, contiguous dim first
  const aIdx = transA ? 'let ti = e % 64u; let tl = e / 64u;' : 'let tl = e % 16u; let ti = e / 16u;';
  const aAddr = transA ? 'aBase + gl * p.m + gi' : 'aBase + gi * p.k + gl';
  const bIdx = transB ? 'let tl = e % 16u; let tj = e / 16u;' : 'let tj = e % 64u; let tl = e / 64u;';
  const bAddr = transB ? 'bBase + gj * p.k + gl' : 'bBase + gl * p.n + gj';
  return /* wgsl */ `
struct P { m: u32, n: u32, k: u32, strideA: u32, strideB: u32, batchBase: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
var<workgroup> As: array<f32, ${TK * TM}>;
var<workgroup> Bs: array<f32, ${TK * TN}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let batch = wid.z + p.batchBase;
  let aBase = batch * p.strideA;
  let bBase = batch * p.strideB;
  let row0 = wid.y * ${TM}u;
  let col0 = wid.x * ${TN}u;
  let tx = lid.x;
  let ty = lid.y;
  // four named accumulators (not an array) so that they stay in registers on every compiler
  var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0); var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
  for (var l0 = 0u; l0 < p.k; l0 += ${TK}u) {
    for (var q = 0u; q < 4u; q++) {
      let e = tid + q * 256u;
      {
        ${aIdx}
        let gi = row0 + ti; let gl = l0 + tl;
        As[tl * ${TM}u + ti] = select(0.0, A[${aAddr}], gi < p.m && gl < p.k);
      }
      {
        ${bIdx}
        let gj = col0 + tj; let gl = l0 + tl;
        Bs[tl * ${TN}u + tj] = select(0.0, B[${bAddr}], gj < p.n && gl < p.k);
      }
    }
    workgroupBarrier();
    for (var l = 0u; l < ${TK}u; l++) {
      let b = vec4<f32>(Bs[l * ${TN}u + tx], Bs[l * ${TN}u + tx + 16u], Bs[l * ${TN}u + tx + 32u], Bs[l * ${TN}u + tx + 48u]);
      let ab = l * ${TM}u + ty;
      acc0 = acc0 + As[ab] * b;
      acc1 = acc1 + As[ab + 16u] * b;
      acc2 = acc2 + As[ab + 32u] * b;
      acc3 = acc3 + As[ab + 48u] * b;
    }
    workgroupBarrier();
  }
  let cBase = batch * p.m * p.n;
  store(cBase, row0 + ty, col0 + tx, acc0);
  store(cBase, row0 + ty + 16u, col0 + tx, acc1);
  store(cBase, row0 + ty + 32u, col0 + tx, acc2);
  store(cBase, row0 + ty + 48u, col0 + tx, acc3);
}

fn store(cBase: u32, i: u32, j0: u32, v: vec4<f32>) {
  if (i >= p.m) { return; }
  for (var c = 0u; c < 4u; c++) {
    let j = j0 + 16u * c;
    if (j >= p.n) { return; }
    let at = cBase + i * p.n + j;
    var x = p.alpha * v[c];
    if (p.beta != 0.0) { x = x + p.beta * C[at]; }
    C[at] = x;
  }
}`;
}

/** Rows and columns of C per workgroup of the direct kernel (8×8 invocations of 4×4). */
export const DIRECT_TILE = 32;

/**
 * GEMM without workgroup memory: each invocation reads its 4 rows of op(A) and 4 columns of
 * op(B) straight from the buffers and keeps a 4×4 block in registers. Faster where "shared"
 * memory is ordinary memory and barriers are expensive (lavapipe runs invocations as CPU SIMD
 * lanes and relies on the caches): 3x the tiled kernel there.
 */
export function matmulDirectShader(transA: boolean, transB: boolean): string {
  const a = (r: string) => (transA ? `A[aBase + l * p.m + min(i0 + ${r}u, mLast)]` : `A[aBase + min(i0 + ${r}u, mLast) * p.k + l]`);
  const b = (c: string) => (transB ? `B[bBase + min(j0 + ${c}u, nLast) * p.k + l]` : `B[bBase + l * p.n + min(j0 + ${c}u, nLast)]`);
  return /* wgsl */ `
struct P { m: u32, n: u32, k: u32, strideA: u32, strideB: u32, batchBase: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let batch = wid.z + p.batchBase;
  let aBase = batch * p.strideA;
  let bBase = batch * p.strideB;
  let i0 = gid.y * 4u;
  let j0 = gid.x * 4u;
  if (i0 >= p.m || j0 >= p.n) { return; }
  let mLast = p.m - 1u;
  let nLast = p.n - 1u;
  var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0); var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
  for (var l = 0u; l < p.k; l++) {
    let bv = vec4<f32>(${b('0')}, ${b('1')}, ${b('2')}, ${b('3')});
    acc0 = acc0 + ${a('0')} * bv;
    acc1 = acc1 + ${a('1')} * bv;
    acc2 = acc2 + ${a('2')} * bv;
    acc3 = acc3 + ${a('3')} * bv;
  }
  let cBase = batch * p.m * p.n;
  store(cBase, i0, j0, acc0);
  store(cBase, i0 + 1u, j0, acc1);
  store(cBase, i0 + 2u, j0, acc2);
  store(cBase, i0 + 3u, j0, acc3);
}

fn store(cBase: u32, i: u32, j0: u32, v: vec4<f32>) {
  if (i >= p.m) { return; }
  for (var c = 0u; c < 4u; c++) {
    let j = j0 + c;
    if (j >= p.n) { return; }
    let at = cBase + i * p.n + j;
    var x = p.alpha * v[c];
    if (p.beta != 0.0) { x = x + p.beta * C[at]; }
    C[at] = x;
  }
}`;
}
