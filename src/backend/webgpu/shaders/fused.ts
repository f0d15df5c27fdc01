// Fused WGSL routines: RMSNorm forward/backward (a workgroup per row; the weight gradient sums rows
// in order, one invocation per column, so it is deterministic), RoPE from cos/sin tables computed
// on the host in f64 (GPU sin/cos of large angles are not accurate enough), and softmax
// cross-entropy forward (a workgroup per row: max, sum of exp, log-sum-exp) and backward.
import { MAIN_1D, MAIN_ROWS, WG, WG_REDUCE } from './common.js';

export function rmsnormFwdShader(): string {
  return /* wgsl */ `
struct P { rows: u32, dim: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
${WG_REDUCE}
${MAIN_ROWS}
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var ss = 0.0;
  for (var j = lid; j < p.dim; j += ${WG}u) { let v = x[base + j]; ss += v * v; }
  let tot = wg_sum(ss, lid);
  let s = 1.0 / sqrt(tot / f32(p.dim) + p.eps);
  if (lid == 0u) { rstd[row] = s; }
  for (var j = lid; j < p.dim; j += ${WG}u) { y[base + j] = x[base + j] * s * w[j]; }
}`;
}

export function rmsnormBwdDxShader(): string {
  return /* wgsl */ `
struct P { rows: u32, dim: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
${WG_REDUCE}
${MAIN_ROWS}
  if (row >= p.rows) { return; }
  let base = row * p.dim;
  var d = 0.0;
  for (var j = lid; j < p.dim; j += ${WG}u) { d += dy[base + j] * w[j] * x[base + j]; }
  let dot = wg_sum(d, lid);
  let s = rstd[row];
  let c = s * s * s * dot / f32(p.dim);
  for (var j = lid; j < p.dim; j += ${WG}u) { dx[base + j] = s * dy[base + j] * w[j] - c * x[base + j]; }
}`;
}

export function rmsnormBwdDwShader(): string {
  return /* wgsl */ `
struct P { rows: u32, dim: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
${MAIN_1D}
  if (i >= p.dim) { return; }
  var acc = 0.0;
  for (var r = 0u; r < p.rows; r++) { acc += dy[r * p.dim + i] * x[r * p.dim + i] * rstd[r]; }
  dw[i] = acc;
}`;
}

/** x [B, T, H, D]; tables cos/sin [posOffset + T, D/2]; sign = -1 for the inverse rotation. */
export function ropeShader(): string {
  return /* wgsl */ `
struct P { n: u32, seq: u32, heads: u32, half: u32, pos: u32, sign: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tab: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${MAIN_1D}
  if (i >= p.n) { return; }
  let k = i % p.half;
  let bth = i / p.half;
  let t = (bth / p.heads) % p.seq;
  let base = bth * 2u * p.half;
  let at = (p.pos + t) * p.half + k;
  let c = tab[2u * at];
  let s = p.sign * tab[2u * at + 1u];
  let x1 = x[base + k];
  let x2 = x[base + k + p.half];
  out[base + k] = x1 * c - x2 * s;
  out[base + k + p.half] = x2 * c + x1 * s;
}`;
}

export function crossEntropyFwdShader(): string {
  return /* wgsl */ `
struct P { rows: u32, vocab: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tg: array<i32>;
@group(0) @binding(3) var<storage, read_write> losses: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
${WG_REDUCE}
${MAIN_ROWS}
  if (row >= p.rows) { return; }
  let base = row * p.vocab;
  var mx = neg_inf();
  for (var j = lid; j < p.vocab; j += ${WG}u) { mx = max(mx, x[base + j]); }
  let m = wg_max(mx, lid);
  var z = 0.0;
  for (var j = lid; j < p.vocab; j += ${WG}u) { z += exp(x[base + j] - m); }
  let tot = wg_sum(z, lid);
  if (lid == 0u) {
    let l = m + log(tot);
    lse[row] = l;
    let t = tg[row];
    losses[row] = select(l - x[base + u32(max(t, 0))], 0.0, t < 0);
  }
}`;
}

export function crossEntropyBwdShader(): string {
  return /* wgsl */ `
struct P { rows: u32, vocab: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tg: array<i32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read_write> dl: array<f32>;
${MAIN_1D}
  if (i >= p.rows * p.vocab) { return; }
  let r = i / p.vocab;
  let j = i % p.vocab;
  let t = tg[r];
  if (t < 0) { dl[i] = 0.0; return; }
  dl[i] = (exp(x[i] - lse[r]) - select(0.0, 1.0, u32(t) == j)) * p.scale;
}`;
}
