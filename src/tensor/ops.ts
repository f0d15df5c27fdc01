// Differentiable tensor operations. Every op checks its operands (backend, dtype, shape) and names
// the op, the shapes and the fix when they are wrong; dispatches to the backend's primitives or
// fused routines; and records a backward on the tape. Fused routines fall back to compositions of
// primitives when a backend lacks them, so a new chip needs only the primitives to train.
import type { AttentionDesc, Backend, BinaryOp, UnaryOp } from '../backend/contract.js';
import { type DType, type HostArray, dtypeOfArray, isFloat } from './dtype.js';
import { DTypeError, ShapeError } from './errors.js';
import { type Shape, broadcastShapes, broadcastStrides, contiguousStrides, normAxis, numel, sameShape, shapeStr } from './shape.js';
import { Storage, Tensor } from './tensor.js';
import { installGradOps, needsGrad, record } from './autograd.js';

// ---------------------------------------------------------------- creation

export function empty(backend: Backend, shape: Shape, dtype: DType = 'f32'): Tensor {
  for (const d of shape)
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`empty: invalid shape ${shapeStr(shape)}; dimensions must be non-negative integers`);
  if (!backend.dtypes.includes(dtype)) throw new DTypeError(`backend '${backend.name}' does not support dtype ${dtype}; supported: ${backend.dtypes.join(', ')}`);
  return new Tensor(new Storage(backend, backend.alloc(dtype, numel(shape))), shape);
}

export function full(backend: Backend, shape: Shape, value: number, dtype: DType = 'f32'): Tensor {
  const t = empty(backend, shape, dtype);
  backend.fill(t.buf, value);
  return t;
}

export function zeros(backend: Backend, shape: Shape, dtype: DType = 'f32'): Tensor {
  return full(backend, shape, 0, dtype);
}

export function ones(backend: Backend, shape: Shape, dtype: DType = 'f32'): Tensor {
  return full(backend, shape, 1, dtype);
}

export function zerosLike(t: Tensor): Tensor {
  return zeros(t.backend, t.shape, t.dtype);
}

export function onesLike(t: Tensor): Tensor {
  return ones(t.backend, t.shape, t.dtype);
}

/** A tensor holding `data` (a typed array, whose type sets the dtype unless given, or numbers). */
export function tensor(backend: Backend, data: HostArray | readonly number[], shape?: Shape, dtype?: DType): Tensor {
  const arr: HostArray = Array.isArray(data) ? Float32Array.from(data as number[]) : (data as HostArray);
  const dt = dtype ?? (Array.isArray(data) ? 'f32' : dtypeOfArray(arr));
  const sh = shape ?? [arr.length];
  if (numel(sh) !== arr.length) throw new ShapeError(`tensor: ${arr.length} values do not fill shape ${shapeStr(sh)} (${numel(sh)} elements)`);
  const t = empty(backend, sh, dt);
  backend.write(t.buf, arr);
  return t;
}

export function scalar(backend: Backend, value: number, dtype: DType = 'f32'): Tensor {
  return full(backend, [], value, dtype);
}

/** Seeded random tensor (Philox; identical on every backend): normal(0, std) or uniform[lo, hi). */
export function random(backend: Backend, shape: Shape, opts: { seed: number; offset?: number; dist?: 'normal' | 'uniform'; std?: number; lo?: number; hi?: number; dtype?: DType }): Tensor {
  const dtype = opts.dtype ?? 'f32';
  const dist = opts.dist ?? 'normal';
  const raw = empty(backend, shape, 'f32');
  backend.random(raw.buf, dist, opts.seed, opts.offset ?? 0);
  const scale = dist === 'normal' ? (opts.std ?? 1) : (opts.hi ?? 1) - (opts.lo ?? 0);
  const shift = dist === 'normal' ? 0 : (opts.lo ?? 0);
  let out = raw;
  if (scale !== 1) {
    out = mulScalar(raw, scale);
    raw.dispose();
  }
  if (shift !== 0) {
    const shifted = addScalar(out, shift);
    out.dispose();
    out = shifted;
  }
  if (dtype !== 'f32') {
    const c = cast(out, dtype);
    out.dispose();
    out = c;
  }
  return out;
}

// ---------------------------------------------------------------- checks

function sameBackend(op: string, ...ts: Tensor[]): Backend {
  const b = ts[0]!.backend;
  for (const t of ts)
    if (t.backend !== b) throw new DTypeError(`${op}: operands live on different backends ('${b.name}' and '${t.backend.name}'); move them to one backend first`);
  return b;
}

function sameDtype(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype)
    throw new DTypeError(`${op}: dtype mismatch, ${a.dtype} ${shapeStr(a.shape)} vs ${b.dtype} ${shapeStr(b.shape)}; cast one operand with cast(x, '${a.dtype}')`);
}

function requireFloat(op: string, t: Tensor): void {
  if (!isFloat(t.dtype)) throw new DTypeError(`${op}: needs a floating-point tensor, got ${t.dtype} ${shapeStr(t.shape)}; cast it with cast(x, 'f32')`);
}

function requireShape(op: string, what: string, t: Tensor, shape: Shape): void {
  if (!sameShape(t.shape, shape)) throw new ShapeError(`${op}: ${what} has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`);
}

// ---------------------------------------------------------------- element-wise

function unary(op: UnaryOp, x: Tensor): Tensor {
  requireFloat(op, x);
  const out = empty(x.backend, x.shape, x.dtype);
  x.backend.unary(op, x.buf, out.buf);
  if (needsGrad([x]))
    record(out, op, [x], [x, out], (g) => {
      const dx = empty(x.backend, x.shape, x.dtype);
      x.backend.unaryBackward(op, node(out).saved[0]!.buf, node(out).saved[1]!.buf, g.buf, dx.buf);
      return [dx];
    });
  return out;
}
function node(t: Tensor) {
  return t.node!;
}

export const neg = (x: Tensor) => unary('neg', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const sin = (x: Tensor) => unary('sin', x);
export const cos = (x: Tensor) => unary('cos', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const relu = (x: Tensor) => unary('relu', x);
export const silu = (x: Tensor) => unary('silu', x);
export const gelu = (x: Tensor) => unary('gelu', x);
export const abs = (x: Tensor) => unary('abs', x);
export const recip = (x: Tensor) => unary('recip', x);
export const square = (x: Tensor) => unary('square', x);

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const backend = sameBackend(op, a, b);
  sameDtype(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = empty(backend, shape, op === 'eq' || op === 'lt' || op === 'gt' ? a.dtype : a.dtype);
  backend.binary(op, a.buf, broadcastStrides(a.shape, shape), b.buf, broadcastStrides(b.shape, shape), out.buf, shape);
  return out;
}

/** Sums g over the dimensions that were broadcast from `shape` (the backward of broadcasting). */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g.share();
  let cur = g.share();
  const lead = g.rank - shape.length;
  for (let i = 0; i < g.rank; i++) {
    const target = i < lead ? 1 : shape[i - lead]!;
    if (target === 1 && cur.shape[i] !== 1) {
      const next = sumRaw(cur, i);
      cur.dispose();
      cur = next;
    }
  }
  const out = reshapeRaw(cur, shape);
  cur.dispose();
  return out;
}

function binaryGrad(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor): void {
  if (!needsGrad([a, b])) return;
  // mul keeps a factor only for the other's gradient (a masked embedding keeps no [tokens, d] copy)
  const keepA = op !== 'add' && op !== 'sub' && (op !== 'mul' || b.requiresGrad);
  const keepB = op !== 'add' && op !== 'sub' && (op !== 'mul' || a.requiresGrad);
  record(out, op, [a, b], [...(keepA ? [a] : []), ...(keepB ? [b] : [])], (g) => {
    const s = node(out).saved;
    const sa = keepA ? s[0] : undefined, sb = keepB ? s[keepA ? 1 : 0] : undefined;
    let ga: Tensor | null = null, gb: Tensor | null = null;
    const wantA = a.requiresGrad, wantB = b.requiresGrad && op !== 'pow';
    const reduceTo = (t: Tensor, shape: Shape) => {
      const r = sumToShape(t, shape);
      t.dispose();
      return r;
    };
    switch (op) {
      case 'add':
        if (wantA) ga = sumToShape(g, a.shape);
        if (wantB) gb = sumToShape(g, b.shape);
        break;
      case 'sub':
        if (wantA) ga = sumToShape(g, a.shape);
        if (wantB) gb = reduceTo(neg(g), b.shape);
        break;
      case 'mul':
        if (wantA) ga = reduceTo(binaryRaw('mul', g, sb!), a.shape);
        if (wantB) gb = reduceTo(binaryRaw('mul', g, sa!), b.shape);
        break;
      case 'div': {
        if (wantA) ga = reduceTo(binaryRaw('div', g, sb!), a.shape);
        if (wantB) {
          const q = binaryRaw('div', sa!, sb!);
          const q2 = binaryRaw('div', q, sb!);
          const t = binaryRaw('mul', g, q2);
          gb = reduceTo(neg(t), b.shape);
          q.dispose(); q2.dispose(); t.dispose();
        }
        break;
      }
      case 'max':
      case 'min': {
        // the gradient goes to a where a wins (ties to a), to b elsewhere
        const m = binaryRaw(op === 'max' ? 'lt' : 'gt', sa!, sb!); // 1 where b wins
        const one = scalar(a.backend, 1, a.dtype);
        const ma = binaryRaw('sub', one, m);
        if (wantA) ga = reduceTo(binaryRaw('mul', g, ma), a.shape);
        if (wantB) gb = reduceTo(binaryRaw('mul', g, m), b.shape);
        m.dispose(); one.dispose(); ma.dispose();
        break;
      }
      case 'pow': {
        // d a^b / da = b a^(b-1); b is treated as a constant
        const one = scalar(a.backend, 1, a.dtype);
        const bm1 = binaryRaw('sub', sb!, one);
        const p = binaryRaw('pow', sa!, bm1);
        const pb = binaryRaw('mul', p, sb!);
        ga = reduceTo(binaryRaw('mul', g, pb), a.shape);
        one.dispose(); bm1.dispose(); p.dispose(); pb.dispose();
        break;
      }
      default:
        break;
    }
    return [ga, gb];
  });
}

function binary(op: BinaryOp, a: Tensor, b: Tensor | number): Tensor {
  const bt = typeof b === 'number' ? scalar(a.backend, b, a.dtype) : b;
  try {
    const out = binaryRaw(op, a, bt);
    if (op !== 'eq' && op !== 'lt' && op !== 'gt') binaryGrad(op, a, bt, out);
    return out;
  } finally {
    if (typeof b === 'number') bt.dispose();
  }
}

export const add = (a: Tensor, b: Tensor | number) => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor | number) => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor | number) => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor | number) => binary('div', a, b);
export const maximum = (a: Tensor, b: Tensor | number) => binary('max', a, b);
export const minimum = (a: Tensor, b: Tensor | number) => binary('min', a, b);
/** a ** b; the gradient flows to a only */
export const pow = (a: Tensor, b: Tensor | number) => binary('pow', a, b);
export const eq = (a: Tensor, b: Tensor | number) => binary('eq', a, b);
export const lt = (a: Tensor, b: Tensor | number) => binary('lt', a, b);
export const gt = (a: Tensor, b: Tensor | number) => binary('gt', a, b);
export const mulScalar = (a: Tensor, s: number) => binary('mul', a, s);
export const addScalar = (a: Tensor, s: number) => binary('add', a, s);

// ---------------------------------------------------------------- reductions

function sumRaw(x: Tensor, axis: number): Tensor {
  const shape = [...x.shape];
  const outer = numel(shape.slice(0, axis)), n = shape[axis]!, inner = numel(shape.slice(axis + 1));
  shape[axis] = 1;
  const out = empty(x.backend, shape, x.dtype);
  x.backend.reduce('sum', x.buf, outer, n, inner, out.buf);
  return out;
}

/** Sum over `axis` (all axes when omitted). */
export function sum(x: Tensor, axis?: number, keepdim = false): Tensor {
  requireFloat('sum', x);
  if (axis === undefined) {
    const flat = reshape(x, [x.numel]);
    const s = sum(flat, 0, false);
    flat.dispose();
    return s;
  }
  const ax = normAxis('sum', axis, x.rank);
  const kept = sumRaw(x, ax);
  const outShape = keepdim ? kept.shape : x.shape.filter((_, i) => i !== ax);
  const out = keepdim ? kept : reshapeRaw(kept, outShape);
  if (!keepdim) kept.dispose();
  if (needsGrad([x])) record(out, 'sum', [x], [], (g) => [expandRaw(reshapeRaw(g, x.shape.map((d, i) => (i === ax ? 1 : d))), x.shape, true)]);
  return out;
}

export function mean(x: Tensor, axis?: number, keepdim = false): Tensor {
  const s = sum(x, axis, keepdim);
  const n = axis === undefined ? x.numel : x.shape[normAxis('mean', axis, x.rank)]!;
  const m = mulScalar(s, 1 / n);
  s.dispose();
  return m;
}

/** Max over `axis`; the gradient goes to every position equal to the max. */
export function max(x: Tensor, axis: number, keepdim = false): Tensor {
  requireFloat('max', x);
  const ax = normAxis('max', axis, x.rank);
  const shape = [...x.shape];
  const outer = numel(shape.slice(0, ax)), n = shape[ax]!, inner = numel(shape.slice(ax + 1));
  shape[ax] = 1;
  const kept = empty(x.backend, shape, x.dtype);
  x.backend.reduce('max', x.buf, outer, n, inner, kept.buf);
  const out = keepdim ? kept : reshapeRaw(kept, x.shape.filter((_, i) => i !== ax));
  if (!keepdim) kept.dispose();
  if (needsGrad([x]))
    record(out, 'max', [x], [x, out], (g) => {
      const [sx, so] = node(out).saved;
      // the reshaped views are disposed here: backward may run outside any tidy scope
      const soK = reshapeRaw(so!, shape), gK = reshapeRaw(g, shape);
      const mask = binaryRaw('eq', sx!, soK);
      const gm = binaryRaw('mul', mask, gK);
      for (const t of [mask, soK, gK]) t.dispose();
      return [gm];
    });
  return out;
}

// ---------------------------------------------------------------- shape ops

function reshapeRaw(x: Tensor, shape: Shape): Tensor {
  if (numel(shape) !== x.numel) throw new ShapeError(`reshape: cannot view ${shapeStr(x.shape)} (${x.numel} elements) as ${shapeStr(shape)} (${numel(shape)} elements)`);
  return x.share(shape);
}

/** A view with a new shape (one dimension may be -1). Free: shares the buffer. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = [...shape];
  const neg1 = s.indexOf(-1);
  if (neg1 >= 0) {
    const rest = numel(s.filter((_, i) => i !== neg1));
    if (rest === 0 || x.numel % rest !== 0) throw new ShapeError(`reshape: cannot infer -1 to view ${shapeStr(x.shape)} as ${shapeStr(shape)}`);
    s[neg1] = x.numel / rest;
  }
  const out = reshapeRaw(x, s);
  if (needsGrad([x])) record(out, 'reshape', [x], [], (g) => [reshapeRaw(g, x.shape)]);
  return out;
}

function expandRaw(x: Tensor, shape: Shape, disposeInput = false): Tensor {
  const out = empty(x.backend, shape, x.dtype);
  x.backend.copyStrided(x.buf, 0, broadcastStrides(x.shape, shape), out.buf, 0, contiguousStrides(shape), shape);
  if (disposeInput) x.dispose();
  return out;
}

/** Broadcasts x to `shape` (materialised). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const target = broadcastShapes('expand', x.shape, shape);
  if (!sameShape(target, shape)) throw new ShapeError(`expand: cannot expand ${shapeStr(x.shape)} to ${shapeStr(shape)}`);
  const out = expandRaw(x, shape);
  if (needsGrad([x])) record(out, 'expand', [x], [], (g) => [sumToShape(g, x.shape)]);
  return out;
}

function permuteRaw(x: Tensor, axes: readonly number[]): Tensor {
  const st = contiguousStrides(x.shape);
  const shape = axes.map((a) => x.shape[a]!);
  const out = empty(x.backend, shape, x.dtype);
  x.backend.copyStrided(x.buf, 0, axes.map((a) => st[a]!), out.buf, 0, contiguousStrides(shape), shape);
  return out;
}

export function permute(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== x.rank || new Set(axes.map((a) => normAxis('permute', a, x.rank))).size !== x.rank)
    throw new ShapeError(`permute: axes [${axes.join(', ')}] are not a permutation of 0..${x.rank - 1} for ${shapeStr(x.shape)}`);
  const ax = axes.map((a) => normAxis('permute', a, x.rank));
  const out = permuteRaw(x, ax);
  if (needsGrad([x])) {
    const inv = new Array<number>(ax.length);
    ax.forEach((a, i) => (inv[a] = i));
    record(out, 'permute', [x], [], (g) => [permuteRaw(g, inv)]);
  }
  return out;
}

export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const axes = x.shape.map((_, i) => i);
  const a = normAxis('transpose', d0, x.rank), b = normAxis('transpose', d1, x.rank);
  axes[a] = b;
  axes[b] = a;
  return permute(x, axes);
}

/** x[..., start:end, ...] along axis (copied). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = normAxis('slice', axis, x.rank);
  if (!(0 <= start && start <= end && end <= x.shape[ax]!))
    throw new ShapeError(`slice: range [${start}, ${end}) is outside dimension ${ax} of ${shapeStr(x.shape)}`);
  const st = contiguousStrides(x.shape);
  const shape = [...x.shape];
  shape[ax] = end - start;
  const out = empty(x.backend, shape, x.dtype);
  x.backend.copyStrided(x.buf, start * st[ax]!, st, out.buf, 0, contiguousStrides(shape), shape);
  if (needsGrad([x]))
    record(out, 'slice', [x], [], (g) => {
      const gx = zeros(x.backend, x.shape, g.dtype);
      x.backend.copyStrided(g.buf, 0, contiguousStrides(shape), gx.buf, start * st[ax]!, st, shape);
      return [gx];
    });
  return out;
}

/**
 * x [N, d] times several weights [n_i, d] (PyTorch layout) in ONE GEMM → the packed product
 * [N, Σ n_i] (Q/K/V, gate/up: src/nn/fused-projection.ts). The weights are stacked at compute
 * time, in the compute dtype (bf16: x and the weights are cast for the GEMM, which accumulates in
 * f32), into a temporary that backward rebuilds instead of keeping; backward is one GEMM for x's
 * gradient and one for the stacked weights', whose row blocks are the weights' gradients.
 */
export function linearPacked(x: Tensor, weights: readonly Tensor[], dtype: 'f32' | 'bf16'): Tensor {
  const backend = sameBackend('linearPacked', x, ...weights);
  requireFloat('linearPacked', x);
  if (x.rank !== 2) throw new ShapeError(`linearPacked: x must be [rows, d], got ${shapeStr(x.shape)}`);
  const [N, d] = x.shape as [number, number];
  for (const w of weights) {
    sameDtype('linearPacked', x, w);
    if (w.rank !== 2 || w.shape[1] !== d) throw new ShapeError(`linearPacked: weights must be [n, ${d}] for x ${shapeStr(x.shape)}, got ${shapeStr(w.shape)}`);
  }
  const C = weights.reduce((s, w) => s + w.shape[0]!, 0);
  const cdt: DType = dtype === 'bf16' ? 'bf16' : x.dtype;
  // backward stacks the handles the node saved: the caller may have dropped its own (ZeRO-3 frees a block's weights after its forward)
  const stacked = (ws: readonly Tensor[]): Tensor => {
    const w = empty(backend, [C, d], cdt);
    let at = 0;
    for (const wi of ws) {
      const src = wi.dtype === cdt ? wi : castRaw(wi, cdt);
      backend.copyStrided(src.buf, 0, [d, 1], w.buf, at * d, [d, 1], wi.shape);
      if (src !== wi) src.dispose();
      at += wi.shape[0]!;
    }
    return w;
  };
  const gemm = (a: Tensor, b: Tensor, out: Tensor, m: number, n: number, k: number, transA: boolean, transB: boolean) =>
    backend.matmul(a.buf, b.buf, out.buf, { batch: 1, m, n, k, transA, transB, strideA: 0, strideB: 0, alpha: 1, beta: 0 });
  const outDtype: DType = cdt === 'bf16' ? 'f32' : cdt;
  const xc = x.dtype === cdt ? x : castRaw(x, cdt);
  const w = stacked(weights);
  const out = empty(backend, [N, C], outDtype);
  gemm(xc, w, out, N, C, d, false, true);
  w.dispose();
  if (needsGrad([x, ...weights]))
    record(out, 'linearPacked', [x, ...weights], [xc, ...weights], (g) => {
      const [sx, ...sw] = node(out).saved as Tensor[];
      const gl = cdt === 'bf16' ? castRaw(g, 'bf16') : g.share();
      let gx: Tensor | null = null;
      if (x.requiresGrad) {
        const ws = stacked(sw);
        gx = empty(backend, [N, d], outDtype);
        gemm(gl, ws, gx, N, d, C, false, false);
        ws.dispose();
      }
      const gws: (Tensor | null)[] = weights.map(() => null);
      if (weights.some((wi) => wi.requiresGrad)) {
        const gw = empty(backend, [C, d], outDtype);
        gemm(gl, sx!, gw, C, d, N, true, false);
        let at = 0;
        weights.forEach((wi, i) => {
          const n = wi.shape[0]!;
          if (wi.requiresGrad) {
            const gi = empty(backend, [n, d], outDtype);
            backend.copyStrided(gw.buf, at * d, [d, 1], gi.buf, 0, [d, 1], [n, d]);
            gws[i] = gi;
          }
          at += n;
        });
        gw.dispose();
      }
      gl.dispose();
      return [gx, ...gws];
    });
  if (xc !== x) xc.dispose();
  return out;
}

/**
 * Splits a packed product x [rows, Σ sizes] into contiguous column blocks [rows, sizes_i] (Q/K/V
 * or gate/up computed by one GEMM, src/nn/fused-projection.ts). x must have no other consumer.
 * Backward assembles the blocks' gradients into one [rows, Σ sizes] buffer: the first part that
 * backward reaches allocates it (zeros, for parts that get no gradient) and hands it on as x's
 * gradient, the other parts — all recorded after x's producer, so all reached before it — copy
 * their columns into it. That avoids a zero-padded full-size gradient per part and their sum.
 */
export function splitColumns(x: Tensor, sizes: readonly number[]): Tensor[] {
  if (x.rank !== 2) throw new ShapeError(`splitColumns: x must be [rows, cols], got ${shapeStr(x.shape)}`);
  const [R, C] = x.shape as [number, number];
  if (sizes.reduce((s, n) => s + n, 0) !== C || sizes.some((n) => !(n > 0)))
    throw new ShapeError(`splitColumns: sizes ${sizes.join('+')} must be positive and add up to the ${C} columns of ${shapeStr(x.shape)}`);
  const backend = x.backend;
  const group: { dx: Tensor | null } = { dx: null };
  let at = 0;
  return sizes.map((n) => {
    const col = at;
    at += n;
    const out = empty(backend, [R, n], x.dtype);
    backend.copyStrided(x.buf, col, [C, 1], out.buf, 0, [n, 1], [R, n]);
    if (needsGrad([x]))
      record(out, 'splitColumns', [x], [], (g) => {
        const first = group.dx === null;
        if (first) group.dx = zeros(backend, [R, C], g.dtype);
        // throws "used after dispose" if x had another consumer and autograd summed (and freed) this buffer
        backend.copyStrided(g.buf, 0, [n, 1], group.dx!.buf, col, [C, 1], [R, n]);
        return [first ? group.dx : null];
      });
    return out;
  });
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new ShapeError('concat: needs at least one tensor');
  const first = xs[0]!;
  const backend = sameBackend('concat', ...xs);
  const ax = normAxis('concat', axis, first.rank);
  for (const x of xs) {
    sameDtype('concat', first, x);
    if (x.rank !== first.rank || x.shape.some((d, i) => i !== ax && d !== first.shape[i]))
      throw new ShapeError(`concat: shapes ${xs.map((t) => shapeStr(t.shape)).join(', ')} differ outside axis ${ax}`);
  }
  const shape = [...first.shape];
  shape[ax] = xs.reduce((s, x) => s + x.shape[ax]!, 0);
  const out = empty(backend, shape, first.dtype);
  const ost = contiguousStrides(shape);
  const offsets: number[] = [];
  let at = 0;
  for (const x of xs) {
    offsets.push(at);
    backend.copyStrided(x.buf, 0, contiguousStrides(x.shape), out.buf, at * ost[ax]!, ost, x.shape);
    at += x.shape[ax]!;
  }
  if (needsGrad(xs as Tensor[]))
    record(out, 'concat', [...xs], [], (g) =>
      xs.map((x, i) => {
        if (!x.requiresGrad) return null;
        const gx = empty(backend, x.shape, g.dtype);
        backend.copyStrided(g.buf, offsets[i]! * ost[ax]!, ost, gx.buf, 0, contiguousStrides(x.shape), x.shape);
        return gx;
      }),
    );
  return out;
}

/** Converts dtype; the gradient is cast back. */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return reshape(x, x.shape);
  const out = empty(x.backend, x.shape, dtype);
  x.backend.cast(x.buf, out.buf);
  // the gradient may arrive wider than `dtype` (matmul keeps f32 gradients for bf16 operands)
  if (needsGrad([x]) && isFloat(dtype) && isFloat(x.dtype)) record(out, 'cast', [x], [], (g) => [g.dtype === x.dtype ? g.share() : castRaw(g, x.dtype)]);
  return out;
}
function castRaw(x: Tensor, dtype: DType): Tensor {
  const out = empty(x.backend, x.shape, dtype);
  x.backend.cast(x.buf, out.buf);
  return out;
}

// ---------------------------------------------------------------- matmul

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * Batched matrix product: a [..., m, k] (or [..., k, m] with transA) times b [..., k, n] (or
 * [..., n, k] with transB). b may be 2-D and shared across a's batch (a linear layer), or a 2-D and
 * shared across b's batch. bf16 operands give an f32 result (mixed precision).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const backend = sameBackend('matmul', a, b);
  sameDtype('matmul', a, b);
  requireFloat('matmul', a);
  const transA = !!opts.transA, transB = !!opts.transB;
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: operands need rank >= 2, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const m = transA ? ac : ar, k = transA ? ar : ac;
  const kb = transB ? bc : br, n = transB ? br : bc;
  if (k !== kb)
    throw new ShapeError(
      `matmul: inner dimensions differ: ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} @ ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''} (k = ${k} vs ${kb}); transpose or reshape an operand so they agree`,
    );
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  let batchShape: readonly number[];
  if (sameShape(aBatch, bBatch)) batchShape = aBatch;
  else if (bBatch.length === 0) batchShape = aBatch;
  else if (aBatch.length === 0) batchShape = bBatch;
  else throw new ShapeError(`matmul: batch dimensions ${shapeStr(aBatch)} and ${shapeStr(bBatch)} differ; they must match, or one operand must be 2-D`);
  const batch = numel(batchShape);
  const outDtype: DType = a.dtype === 'bf16' ? 'f32' : a.dtype;
  const out = empty(backend, [...batchShape, m, n], outDtype);
  if (bBatch.length === 0 && aBatch.length > 0 && !transA) {
    // one GEMM over all rows of a (the linear-layer case)
    backend.matmul(a.buf, b.buf, out.buf, { batch: 1, m: batch * m, n, k, transA, transB, strideA: 0, strideB: 0, alpha: 1, beta: 0 });
  } else {
    backend.matmul(a.buf, b.buf, out.buf, {
      batch, m, n, k, transA, transB,
      strideA: aBatch.length === 0 ? 0 : m * k,
      strideB: bBatch.length === 0 ? 0 : k * n,
      alpha: 1, beta: 0,
    });
  }
  if (needsGrad([a, b]))
    record(out, 'matmul', [a, b], [a, b], (g) => {
      const [sa, sb] = node(out).saved as [Tensor, Tensor];
      const gl = a.dtype === 'bf16' ? castRaw(g, 'bf16') : g.share();
      let ga: Tensor | null = null, gb: Tensor | null = null;
      if (a.requiresGrad) {
        const r = transA ? matmul(sb, gl, { transA: transB, transB: true }) : matmul(gl, sb, { transB: !transB });
        ga = reduceBatch(r, a.shape, gradDtype(a.dtype));
      }
      if (b.requiresGrad) {
        const r = transB ? matmul(gl, sa, { transA: true, transB: transA }) : matmul(sa, gl, { transA: !transA });
        gb = reduceBatch(r, b.shape, gradDtype(b.dtype));
      }
      gl.dispose();
      return [ga, gb];
    });
  return out;
}

/**
 * bf16 operands get f32 gradients: the GEMM accumulates in f32, and rounding to bf16 only to widen
 * again in the cast's backward would cost two passes and precision (mixed precision keeps f32 master
 * weights, which is where these gradients go).
 */
function gradDtype(dtype: DType): DType {
  return dtype === 'bf16' ? 'f32' : dtype;
}

/** Reduces a batched gradient to the operand's shape (summing a broadcast batch) and dtype. */
function reduceBatch(r: Tensor, shape: Shape, dtype: DType): Tensor {
  let g = r;
  if (g.rank > shape.length) {
    const folded = reshapeRaw(g, [numel(g.shape.slice(0, g.rank - shape.length)), ...g.shape.slice(g.rank - shape.length)]);
    g.dispose();
    const s = sumRaw(folded, 0);
    folded.dispose();
    g = reshapeRaw(s, shape);
    s.dispose();
  }
  if (g.dtype !== dtype) {
    const c = castRaw(g, dtype);
    g.dispose();
    g = c;
  }
  if (!sameShape(g.shape, shape)) {
    const v = reshapeRaw(g, shape);
    g.dispose();
    g = v;
  }
  return g;
}

// ---------------------------------------------------------------- gather / scatter

/** table[ids] → [...ids.shape, dim]; the gradient scatter-adds into the table. */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  if (ids.dtype !== 'i32') throw new DTypeError(`embedding: ids must be i32, got ${ids.dtype}; build them as an Int32Array`);
  if (table.rank !== 2) throw new ShapeError(`embedding: table must be 2-D [rows, dim], got ${shapeStr(table.shape)}`);
  const dim = table.shape[1]!;
  const out = empty(table.backend, [...ids.shape, dim], table.dtype);
  table.backend.gatherRows(table.buf, ids.buf, dim, out.buf);
  if (needsGrad([table]))
    record(out, 'embedding', [table, ids], [ids], (g) => {
      const gt = zeros(table.backend, table.shape, g.dtype);
      table.backend.scatterAddRows(g.buf, node(out).saved[0]!.buf, dim, gt.buf);
      return [gt, null];
    });
  return out;
}

/** out[rows, dim] with out[ids[i]] += src[i] (the MoE combine); the gradient gathers. */
export function scatterAddRows(src: Tensor, ids: Tensor, rows: number): Tensor {
  if (ids.dtype !== 'i32') throw new DTypeError(`scatterAddRows: ids must be i32, got ${ids.dtype}`);
  if (src.rank !== 2 || ids.rank !== 1 || ids.shape[0] !== src.shape[0])
    throw new ShapeError(`scatterAddRows: src ${shapeStr(src.shape)} must be [n, dim] with ids [n], got ids ${shapeStr(ids.shape)}`);
  const dim = src.shape[1]!;
  const out = zeros(src.backend, [rows, dim], src.dtype);
  src.backend.scatterAddRows(src.buf, ids.buf, dim, out.buf);
  if (needsGrad([src]))
    record(out, 'scatterAddRows', [src, ids], [ids], (g) => {
      const gs = empty(src.backend, src.shape, g.dtype);
      src.backend.gatherRows(g.buf, node(out).saved[0]!.buf, dim, gs.buf);
      return [gs, null];
    });
  return out;
}

// ---------------------------------------------------------------- softmax family (compositions)

export function softmax(x: Tensor, axis = -1): Tensor {
  const ax = normAxis('softmax', axis, x.rank);
  const m = noGradMax(x, ax);
  const z = sub(x, m);
  const e = exp(z);
  const s = sum(e, ax, true);
  const out = div(e, s);
  m.dispose(); z.dispose(); e.dispose(); s.dispose();
  return out;
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const ax = normAxis('logSoftmax', axis, x.rank);
  const m = noGradMax(x, ax);
  const z = sub(x, m);
  const e = exp(z);
  const s = sum(e, ax, true);
  const ls = log(s);
  const out = sub(z, ls);
  m.dispose(); z.dispose(); e.dispose(); s.dispose(); ls.dispose();
  return out;
}

/** max over an axis as a constant (the shift that keeps exp finite does not change the result) */
function noGradMax(x: Tensor, ax: number): Tensor {
  const shape = [...x.shape];
  const outer = numel(shape.slice(0, ax)), n = shape[ax]!, inner = numel(shape.slice(ax + 1));
  shape[ax] = 1;
  const m = empty(x.backend, shape, x.dtype);
  x.backend.reduce('max', x.buf, outer, n, inner, m.buf);
  return m;
}

// ---------------------------------------------------------------- fused routines

/** Fused routines are f32; the reference backend also runs them in f64 (for gradcheck). */
function fusedOk(backend: Backend, dtype: DType): boolean {
  return dtype === 'f32' || (dtype === 'f64' && backend.dtypes.includes('f64'));
}

/** RMSNorm over the last dimension: x * rsqrt(mean(x²) + eps) * w. */
export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const backend = sameBackend('rmsnorm', x, w);
  const dim = x.shape[x.rank - 1]!;
  requireShape('rmsnorm', 'weight', w, [dim]);
  sameDtype('rmsnorm', x, w);
  const f = backend.fused;
  if (!f.rmsnormFwd || !f.rmsnormBwd || !fusedOk(backend, x.dtype)) {
    const x2 = square(x);
    const ms = mean(x2, -1, true);
    const ms2 = addScalar(ms, eps);
    const r = rsqrt(ms2);
    const xn = mul(x, r);
    const out = mul(xn, w);
    for (const t of [x2, ms, ms2, r, xn]) t.dispose();
    return out;
  }
  const rows = x.numel / dim;
  const out = empty(backend, x.shape, x.dtype);
  const rstd = empty(backend, [rows], x.dtype);
  f.rmsnormFwd(x.buf, w.buf, eps, rows, dim, out.buf, rstd.buf);
  if (needsGrad([x, w]))
    record(out, 'rmsnorm', [x, w], [x, w, rstd], (g) => {
      const [sx, sw, sr] = node(out).saved as [Tensor, Tensor, Tensor];
      const dx = empty(backend, x.shape, x.dtype);
      const dw = empty(backend, [dim], x.dtype);
      f.rmsnormBwd!(g.buf, sx.buf, sw.buf, sr.buf, rows, dim, dx.buf, dw.buf);
      return [dx, dw];
    });
  rstd.dispose();
  return out;
}

/** cos/sin tables [T, 1, D/2] for the RoPE composition. */
function ropeTables(backend: Backend, seq: number, headDim: number, theta: number, posOffset: number, dtype: DType): [Tensor, Tensor] {
  const half = headDim / 2;
  const c = new Float64Array(seq * half), s = new Float64Array(seq * half);
  for (let t = 0; t < seq; t++)
    for (let i = 0; i < half; i++) {
      const ang = (posOffset + t) * Math.pow(theta, (-2 * i) / headDim);
      c[t * half + i] = Math.cos(ang);
      s[t * half + i] = Math.sin(ang);
    }
  const conv = (a: Float64Array) => (dtype === 'f64' ? a : Float32Array.from(a));
  return [tensor(backend, conv(c), [seq, 1, half], dtype), tensor(backend, conv(s), [seq, 1, half], dtype)];
}

/** Rotary position embedding on x [B, T, H, D] (rotate-half pairs i, i + D/2), positions posOffset + t. */
export function rope(x: Tensor, theta: number, posOffset = 0): Tensor {
  if (x.rank !== 4) throw new ShapeError(`rope: x must be [batch, seq, heads, headDim], got ${shapeStr(x.shape)}`);
  const [B, T, H, D] = x.shape as [number, number, number, number];
  if (D % 2) throw new ShapeError(`rope: head dimension ${D} must be even`);
  const backend = x.backend, f = backend.fused;
  if (!f.rope || !fusedOk(backend, x.dtype)) {
    const [c, s] = ropeTables(backend, T, D, theta, posOffset, x.dtype);
    const x1 = slice(x, 3, 0, D / 2), x2 = slice(x, 3, D / 2, D);
    const a = mul(x1, c), b = mul(x2, s), p = mul(x2, c), q = mul(x1, s);
    const lo = sub(a, b), hi = add(p, q);
    const out = concat([lo, hi], 3);
    for (const t of [c, s, x1, x2, a, b, p, q, lo, hi]) t.dispose();
    return out;
  }
  const out = empty(backend, x.shape, x.dtype);
  f.rope(x.buf, B, T, H, D, posOffset, theta, out.buf, false);
  if (needsGrad([x]))
    record(out, 'rope', [x], [], (g) => {
      const dx = empty(backend, x.shape, x.dtype);
      f.rope!(g.buf, B, T, H, D, posOffset, theta, dx.buf, true);
      return [dx];
    });
  return out;
}

/** silu(gate) * up. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  const backend = sameBackend('swiglu', gate, up);
  sameDtype('swiglu', gate, up);
  requireShape('swiglu', 'up', up, gate.shape);
  const f = backend.fused;
  if (!f.swigluFwd || !f.swigluBwd || !fusedOk(backend, gate.dtype)) {
    const s = silu(gate);
    const out = mul(s, up);
    s.dispose();
    return out;
  }
  const out = empty(backend, gate.shape, gate.dtype);
  f.swigluFwd(gate.buf, up.buf, out.buf);
  if (needsGrad([gate, up]))
    record(out, 'swiglu', [gate, up], [gate, up], (g) => {
      const [sg, su] = node(out).saved as [Tensor, Tensor];
      const dg = empty(backend, gate.shape, gate.dtype), du = empty(backend, up.shape, up.dtype);
      f.swigluBwd!(sg.buf, su.buf, g.buf, dg.buf, du.buf);
      return [dg, du];
    });
  return out;
}

/**
 * SwiGLU on the packed output of the fused gate/up projection: gu [N, 2h] = [gate | up] → [N, h].
 * With the backend's packed routine the parts are never copied out (nor their gradients back in:
 * the backward writes d(gu) in the packed layout); otherwise splitColumns + swiglu.
 */
export function swigluPacked(gu: Tensor): Tensor {
  if (gu.rank !== 2 || gu.shape[1]! % 2 !== 0) throw new ShapeError(`swigluPacked: gu must be [rows, 2 * hidden], got ${shapeStr(gu.shape)}`);
  const backend = gu.backend;
  const [N, C] = gu.shape as [number, number];
  const h = C / 2;
  const f = backend.fused;
  if (!f.swigluPackedFwd || !f.swigluPackedBwd || !fusedOk(backend, gu.dtype)) {
    const [g, u] = splitColumns(gu, [h, h]) as [Tensor, Tensor];
    const out = swiglu(g, u);
    g.dispose();
    u.dispose();
    return out;
  }
  const out = empty(backend, [N, h], gu.dtype);
  f.swigluPackedFwd(gu.buf, N, h, out.buf);
  if (needsGrad([gu]))
    record(out, 'swigluPacked', [gu], [gu], (g) => {
      const [sgu] = node(out).saved as [Tensor];
      const dgu = empty(backend, [N, C], gu.dtype);
      f.swigluPackedBwd!(sgu.buf, g.buf, N, h, dgu.buf);
      return [dgu];
    });
  return out;
}

/**
 * Causal (or full) scaled dot-product attention with grouped-query heads.
 * q [B, T, Hq, D], k and v [B, T, Hkv, D] → [B, T, Hq, D].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: { causal?: boolean; scale?: number } = {}): Tensor {
  const backend = sameBackend('attention', q, k, v);
  sameDtype('attention', q, k);
  sameDtype('attention', q, v);
  if (q.rank !== 4 || k.rank !== 4) throw new ShapeError(`attention: q, k, v must be [batch, seq, heads, headDim], got q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}`);
  const [B, T, Hq, D] = q.shape as [number, number, number, number];
  const Hkv = k.shape[2]!;
  requireShape('attention', 'k', k, [B, T, Hkv, D]);
  requireShape('attention', 'v', v, [B, T, Hkv, D]);
  if (Hq % Hkv) throw new ShapeError(`attention: query heads ${Hq} must be a multiple of kv heads ${Hkv}`);
  const desc: AttentionDesc = { batch: B, seq: T, headsQ: Hq, headsKV: Hkv, headDim: D, scale: opts.scale ?? 1 / Math.sqrt(D), causal: opts.causal ?? true };
  const f = backend.fused;
  if (!f.attentionFwd || !f.attentionBwd || !fusedOk(backend, q.dtype)) return attentionComposed(q, k, v, desc);
  const out = empty(backend, q.shape, q.dtype);
  const lse = empty(backend, [B, Hq, T], q.dtype);
  f.attentionFwd(q.buf, k.buf, v.buf, desc, out.buf, lse.buf);
  if (needsGrad([q, k, v]))
    record(out, 'attention', [q, k, v], [q, k, v, out, lse], (g) => {
      const [sq, sk, sv, so, sl] = node(out).saved as Tensor[];
      const dq = empty(backend, q.shape, q.dtype), dk = empty(backend, k.shape, q.dtype), dv = empty(backend, v.shape, q.dtype);
      f.attentionBwd!(sq!.buf, sk!.buf, sv!.buf, so!.buf, sl!.buf, g.buf, desc, dq.buf, dk.buf, dv.buf);
      return [dq, dk, dv];
    });
  lse.dispose();
  return out;
}

function attentionComposed(q: Tensor, k: Tensor, v: Tensor, d: AttentionDesc): Tensor {
  const { batch: B, seq: T, headsQ: Hq, headsKV: Hkv, headDim: D } = d;
  const g = Hq / Hkv;
  const tmp: Tensor[] = [];
  const t = <X extends Tensor>(x: X) => (tmp.push(x), x);
  const repeatKv = (x: Tensor) => (g === 1 ? x : t(reshape(t(expand(t(reshape(x, [B, T, Hkv, 1, D])), [B, T, Hkv, g, D])), [B, T, Hq, D])));
  const qh = t(permute(q, [0, 2, 1, 3]));
  const kh = t(permute(repeatKv(k), [0, 2, 1, 3]));
  const vh = t(permute(repeatKv(v), [0, 2, 1, 3]));
  let scores = t(mulScalar(t(matmul(qh, kh, { transB: true })), d.scale));
  if (d.causal) {
    const mask = new Float64Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) mask[i * T + j] = -Infinity;
    scores = t(add(scores, t(tensor(q.backend, q.dtype === 'f64' ? mask : Float32Array.from(mask), [T, T], q.dtype))));
  }
  const p = t(softmax(scores, -1));
  const o = t(matmul(p, vh));
  const out = permute(o, [0, 2, 1, 3]);
  for (const x of tmp) x.dispose();
  return out;
}

/**
 * Mean cross-entropy of logits [N, V] against i32 targets [N]; targets < 0 are ignored (and not
 * counted in the mean).
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  if (logits.rank !== 2) throw new ShapeError(`crossEntropy: logits must be [rows, vocab], got ${shapeStr(logits.shape)}`);
  const [N, V] = logits.shape as [number, number];
  if (targets.dtype !== 'i32') throw new DTypeError(`crossEntropy: targets must be i32, got ${targets.dtype}`);
  requireShape('crossEntropy', 'targets', targets, [N]);
  const backend = sameBackend('crossEntropy', logits, targets);
  const f = backend.fused;
  if (!f.crossEntropyFwd || !f.crossEntropyBwd || !fusedOk(backend, logits.dtype)) return crossEntropyComposed(logits, targets);
  const dt = logits.dtype;
  const losses = empty(backend, [N], dt);
  const lse = empty(backend, [N], dt);
  f.crossEntropyFwd(logits.buf, targets.buf, N, V, losses.buf, lse.buf);
  // count of non-ignored targets, computed on the device
  const tf = castRaw(targets, dt);
  const half = scalar(backend, -0.5, dt), one = scalar(backend, 1, dt);
  const valid = binaryRaw('gt', tf, half);
  const cnt = sumRaw(valid, 0);
  const cntc = binaryRaw('max', cnt, one);
  const total = sumRaw(losses, 0);
  const loss0 = binaryRaw('div', total, cntc);
  const loss = reshapeRaw(loss0, []);
  for (const x of [losses, tf, half, one, valid, cnt, total, loss0]) x.dispose();
  if (needsGrad([logits]))
    record(loss, 'crossEntropy', [logits, targets], [logits, targets, lse, cntc], (g) => {
      const [sl, st, sls, sc] = node(loss).saved as Tensor[];
      const dl = empty(backend, logits.shape, dt);
      if (backend.readSync && !backend.asynchronous) {
        // a synchronous backend reads the two scalars: the kernel scales as it writes (no extra pass over [N, V])
        const scale = Number(backend.readSync(g.buf)[0]) / Number(backend.readSync(sc!.buf)[0]);
        f.crossEntropyBwd!(sl!.buf, st!.buf, sls!.buf, N, V, scale, dl.buf);
        return [dl, null];
      }
      // dlogits = (softmax - onehot) · g / count, with g and count kept on the device
      f.crossEntropyBwd!(sl!.buf, st!.buf, sls!.buf, N, V, 1, dl.buf);
      const s = binaryRaw('div', g, sc!);
      const s11 = reshapeRaw(s, [1, 1]);
      const out = binaryRaw('mul', dl, s11);
      for (const t of [dl, s, s11]) t.dispose();
      return [out, null];
    });
  cntc.dispose();
  lse.dispose();
  return loss;
}

function crossEntropyComposed(logits: Tensor, targets: Tensor): Tensor {
  const [N, V] = logits.shape as [number, number];
  const backend = logits.backend;
  const tmp: Tensor[] = [];
  const t = <X extends Tensor>(x: X) => (tmp.push(x), x);
  const ls = t(logSoftmax(logits, -1));
  const ar = new Float32Array(V).map((_, i) => i);
  const cls = t(tensor(backend, logits.dtype === 'f64' ? Float64Array.from(ar) : ar, [1, V], logits.dtype));
  const tf = t(reshape(t(cast(targets, logits.dtype)), [N, 1]));
  const onehot = t(eq(cls, tf));
  const picked = t(sum(t(mul(ls, onehot))));
  const valid = t(gt(tf, -0.5));
  const count = t(maximum(t(sum(valid)), 1));
  const out = neg(t(div(picked, count)));
  for (const x of tmp) x.dispose();
  return out;
}

// ---------------------------------------------------------------- in-place helpers (no autograd)

/** target += g (gradient accumulation). */
export function accumulateInto(target: Tensor, g: Tensor): void {
  sameDtype('accumulateInto', target, g);
  requireShape('accumulateInto', 'gradient', g, target.shape);
  const st = contiguousStrides(target.shape);
  target.backend.binary('add', target.buf, st, g.buf, st, target.buf, target.shape);
}

/** dst ← src (same shape and dtype), e.g. copying updated master weights into a bf16 copy after cast. */
export function assign(dst: Tensor, src: Tensor): void {
  sameDtype('assign', dst, src);
  requireShape('assign', 'source', src, dst.shape);
  const st = contiguousStrides(dst.shape);
  dst.backend.copyStrided(src.buf, 0, st, dst.buf, 0, st, dst.shape);
}

installGradOps({
  // gradients of one tensor from several consumers may differ in width (bf16 vs f32): sum in the wider
  add: (a, b) => {
    if (a.dtype === b.dtype) return binaryRaw('add', a, b);
    const [wide, narrow] = a.dtype === 'bf16' ? [b, a] : [a, b];
    const w = castRaw(narrow, wide.dtype);
    const s = binaryRaw('add', wide, w);
    w.dispose();
    return s;
  },
  onesLike: (t) => {
    const o = empty(t.backend, t.shape, t.dtype);
    t.backend.fill(o.buf, 1);
    return o;
  },
  accumulateInto,
});
