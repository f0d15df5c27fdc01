// Flash-style causal / full attention with grouped-query heads in WGSL (no T×T matrix): forward
// with an online softmax, one invocation per (batch, head, query) holding q and the output row in
// registers (the head dimension is a specialisation constant); backward in two deterministic
// passes without atomics: dq (and D_i = dO_i · O_i) per query, then dk and dv per key, summing the
// query heads of its group in order.
import { MAIN_1D } from './common.js';

const LAYOUT = /* wgsl */ `
struct P { batch: u32, seq: u32, hq: u32, hkv: u32, scale: f32, causal: u32 }
@group(0) @binding(0) var<uniform> p: P;`;

export function attentionFwdShader(D: number): string {
  return /* wgsl */ `
${LAYOUT}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
${MAIN_1D}
  // i enumerates (b, h, t) with t fastest
  if (i >= p.batch * p.hq * p.seq) { return; }
  let t = i % p.seq;
  let h = (i / p.seq) % p.hq;
  let b = i / (p.seq * p.hq);
  let hk = h / (p.hq / p.hkv);
  let qo = ((b * p.seq + t) * p.hq + h) * ${D}u;
  var qr: array<f32, ${D}>;
  var acc: array<f32, ${D}>;
  for (var e = 0u; e < ${D}u; e++) { qr[e] = q[qo + e] * p.scale; acc[e] = 0.0; }
  var ninf = 0xff800000u;
  var m = bitcast<f32>(ninf);
  var l = 0.0;
  let last = select(p.seq - 1u, t, p.causal != 0u);
  for (var j = 0u; j <= last; j++) {
    let ko = ((b * p.seq + j) * p.hkv + hk) * ${D}u;
    var s = 0.0;
    for (var e = 0u; e < ${D}u; e++) { s += qr[e] * k[ko + e]; }
    let mn = max(m, s);
    let corr = exp(m - mn);
    let w = exp(s - mn);
    l = l * corr + w;
    for (var e = 0u; e < ${D}u; e++) { acc[e] = acc[e] * corr + w * v[ko + e]; }
    m = mn;
  }
  for (var e = 0u; e < ${D}u; e++) { out[qo + e] = acc[e] / l; }
  lse[(b * p.hq + h) * p.seq + t] = m + log(l);
}`;
}

/** dq and D_i per query row. */
export function attentionBwdQShader(D: number): string {
  return /* wgsl */ `
${LAYOUT}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> o: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read_write> dq: array<f32>;
@group(0) @binding(8) var<storage, read_write> dd: array<f32>;
${MAIN_1D}
  if (i >= p.batch * p.hq * p.seq) { return; }
  let t = i % p.seq;
  let h = (i / p.seq) % p.hq;
  let b = i / (p.seq * p.hq);
  let hk = h / (p.hq / p.hkv);
  let qo = ((b * p.seq + t) * p.hq + h) * ${D}u;
  var qr: array<f32, ${D}>;
  var dor: array<f32, ${D}>;
  var acc: array<f32, ${D}>;
  var di = 0.0;
  for (var e = 0u; e < ${D}u; e++) { qr[e] = q[qo + e]; dor[e] = dout[qo + e]; di += dor[e] * o[qo + e]; acc[e] = 0.0; }
  let L = lse[(b * p.hq + h) * p.seq + t];
  let last = select(p.seq - 1u, t, p.causal != 0u);
  for (var j = 0u; j <= last; j++) {
    let ko = ((b * p.seq + j) * p.hkv + hk) * ${D}u;
    var s = 0.0;
    var dp = 0.0;
    for (var e = 0u; e < ${D}u; e++) { s += qr[e] * k[ko + e]; dp += dor[e] * v[ko + e]; }
    let pr = exp(s * p.scale - L);
    let ds = pr * (dp - di) * p.scale;
    for (var e = 0u; e < ${D}u; e++) { acc[e] += ds * k[ko + e]; }
  }
  for (var e = 0u; e < ${D}u; e++) { dq[qo + e] = acc[e]; }
  dd[(b * p.hq + h) * p.seq + t] = di;
}`;
}

/** dk and dv per key row (b, kv head, j). */
export function attentionBwdKVShader(D: number): string {
  return /* wgsl */ `
${LAYOUT}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read> dd: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<f32>;
@group(0) @binding(8) var<storage, read_write> dv: array<f32>;
${MAIN_1D}
  if (i >= p.batch * p.hkv * p.seq) { return; }
  let j = i % p.seq;
  let hk = (i / p.seq) % p.hkv;
  let b = i / (p.seq * p.hkv);
  let g = p.hq / p.hkv;
  let ko = ((b * p.seq + j) * p.hkv + hk) * ${D}u;
  var kr: array<f32, ${D}>;
  var vr: array<f32, ${D}>;
  var dka: array<f32, ${D}>;
  var dva: array<f32, ${D}>;
  for (var e = 0u; e < ${D}u; e++) { kr[e] = k[ko + e]; vr[e] = v[ko + e]; dka[e] = 0.0; dva[e] = 0.0; }
  for (var h = hk * g; h < (hk + 1u) * g; h++) {
    for (var t = select(0u, j, p.causal != 0u); t < p.seq; t++) {
      let qo = ((b * p.seq + t) * p.hq + h) * ${D}u;
      var s = 0.0;
      var dp = 0.0;
      for (var e = 0u; e < ${D}u; e++) { s += q[qo + e] * kr[e]; dp += dout[qo + e] * vr[e]; }
      let r = (b * p.hq + h) * p.seq + t;
      let pr = exp(s * p.scale - lse[r]);
      let ds = pr * (dp - dd[r]) * p.scale;
      for (var e = 0u; e < ${D}u; e++) { dva[e] += pr * dout[qo + e]; dka[e] += ds * q[qo + e]; }
    }
  }
  for (var e = 0u; e < ${D}u; e++) { dk[ko + e] = dka[e]; dv[ko + e] = dva[e]; }
}`;
}
