// Element-wise WGSL kernels: fill, cast, the 15 unary ops and their derivatives, binary ops with
// broadcasting strides (rank <= 8, shape and strides in the parameter uniform), SwiGLU and AdamW.
// Transcendentals are clamped where the GPU builtins may overflow (tanh of large |x|).
import type { BinaryOp, UnaryOp } from '../../contract.js';
import { MAIN_1D } from './common.js';

const GELU_C = Math.sqrt(2 / Math.PI);

const HELPERS = /* wgsl */ `
fn tanh_s(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }
fn sigm(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
`;

export const UNARY_EXPR: Record<UnaryOp, string> = {
  neg: '-x',
  exp: 'exp(x)',
  log: 'log(x)',
  sqrt: 'sqrt(x)',
  rsqrt: '1.0 / sqrt(x)',
  sin: 'sin(x)',
  cos: 'cos(x)',
  tanh: 'tanh_s(x)',
  sigmoid: 'sigm(x)',
  relu: 'select(0.0, x, x > 0.0)',
  silu: 'x * sigm(x)',
  gelu: `0.5 * x * (1.0 + tanh_s(${GELU_C} * (x + 0.044715 * x * x * x)))`,
  abs: 'abs(x)',
  recip: '1.0 / x',
  square: 'x * x',
};

/** d f / dx given x and y = f(x) (multiplied by dy in the kernel). */
export const UNARY_DERIV: Record<UnaryOp, string> = {
  neg: '-1.0',
  exp: 'y',
  log: '1.0 / x',
  sqrt: '0.5 / y',
  rsqrt: '-0.5 * y * y * y',
  sin: 'cos(x)',
  cos: '-sin(x)',
  tanh: '1.0 - y * y',
  sigmoid: 'y * (1.0 - y)',
  relu: 'select(0.0, 1.0, x > 0.0)',
  silu: 'sigm(x) * (1.0 + x * (1.0 - sigm(x)))',
  gelu: `0.5 * (1.0 + tanh_s(${GELU_C} * (x + 0.044715 * x * x * x))) + 0.5 * x * (1.0 - tanh_s(${GELU_C} * (x + 0.044715 * x * x * x)) * tanh_s(${GELU_C} * (x + 0.044715 * x * x * x))) * ${GELU_C} * (1.0 + ${3 * 0.044715} * x * x)`,
  abs: 'sign(x)',
  recip: '-y * y',
  square: '2.0 * x',
};

export function fillShader(): string {
  return /* wgsl */ `
struct P { n: u32, bits: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
${MAIN_1D}
  if (i < p.n) { out[i] = p.bits; }
}`;
}

/** f32 <-> i32 conversion (i32 from f32 truncates toward zero). */
export function castShader(from: 'f32' | 'i32', to: 'f32' | 'i32'): string {
  return /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${from}>;
@group(0) @binding(2) var<storage, read_write> out: array<${to}>;
${MAIN_1D}
  if (i < p.n) { out[i] = ${to}(x[i]); }
}`;
}

export function unaryShader(op: UnaryOp): string {
  return /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
${HELPERS}
${MAIN_1D}
  if (i < p.n) { let x = xs[i]; out[i] = ${UNARY_EXPR[op]}; }
}`;
}

export function unaryBackwardShader(op: UnaryOp): string {
  return /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> ys: array<f32>;
@group(0) @binding(3) var<storage, read> dys: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
${HELPERS}
${MAIN_1D}
  if (i < p.n) { let x = xs[i]; let y = ys[i]; dx[i] = dys[i] * (${UNARY_DERIV[op]}); }
}`;
}

function binaryExpr(op: BinaryOp, t: 'f32' | 'i32'): string {
  const one = t === 'f32' ? '1.0' : '1', zero = t === 'f32' ? '0.0' : '0';
  switch (op) {
    case 'add': return 'a + b';
    case 'sub': return 'a - b';
    case 'mul': return 'a * b';
    case 'div': return t === 'f32' ? 'a / b' : 'select(0, a / b, b != 0)';
    case 'max': return 'select(b, a, a >= b)';
    case 'min': return 'select(b, a, a <= b)';
    case 'pow': return t === 'f32' ? 'powf(a, b)' : 'i32(powf(f32(a), f32(b)))';
    case 'eq': return `select(${zero}, ${one}, a == b)`;
    case 'lt': return `select(${zero}, ${one}, a < b)`;
    case 'gt': return `select(${zero}, ${one}, a > b)`;
  }
}

/** out[i] = a[Σ idx·aStrides + aOff] op b[Σ idx·bStrides + bOff] over outShape (rank <= 8). */
export function binaryShader(op: BinaryOp, t: 'f32' | 'i32'): string {
  return /* wgsl */ `
struct P { n: u32, rank: u32, aOff: u32, bOff: u32, shape: array<vec4<u32>, 2>, sa: array<vec4<u32>, 2>, sb: array<vec4<u32>, 2> }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<${t}>;
@group(0) @binding(2) var<storage, read> B: array<${t}>;
@group(0) @binding(3) var<storage, read_write> out: array<${t}>;
// Math.pow semantics for negative bases with integral exponents and for zero
fn powf(a: f32, b: f32) -> f32 {
  if (b == 0.0) { return 1.0; }
  var inf = 0x7f800000u;
  var nan = 0x7fc00000u;
  if (a == 0.0) { return select(bitcast<f32>(inf), 0.0, b > 0.0); }
  let r = exp2(b * log2(abs(a)));
  if (a > 0.0) { return r; }
  if (floor(b) != b) { return bitcast<f32>(nan); }
  let odd = (abs(b) % 2.0) == 1.0;
  return select(r, -r, odd);
}
${MAIN_1D}
  if (i >= p.n) { return; }
  var rem = i;
  var ia = p.aOff;
  var ib = p.bOff;
  for (var d = i32(p.rank) - 1; d >= 0; d--) {
    let du = u32(d);
    let ext = p.shape[du / 4u][du % 4u];
    let c = rem % ext;
    rem = rem / ext;
    ia += c * p.sa[du / 4u][du % 4u];
    ib += c * p.sb[du / 4u][du % 4u];
  }
  let a = A[ia];
  let b = B[ib];
  out[i] = ${binaryExpr(op, t)};
}`;
}

export function swigluFwdShader(): string {
  return /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${MAIN_1D}
  if (i < p.n) { let x = g[i]; out[i] = x / (1.0 + exp(-x)) * u[i]; }
}`;
}

export function swigluBwdShader(): string {
  return /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read_write> dg: array<f32>;
@group(0) @binding(5) var<storage, read_write> du: array<f32>;
${MAIN_1D}
  if (i < p.n) {
    let x = g[i];
    let s = 1.0 / (1.0 + exp(-x));
    let d = dout[i];
    du[i] = x * s * d;
    dg[i] = d * u[i] * s * (1.0 + x * (1.0 - s));
  }
}`;
}

/** AdamW with bias corrections computed on the host (in f64). */
export function adamwShader(): string {
  return /* wgsl */ `
struct P { n: u32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
${MAIN_1D}
  if (i >= p.n) { return; }
  let g = grad[i];
  let mi = p.b1 * m[i] + (1.0 - p.b1) * g;
  let vi = p.b2 * v[i] + (1.0 - p.b2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let w = param[i];
  param[i] = w - p.lr * p.wd * w - p.lr * (mi / p.bc1) / (sqrt(vi / p.bc2) + p.eps);
}`;
}
