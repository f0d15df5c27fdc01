// The webgpu backend: any GPU through Dawn (Vulkan, Metal, D3D12), or the CPU through Mesa's
// lavapipe. Asynchronous: kernel calls enqueue dispatches (batched into command buffers by
// KernelQueue) and `read` is the only way back. Stores f32 and i32 (no bf16: the kit skips its
// bf16 cases and mixed precision is unavailable here). Every primitive and every fused routine of
// the contract is a WGSL kernel in shaders/.
/// <reference types="@webgpu/types" />
import type { AdamWDesc, AttentionDesc, Backend, BinaryOp, DeviceBuffer, FusedRoutines, MatmulDesc, MemoryStats, ReduceOp, UnaryOp } from '../contract.js';
import { type DType, type HostArray, bf16ToF32 } from '../../tensor/dtype.js';
import { BackendError, DTypeError } from '../../tensor/errors.js';
import { type GpuContext, createContext } from './device.js';
import { GpuBuffer, GpuPool } from './pool.js';
import { type Access, KernelQueue, Params } from './queue.js';
import { WG } from './shaders/common.js';
import { adamwShader, binaryShader, castShader, fillShader, swigluBwdShader, swigluFwdShader, unaryBackwardShader, unaryShader } from './shaders/elementwise.js';
import { randomShader } from './shaders/random.js';
import { copyStridedShader, gatherShader, reduceShader, scatterAddShader, scatterLinkShader } from './shaders/structure.js';
import { DIRECT_TILE, TM, TN, matmulDirectShader, matmulShader } from './shaders/matmul.js';
import { crossEntropyBwdShader, crossEntropyFwdShader, rmsnormBwdDwShader, rmsnormBwdDxShader, rmsnormFwdShader, ropeShader } from './shaders/fused.js';
import { attentionBwdKVShader, attentionBwdQShader, attentionFwdShader } from './shaders/attention.js';

const MAX_RANK = 8;
/** head dimensions the attention kernels are specialised for (registers hold one row) */
const MAX_HEAD_DIM = 256;

function gb(b: DeviceBuffer, op: string): GpuBuffer {
  if (!(b instanceof GpuBuffer)) throw new BackendError(`webgpu.${op}: buffer from backend '${b.backend}'; move the tensor to webgpu first`);
  if (b.freed) throw new BackendError(`webgpu.${op}: buffer already freed`);
  return b;
}
function f32(b: DeviceBuffer, op: string): GPUBuffer {
  const g = gb(b, op);
  if (g.dtype !== 'f32') throw new DTypeError(`webgpu.${op}: needs f32 data, got ${g.dtype}; cast it to f32 first`);
  return g.gpu;
}
function i32(b: DeviceBuffer, op: string): GPUBuffer {
  const g = gb(b, op);
  if (g.dtype !== 'i32') throw new DTypeError(`webgpu.${op}: needs i32 ids, got ${g.dtype}`);
  return g.gpu;
}
function num(t: DType, op: string): 'f32' | 'i32' {
  if (t !== 'f32' && t !== 'i32') throw new DTypeError(`webgpu.${op}: dtype ${t} is not stored on webgpu; use f32 or i32`);
  return t;
}
function rank(op: string, shape: readonly number[]): void {
  if (shape.length > MAX_RANK) throw new RangeError(`webgpu.${op}: at most ${MAX_RANK} dimensions, got ${shape.length}`);
}

export interface WebGpuOptions {
  memoryLimitBytes?: number;
  /** GEMM kernel (default: ZILI_WEBGPU_MATMUL, else 'direct' on software adapters and 'tiled' on GPUs) */
  matmul?: 'tiled' | 'direct';
}

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly dtypes: readonly DType[] = ['f32', 'i32'];
  readonly asynchronous = true;
  readonly fused: FusedRoutines;
  readonly description: string;
  readonly queue: KernelQueue;
  private readonly pool: GpuPool;
  private readonly ropeTables = new Map<string, { rows: number; buf: GPUBuffer }>();
  /**
   * GEMM kernel: 'tiled' (workgroup memory, for GPUs) or 'direct' (registers only, for lavapipe,
   * where workgroup memory is plain memory and barriers cost); ZILI_WEBGPU_MATMUL overrides.
   */
  readonly matmulKind: 'tiled' | 'direct';

  /** Finds an adapter (see device.ts) and creates the backend. */
  static async create(opts: WebGpuOptions = {}): Promise<WebGpuBackend> {
    return new WebGpuBackend(await createContext(), opts);
  }

  /** `ctx` stays referenced by the backend: Dawn crashes if its GPU object is garbage-collected. */
  constructor(
    readonly ctx: GpuContext,
    opts: WebGpuOptions = {},
  ) {
    this.description = ctx.description;
    const want = process.env.ZILI_WEBGPU_MATMUL;
    this.matmulKind = opts.matmul ? opts.matmul : want === 'tiled' || want === 'direct' ? want : ctx.adapter.info?.architecture === 'software' || /llvmpipe|swiftshader/i.test(ctx.description) ? 'direct' : 'tiled';
    this.queue = new KernelQueue(ctx.device);
    this.pool = new GpuPool(ctx.device, ctx.device.limits.maxBufferSize, opts.memoryLimitBytes, () => this.queue.flush());
    this.fused = this.makeFused();
    // validation and out-of-memory errors arrive asynchronously: keep the first, throw it at the next read
    ctx.device.addEventListener('uncapturederror', (ev) => {
      this.deviceError ??= (ev as GPUUncapturedErrorEvent).error.message.split('\n').slice(0, 3).join(' ');
    });
  }
  private deviceError: string | undefined;
  private checkError(): void {
    const e = this.deviceError;
    if (e === undefined) return;
    this.deviceError = undefined;
    throw new BackendError(`webgpu: device error: ${e}`);
  }

  // ------------------------------------------------------------------ memory

  alloc(dtype: DType, numel: number): DeviceBuffer {
    num(dtype, 'alloc');
    return this.pool.alloc(dtype, numel);
  }
  free(buf: DeviceBuffer): void {
    this.pool.release(gb(buf, 'free'));
  }
  write(buf: DeviceBuffer, data: HostArray): void {
    const g = gb(buf, 'write');
    if (data.length !== g.numel) throw new RangeError(`webgpu.write: ${data.length} elements into a buffer of ${g.numel}`);
    if (g.numel === 0) return;
    let src: Float32Array | Int32Array;
    if (g.dtype === 'f32') src = data instanceof Float32Array ? data : data instanceof Uint16Array ? Float32Array.from(data, bf16ToF32) : Float32Array.from(data);
    else src = data instanceof Int32Array ? data : data instanceof Uint16Array ? Int32Array.from(data, (b) => Math.trunc(bf16ToF32(b))) : Int32Array.from(data, Math.trunc);
    // the write must land after every dispatch enqueued so far
    this.queue.flush();
    this.ctx.device.queue.writeBuffer(g.gpu, 0, src.buffer, src.byteOffset, src.byteLength);
  }
  async read(buf: DeviceBuffer): Promise<HostArray> {
    const g = gb(buf, 'read');
    const bytes = g.numel * 4;
    if (bytes === 0) return g.dtype === 'f32' ? new Float32Array(0) : new Int32Array(0);
    const staging = this.ctx.device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.queue.copy(g.gpu, 0, staging, 0, bytes);
    this.queue.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
      const copy = staging.getMappedRange().slice(0);
      staging.unmap();
      this.checkError();
      return g.dtype === 'f32' ? new Float32Array(copy) : new Int32Array(copy);
    } finally {
      staging.destroy();
    }
  }
  memory(): MemoryStats {
    return this.pool.memory();
  }
  resetPeak(): void {
    this.pool.resetPeak();
  }
  emptyCache(): void {
    this.pool.emptyCache();
  }
  /** Waits until the GPU has finished everything enqueued (for timing). */
  async sync(): Promise<void> {
    this.queue.flush();
    await this.ctx.device.queue.onSubmittedWorkDone();
    this.checkError();
  }

  // ------------------------------------------------------------------ helpers

  private run(op: string, key: string, access: readonly Access[], source: () => string, params: Params, buffers: readonly GPUBuffer[], groups: readonly [number, number?, number?]): void {
    const k = this.queue.kernel(key, access, source);
    // WebGPU forbids binding one buffer as read-only and writable in the same dispatch (e.g.
    // accumulateInto's out = a + b): such inputs are read from a copy
    const written = new Set(buffers.filter((_, i) => access[i] === 'w'));
    const aliased = buffers.map((b, i) => access[i] === 'r' && written.has(b));
    if (!aliased.includes(true)) {
      this.queue.dispatch(op, k, params, buffers, groups);
      return;
    }
    const copies: GpuBuffer[] = [];
    const bound = buffers.map((b, i) => {
      if (!aliased[i]) return b;
      const c = this.pool.alloc('f32', b.size / 4);
      this.queue.copy(b, 0, c.gpu, 0, b.size);
      copies.push(c);
      return c.gpu;
    });
    try {
      this.queue.dispatch(op, k, params, bound, groups);
    } finally {
      for (const c of copies) this.pool.release(c);
    }
  }
  /** A 1-D kernel over n invocations. */
  private run1d(op: string, key: string, access: readonly Access[], source: () => string, params: Params, buffers: readonly GPUBuffer[], n: number): void {
    if (n === 0) return;
    this.run(op, key, access, source, params, buffers, this.queue.grid(Math.ceil(n / WG)));
  }
  /** A kernel with one workgroup per row. */
  private runRows(op: string, key: string, access: readonly Access[], source: () => string, params: Params, buffers: readonly GPUBuffer[], rows: number): void {
    if (rows === 0) return;
    this.run(op, key, access, source, params, buffers, this.queue.grid(rows));
  }
  /** A scratch buffer freed right after use (the pool keeps dispatch order, so reuse is safe). */
  private scratch<T>(dtype: DType, numel: number, fn: (b: GPUBuffer) => T): T {
    const s = this.pool.alloc(dtype, numel);
    try {
      return fn(s.gpu);
    } finally {
      this.pool.release(s);
    }
  }

  // ------------------------------------------------------------------ primitives

  fill(out: DeviceBuffer, value: number): void {
    const g = gb(out, 'fill');
    const bits = new DataView(new ArrayBuffer(4));
    if (g.dtype === 'f32') bits.setFloat32(0, value, true);
    else bits.setInt32(0, Math.trunc(value), true);
    this.run1d('fill', 'fill', ['w'], fillShader, new Params().u32(g.numel, bits.getUint32(0, true)), [g.gpu], g.numel);
  }
  random(out: DeviceBuffer, dist: 'uniform' | 'normal', seed: number, offset: number): void {
    const o = f32(out, 'random');
    if (!Number.isSafeInteger(seed) || seed < 0 || !Number.isSafeInteger(offset) || offset < 0)
      throw new RangeError(`webgpu.random: seed and offset must be non-negative safe integers, got ${seed}, ${offset}`);
    const n = out.numel;
    const p = new Params().u32(n, offset >>> 0, Math.floor(offset / 2 ** 32), seed >>> 0, Math.floor(seed / 2 ** 32));
    this.run1d('random', `random:${dist}`, ['w'], () => randomShader(dist), p, [o], n);
  }
  cast(x: DeviceBuffer, out: DeviceBuffer): void {
    const a = gb(x, 'cast'), b = gb(out, 'cast');
    const from = num(a.dtype, 'cast'), to = num(b.dtype, 'cast');
    if (a.numel !== b.numel) throw new RangeError(`webgpu.cast: ${a.numel} elements into ${b.numel}`);
    if (from === to) {
      if (a.numel) this.queue.copy(a.gpu, 0, b.gpu, 0, a.numel * 4);
      return;
    }
    this.run1d('cast', `cast:${from}:${to}`, ['r', 'w'], () => castShader(from, to), new Params().u32(a.numel), [a.gpu, b.gpu], a.numel);
  }
  unary(op: UnaryOp, x: DeviceBuffer, out: DeviceBuffer): void {
    this.run1d(op, `unary:${op}`, ['r', 'w'], () => unaryShader(op), new Params().u32(out.numel), [f32(x, op), f32(out, op)], out.numel);
  }
  unaryBackward(op: UnaryOp, x: DeviceBuffer, y: DeviceBuffer, dy: DeviceBuffer, dx: DeviceBuffer): void {
    this.run1d(op, `unaryBwd:${op}`, ['r', 'r', 'r', 'w'], () => unaryBackwardShader(op), new Params().u32(dx.numel), [f32(x, op), f32(y, op), f32(dy, op), f32(dx, op)], dx.numel);
  }
  binary(op: BinaryOp, a: DeviceBuffer, aStrides: readonly number[], b: DeviceBuffer, bStrides: readonly number[], out: DeviceBuffer, outShape: readonly number[]): void {
    rank(op, outShape);
    const A = gb(a, op), B = gb(b, op), O = gb(out, op);
    const t = num(O.dtype, op);
    if (A.dtype !== t || B.dtype !== t) throw new DTypeError(`webgpu.${op}: dtypes ${A.dtype}, ${B.dtype} → ${O.dtype}; cast the operands to one dtype`);
    const p = new Params().u32(O.numel, outShape.length, 0, 0).u32array(outShape, 8).u32array(aStrides, 8).u32array(bStrides, 8);
    this.run1d(op, `binary:${op}:${t}`, ['r', 'r', 'w'], () => binaryShader(op, t), p, [A.gpu, B.gpu, O.gpu], O.numel);
  }
  reduce(op: ReduceOp, x: DeviceBuffer, outer: number, axis: number, inner: number, out: DeviceBuffer): void {
    const X = gb(x, op), O = gb(out, op);
    const t = num(X.dtype, op);
    const p = new Params().u32(outer, axis, inner);
    if (inner === 1 && axis >= 64) this.runRows(op, `reduce:${op}:${t}:rows`, ['r', 'w'], () => reduceShader(op, t, true), p, [X.gpu, O.gpu], outer);
    else this.run1d(op, `reduce:${op}:${t}`, ['r', 'w'], () => reduceShader(op, t, false), p, [X.gpu, O.gpu], outer * inner);
  }
  copyStrided(src: DeviceBuffer, srcOffset: number, srcStrides: readonly number[], out: DeviceBuffer, outOffset: number, outStrides: readonly number[], shape: readonly number[]): void {
    rank('copyStrided', shape);
    const S = gb(src, 'copyStrided'), O = gb(out, 'copyStrided');
    if (S.dtype !== O.dtype) throw new DTypeError(`webgpu.copyStrided: dtype ${S.dtype} to ${O.dtype}; cast first`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (n === 0) return;
    const p = new Params().u32(n, shape.length, srcOffset, outOffset).u32array(shape, 8).u32array(srcStrides, 8).u32array(outStrides, 8);
    this.run1d('copyStrided', 'copyStrided', ['r', 'w'], copyStridedShader, p, [S.gpu, O.gpu], n);
  }
  matmul(a: DeviceBuffer, b: DeviceBuffer, c: DeviceBuffer, d: MatmulDesc): void {
    const A = f32(a, 'matmul'), B = f32(b, 'matmul'), C = f32(c, 'matmul');
    if (d.m === 0 || d.n === 0 || d.batch === 0) return;
    const direct = this.matmulKind === 'direct';
    const key = `matmul:${this.matmulKind}:${d.transA ? 'T' : 'N'}${d.transB ? 'T' : 'N'}`;
    const k = this.queue.kernel(key, ['r', 'r', 'w'], () => (direct ? matmulDirectShader : matmulShader)(d.transA, d.transB));
    // tiled: a 64×64 tile per workgroup; direct: 32×32
    const gx = Math.ceil(d.n / (direct ? DIRECT_TILE : TN)), gy = Math.ceil(d.m / (direct ? DIRECT_TILE : TM));
    if (gx > this.queue.maxGroups || gy > this.queue.maxGroups) throw new BackendError(`webgpu.matmul: ${d.m}×${d.n} output exceeds the dispatch limit`);
    for (let base = 0; base < d.batch; base += this.queue.maxGroups) {
      const nb = Math.min(this.queue.maxGroups, d.batch - base);
      const p = new Params().u32(d.m, d.n, d.k, d.strideA, d.strideB, base).f32(d.alpha, d.beta);
      this.queue.dispatch('matmul', k, p, [A, B, C], [gx, gy, nb]);
    }
  }
  gatherRows(table: DeviceBuffer, ids: DeviceBuffer, dim: number, out: DeviceBuffer): void {
    const T = gb(table, 'gatherRows'), O = gb(out, 'gatherRows');
    const n = ids.numel;
    const p = new Params().u32(n, dim, dim ? T.numel / dim : 0);
    this.run1d('gatherRows', 'gatherRows', ['r', 'r', 'w'], gatherShader, p, [T.gpu, i32(ids, 'gatherRows'), O.gpu], n * dim);
  }
  scatterAddRows(src: DeviceBuffer, ids: DeviceBuffer, dim: number, table: DeviceBuffer): void {
    const S = gb(src, 'scatterAddRows'), T = gb(table, 'scatterAddRows');
    const t = num(T.dtype, 'scatterAddRows');
    const I = i32(ids, 'scatterAddRows');
    const n = ids.numel;
    if (n === 0 || dim === 0) return;
    this.scratch('i32', 2 * n, (link) => {
      this.run1d('scatterAddRows', 'scatterLink', ['r', 'w'], scatterLinkShader, new Params().u32(n), [I, link], n);
      this.run1d('scatterAddRows', `scatterAdd:${t}`, ['r', 'r', 'r', 'w'], () => scatterAddShader(t), new Params().u32(n, dim, T.numel / dim), [S.gpu, I, link, T.gpu], n * dim);
    });
  }

  // ------------------------------------------------------------------ fused routines

  /** cos/sin of (pos · theta^(-2k/D)) for pos < rows, computed in f64 on the host and cached per (theta, D). */
  private ropeTable(theta: number, headDim: number, rows: number): GPUBuffer {
    const key = `${theta}:${headDim}`;
    const have = this.ropeTables.get(key);
    if (have && have.rows >= rows) return have.buf;
    const n = Math.max(rows, 2 * (have?.rows ?? 0), 64), half = headDim / 2;
    const tab = new Float32Array(n * half * 2);
    for (let t = 0; t < n; t++)
      for (let k = 0; k < half; k++) {
        const ang = t * Math.pow(theta, (-2 * k) / headDim);
        tab[2 * (t * half + k)] = Math.cos(ang);
        tab[2 * (t * half + k) + 1] = Math.sin(ang);
      }
    this.queue.flush();
    have?.buf.destroy();
    const buf = this.ctx.device.createBuffer({ size: tab.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    this.ctx.device.queue.writeBuffer(buf, 0, tab);
    this.ropeTables.set(key, { rows: n, buf });
    return buf;
  }

  private makeFused(): FusedRoutines {
    return {
      rmsnormFwd: (x, w, eps, rows, dim, y, rstd) => {
        const p = new Params().u32(rows, dim).f32(eps);
        this.runRows('rmsnorm', 'rmsnormFwd', ['r', 'r', 'w', 'w'], rmsnormFwdShader, p, [f32(x, 'rmsnorm'), f32(w, 'rmsnorm'), f32(y, 'rmsnorm'), f32(rstd, 'rmsnorm')], rows);
      },
      rmsnormBwd: (dy, x, w, rstd, rows, dim, dx, dw) => {
        const p = new Params().u32(rows, dim);
        const DY = f32(dy, 'rmsnorm'), X = f32(x, 'rmsnorm'), R = f32(rstd, 'rmsnorm');
        this.runRows('rmsnorm', 'rmsnormBwdDx', ['r', 'r', 'r', 'r', 'w'], rmsnormBwdDxShader, p, [DY, X, f32(w, 'rmsnorm'), R, f32(dx, 'rmsnorm')], rows);
        this.run1d('rmsnorm', 'rmsnormBwdDw', ['r', 'r', 'r', 'w'], rmsnormBwdDwShader, p, [DY, X, R, f32(dw, 'rmsnorm')], dim);
      },
      rope: (x, batch, seq, heads, headDim, posOffset, theta, out, inverse) => {
        const tab = this.ropeTable(theta, headDim, posOffset + seq);
        const n = (batch * seq * heads * headDim) / 2;
        const p = new Params().u32(n, seq, heads, headDim / 2, posOffset).f32(inverse ? -1 : 1);
        this.run1d('rope', 'rope', ['r', 'r', 'w'], ropeShader, p, [f32(x, 'rope'), tab, f32(out, 'rope')], n);
      },
      swigluFwd: (g, u, out) => {
        this.run1d('swiglu', 'swigluFwd', ['r', 'r', 'w'], swigluFwdShader, new Params().u32(out.numel), [f32(g, 'swiglu'), f32(u, 'swiglu'), f32(out, 'swiglu')], out.numel);
      },
      swigluBwd: (g, u, dout, dg, du) => {
        const bufs = [f32(g, 'swiglu'), f32(u, 'swiglu'), f32(dout, 'swiglu'), f32(dg, 'swiglu'), f32(du, 'swiglu')];
        this.run1d('swiglu', 'swigluBwd', ['r', 'r', 'r', 'w', 'w'], swigluBwdShader, new Params().u32(dg.numel), bufs, dg.numel);
      },
      crossEntropyFwd: (logits, targets, rows, vocab, losses, lse) => {
        const p = new Params().u32(rows, vocab);
        const bufs = [f32(logits, 'crossEntropy'), i32(targets, 'crossEntropy'), f32(losses, 'crossEntropy'), f32(lse, 'crossEntropy')];
        this.runRows('crossEntropy', 'crossEntropyFwd', ['r', 'r', 'w', 'w'], crossEntropyFwdShader, p, bufs, rows);
      },
      crossEntropyBwd: (logits, targets, lse, rows, vocab, scale, dlogits) => {
        const p = new Params().u32(rows, vocab).f32(scale);
        const bufs = [f32(logits, 'crossEntropy'), i32(targets, 'crossEntropy'), f32(lse, 'crossEntropy'), f32(dlogits, 'crossEntropy')];
        this.run1d('crossEntropy', 'crossEntropyBwd', ['r', 'r', 'r', 'w'], crossEntropyBwdShader, p, bufs, rows * vocab);
      },
      adamw: (param, grad, m, v, d: AdamWDesc) => {
        const p = new Params().u32(param.numel).f32(d.lr, d.beta1, d.beta2, d.eps, d.weightDecay, 1 - Math.pow(d.beta1, d.step), 1 - Math.pow(d.beta2, d.step));
        const bufs = [f32(param, 'adamw'), f32(grad, 'adamw'), f32(m, 'adamw'), f32(v, 'adamw')];
        this.run1d('adamw', 'adamw', ['w', 'r', 'w', 'w'], adamwShader, p, bufs, param.numel);
      },
      attentionFwd: (q, k, v, d: AttentionDesc, out, lse) => {
        const D = this.headDim(d);
        const bufs = [f32(q, 'attention'), f32(k, 'attention'), f32(v, 'attention'), f32(out, 'attention'), f32(lse, 'attention')];
        this.run1d('attention', `attentionFwd:${D}`, ['r', 'r', 'r', 'w', 'w'], () => attentionFwdShader(D), this.attnParams(d), bufs, d.batch * d.headsQ * d.seq);
      },
      attentionBwd: (q, k, v, out, lse, dout, d: AttentionDesc, dq, dk, dv) => {
        const D = this.headDim(d);
        const Q = f32(q, 'attention'), K = f32(k, 'attention'), V = f32(v, 'attention'), L = f32(lse, 'attention'), DO = f32(dout, 'attention');
        this.scratch('f32', d.batch * d.headsQ * d.seq, (dd) => {
          this.run1d('attention', `attentionBwdQ:${D}`, ['r', 'r', 'r', 'r', 'r', 'r', 'w', 'w'], () => attentionBwdQShader(D), this.attnParams(d), [Q, K, V, f32(out, 'attention'), L, DO, f32(dq, 'attention'), dd], d.batch * d.headsQ * d.seq);
          this.run1d('attention', `attentionBwdKV:${D}`, ['r', 'r', 'r', 'r', 'r', 'r', 'w', 'w'], () => attentionBwdKVShader(D), this.attnParams(d), [Q, K, V, L, DO, dd, f32(dk, 'attention'), f32(dv, 'attention')], d.batch * d.headsKV * d.seq);
        });
      },
    };
  }

  private headDim(d: AttentionDesc): number {
    if (d.headDim > MAX_HEAD_DIM) throw new BackendError(`webgpu.attention: head dimension ${d.headDim} is above the supported ${MAX_HEAD_DIM}`);
    return d.headDim;
  }
  private attnParams(d: AttentionDesc): Params {
    return new Params().u32(d.batch, d.seq, d.headsQ, d.headsKV).f32(d.scale).u32(d.causal ? 1 : 0);
  }
}
