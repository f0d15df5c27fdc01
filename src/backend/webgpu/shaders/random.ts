// Philox4x32-10 in WGSL, bit-exact with src/train/rng-state.ts: element i of a fill at `offset`
// uses word j = offset + i (64-bit), lane j % 4 of the block with counter (lo32(j/4), hi32(j/4), 0, 0)
// and key (lo32(seed), hi32(seed)). Uniforms are exact (24 random bits); normals use the same words
// as philoxNormal but f32 log/cos/sin, so they may differ from the host in the last ulps.
import { MAIN_1D } from './common.js';

export function randomShader(dist: 'uniform' | 'normal'): string {
  return /* wgsl */ `
struct P { n: u32, offLo: u32, offHi: u32, k0: u32, k1: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

// high 32 bits of a 32x32-bit product, from 16-bit halves
fn mulhi(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu; let ah = a >> 16u; let bl = b & 0xffffu; let bh = b >> 16u;
  let ll = al * bl; let lh = al * bh; let hl = ah * bl; let hh = ah * bh;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  return hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
}

fn philox(c: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var x = c;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2<u32>(0x9e3779b9u, 0xbb67ae85u); }
    let hi0 = mulhi(0xd2511f53u, x.x); let lo0 = 0xd2511f53u * x.x;
    let hi1 = mulhi(0xcd9e8d57u, x.z); let lo1 = 0xcd9e8d57u * x.z;
    x = vec4<u32>(hi1 ^ x.y ^ k.x, lo1, hi0 ^ x.w ^ k.y, lo0);
  }
  return x;
}

// word j = (hi, lo) of the stream
fn word(lo: u32, hi: u32) -> u32 {
  let b = vec4<u32>((lo >> 2u) | (hi << 30u), hi >> 2u, 0u, 0u);
  let w = philox(b, vec2<u32>(p.k0, p.k1));
  return w[lo & 3u];
}

// offset + d as a 64-bit (lo, hi) pair
fn add64(d: u32) -> vec2<u32> {
  let lo = p.offLo + d;
  return vec2<u32>(lo, p.offHi + select(0u, 1u, lo < d));
}

${MAIN_1D}
  if (i >= p.n) { return; }
  ${
    dist === 'uniform'
      ? `let j = add64(i);
  out[i] = f32(word(j.x, j.y) >> 8u) * ${2 ** -24};`
      : `// normal index j: pair words 2*floor(j/2), 2*floor(j/2)+1
  let j = add64(i);
  let e = j.x & 0xfffffffeu;
  let u1 = f32((word(e, j.y) >> 8u) + 1u) * ${2 ** -24};
  let u2 = f32(word(e + 1u, j.y) >> 8u) * ${2 ** -24};
  let r = sqrt(-2.0 * log(u1));
  let th = 6.283185307179586 * u2;
  out[i] = select(r * sin(th), r * cos(th), (j.x & 1u) == 0u);`
  }
}`;
}
