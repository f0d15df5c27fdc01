// Structural WGSL kernels: reduce (sum / max over the middle axis of [outer, axis, inner]),
// copyStrided (any strides on both sides, rank <= 8, on raw 32-bit words so f32 and i32 share it),
// gatherRows and a deterministic scatterAddRows: a first pass links each id to its next occurrence
// (O(n²) id comparisons, no atomics), a second walks each chain in order, so sums never depend on
// thread timing.
import { MAIN_1D, MAIN_ROWS, WG } from './common.js';

/** One invocation per output when inner > 1 (reads coalesce along inner); one workgroup per row when inner == 1. */
export function reduceShader(op: 'sum' | 'max', t: 'f32' | 'i32', rowPerWorkgroup: boolean): string {
  const init = op === 'sum' ? `${t}(0)` : t === 'f32' ? 'neg_inf()' : 'i32(-2147483648)';
  const comb = (acc: string, v: string) => (op === 'sum' ? `${acc} + ${v}` : `select(${acc}, ${v}, ${v} > ${acc})`);
  if (!rowPerWorkgroup)
    return /* wgsl */ `
struct P { outer: u32, axis: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${t}>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
fn neg_inf() -> f32 { var b = 0xff800000u; return bitcast<f32>(b); }
${MAIN_1D}
  if (i >= p.outer * p.inner) { return; }
  let o = i / p.inner;
  let n = i % p.inner;
  var acc = ${init};
  for (var a = 0u; a < p.axis; a++) {
    let v = x[(o * p.axis + a) * p.inner + n];
    acc = ${comb('acc', 'v')};
  }
  out[i] = acc;
}`;
  // row per workgroup: strided partial results, then a tree (sum in f32 for both dtypes is not exact for i32: use i32 tree)
  return /* wgsl */ `
struct P { outer: u32, axis: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${t}>;
@group(0) @binding(2) var<storage, read_write> out: array<${t}>;
var<workgroup> part: array<${t}, ${WG}>;
fn neg_inf() -> f32 { var b = 0xff800000u; return bitcast<f32>(b); }
${MAIN_ROWS}
  if (row >= p.outer) { return; }
  var acc = ${init};
  for (var a = lid; a < p.axis; a += ${WG}u) {
    let v = x[row * p.axis + a];
    acc = ${comb('acc', 'v')};
  }
  part[lid] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { let v = part[lid + s]; let c = part[lid]; part[lid] = ${comb('c', 'v')}; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[row] = part[0]; }
}`;
}

export function copyStridedShader(): string {
  return /* wgsl */ `
struct P { n: u32, rank: u32, srcOff: u32, dstOff: u32, shape: array<vec4<u32>, 2>, ss: array<vec4<u32>, 2>, ds: array<vec4<u32>, 2> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
${MAIN_1D}
  if (i >= p.n) { return; }
  var rem = i;
  var si = p.srcOff;
  var di = p.dstOff;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let ext = p.shape[du / 4u][du % 4u];
    let c = rem % ext;
    rem = rem / ext;
    si += c * p.ss[du / 4u][du % 4u];
    di += c * p.ds[du / 4u][du % 4u];
  }
  dst[di] = src[si];
}`;
}

/** out[r, :] = table[ids[r], :]; ids outside [0, rows) give zero rows (a GPU cannot throw). */
export function gatherShader(): string {
  return /* wgsl */ `
struct P { n: u32, dim: u32, rows: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
${MAIN_1D}
  if (i >= p.n * p.dim) { return; }
  let r = i / p.dim;
  let j = i % p.dim;
  let id = ids[r];
  out[i] = select(0u, table[u32(id) * p.dim + j], id >= 0 && u32(id) < p.rows);
}`;
}

/** next[i] = the smallest i' > i with ids[i'] == ids[i], or -1; first[i] = 1 when no earlier i' has it. */
export function scatterLinkShader(): string {
  return /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> link: array<i32>;
${MAIN_1D}
  if (i >= p.n) { return; }
  let id = ids[i];
  var nxt = -1;
  for (var k = i + 1u; k < p.n; k++) { if (ids[k] == id) { nxt = i32(k); break; } }
  var first = 1;
  for (var k = 0u; k < i; k++) { if (ids[k] == id) { first = 0; break; } }
  link[2u * i] = nxt;
  link[2u * i + 1u] = first;
}`;
}

/** table[ids[i], j] += Σ over the chain from each first occurrence i, in index order. */
export function scatterAddShader(t: 'f32' | 'i32'): string {
  return /* wgsl */ `
struct P { n: u32, dim: u32, rows: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<${t}>;
@group(0) @binding(2) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read> link: array<i32>;
@group(0) @binding(4) var<storage, read_write> table: array<${t}>;
${MAIN_1D}
  if (i >= p.n * p.dim) { return; }
  let r = i / p.dim;
  let j = i % p.dim;
  let id = ids[r];
  if (link[2u * r + 1u] == 0 || id < 0 || u32(id) >= p.rows) { return; }
  var acc = table[u32(id) * p.dim + j];
  var k = i32(r);
  while (k >= 0) {
    acc = acc + src[u32(k) * p.dim + j];
    k = link[2u * u32(k)];
  }
  table[u32(id) * p.dim + j] = acc;
}`;
}
