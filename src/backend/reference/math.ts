// Scalar definitions of every unary and binary op and their derivatives, in float64: the single
// source of truth the reference backend computes with and other backends are tested against.
import type { BinaryOp, UnaryOp } from '../contract.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function unaryScalar(op: UnaryOp, x: number): number {
  switch (op) {
    case 'neg': return -x;
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sqrt': return Math.sqrt(x);
    case 'rsqrt': return 1 / Math.sqrt(x);
    case 'sin': return Math.sin(x);
    case 'cos': return Math.cos(x);
    case 'tanh': return Math.tanh(x);
    case 'sigmoid': return 1 / (1 + Math.exp(-x));
    case 'relu': return x > 0 ? x : 0;
    case 'silu': return x / (1 + Math.exp(-x));
    case 'gelu': return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    case 'abs': return Math.abs(x);
    case 'recip': return 1 / x;
    case 'square': return x * x;
  }
}

/** d f(x) / dx, given x and y = f(x). */
export function unaryDerivative(op: UnaryOp, x: number, y: number): number {
  switch (op) {
    case 'neg': return -1;
    case 'exp': return y;
    case 'log': return 1 / x;
    case 'sqrt': return 0.5 / y;
    case 'rsqrt': return -0.5 * y * y * y;
    case 'sin': return Math.cos(x);
    case 'cos': return -Math.sin(x);
    case 'tanh': return 1 - y * y;
    case 'sigmoid': return y * (1 - y);
    case 'relu': return x > 0 ? 1 : 0;
    case 'silu': {
      const s = 1 / (1 + Math.exp(-x));
      return s * (1 + x * (1 - s));
    }
    case 'gelu': {
      const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    }
    case 'abs': return x > 0 ? 1 : x < 0 ? -1 : 0;
    case 'recip': return -y * y;
    case 'square': return 2 * x;
  }
}

export function binaryScalar(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'max': return a >= b ? a : b;
    case 'min': return a <= b ? a : b;
    case 'pow': return Math.pow(a, b);
    case 'eq': return a === b ? 1 : 0;
    case 'lt': return a < b ? 1 : 0;
    case 'gt': return a > b ? 1 : 0;
  }
}
