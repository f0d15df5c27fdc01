// The meta backend: shapes and bytes only. Buffers hold no data, kernels do nothing but count, so a
// training step of any size (a 1T model included) can be traced without allocating memory: it
// records the FLOPs of every kernel and the peak of live bytes, which the planner is checked against.
import type { AdamWDesc, AttentionDesc, Backend, BinaryOp, DeviceBuffer, FusedRoutines, MatmulDesc, MemoryStats, ReduceOp, UnaryOp } from '../contract.js';
import { type DType, type HostArray, bytesOf, hostArray } from '../../tensor/dtype.js';

class MetaBuffer implements DeviceBuffer {
  readonly backend = 'meta';
  freed = false;
  constructor(
    readonly dtype: DType,
    readonly numel: number,
  ) {}
  get bytes(): number {
    return this.numel * bytesOf(this.dtype);
  }
}

export interface FlopCounts {
  /** matrix multiplications (2·m·n·k per GEMM) */
  matmul: number;
  /** attention score and value products (4·B·Hq·T²·D forward, 8·B·Hq·T²·D backward, full square) */
  attention: number;
  /** element-wise, reductions, norms, losses, optimizer (one per element touched, roughly) */
  other: number;
}

export class MetaBackend implements Backend {
  readonly name = 'meta';
  readonly dtypes: readonly DType[] = ['f32', 'bf16', 'i32'];
  readonly asynchronous = false;
  readonly fused: FusedRoutines;
  flops: FlopCounts = { matmul: 0, attention: 0, other: 0 };
  private stats: MemoryStats = { allocatedBytes: 0, peakBytes: 0, cachedBytes: 0, liveBuffers: 0 };

  constructor() {
    const other = (n: number) => (this.flops.other += n);
    this.fused = {
      rmsnormFwd: (_x, _w, _e, rows, dim) => other(4 * rows * dim),
      rmsnormBwd: (_dy, _x, _w, _r, rows, dim) => other(8 * rows * dim),
      rope: (x) => other(4 * x.numel),
      swigluFwd: (g) => other(5 * g.numel),
      swigluBwd: (g) => other(10 * g.numel),
      attentionFwd: (_q, _k, _v, d: AttentionDesc) => (this.flops.attention += 4 * d.batch * d.headsQ * d.seq * d.seq * d.headDim),
      attentionBwd: (_q, _k, _v, _o, _l, _do, d: AttentionDesc) => (this.flops.attention += 8 * d.batch * d.headsQ * d.seq * d.seq * d.headDim),
      crossEntropyFwd: (l) => other(3 * l.numel),
      crossEntropyBwd: (l) => other(3 * l.numel),
      adamw: (p, _g, _m, _v, _d: AdamWDesc) => other(12 * p.numel),
    };
  }

  resetFlops(): void {
    this.flops = { matmul: 0, attention: 0, other: 0 };
  }

  alloc(dtype: DType, numel: number): DeviceBuffer {
    const b = new MetaBuffer(dtype, numel);
    this.stats.allocatedBytes += b.bytes;
    this.stats.liveBuffers++;
    if (this.stats.allocatedBytes > this.stats.peakBytes) this.stats.peakBytes = this.stats.allocatedBytes;
    return b;
  }
  free(buf: DeviceBuffer): void {
    const b = buf as MetaBuffer;
    if (b.freed) throw new Error('meta.free: buffer freed twice');
    b.freed = true;
    this.stats.allocatedBytes -= b.bytes;
    this.stats.liveBuffers--;
  }
  write(): void {}
  /** meta buffers hold no data: reads give zeros of the right size */
  async read(buf: DeviceBuffer): Promise<HostArray> {
    return hostArray(buf.dtype, buf.numel);
  }
  readSync(buf: DeviceBuffer): HostArray {
    return hostArray(buf.dtype, buf.numel);
  }
  memory(): MemoryStats {
    return { ...this.stats };
  }
  resetPeak(): void {
    this.stats.peakBytes = this.stats.allocatedBytes;
  }
  emptyCache(): void {}

  fill(): void {}
  random(out: DeviceBuffer): void {
    this.flops.other += out.numel;
  }
  cast(x: DeviceBuffer): void {
    this.flops.other += x.numel;
  }
  unary(_op: UnaryOp, x: DeviceBuffer): void {
    this.flops.other += x.numel;
  }
  unaryBackward(_op: UnaryOp, x: DeviceBuffer): void {
    this.flops.other += 2 * x.numel;
  }
  binary(_op: BinaryOp, _a: DeviceBuffer, _as: readonly number[], _b: DeviceBuffer, _bs: readonly number[], out: DeviceBuffer): void {
    this.flops.other += out.numel;
  }
  reduce(_op: ReduceOp, x: DeviceBuffer): void {
    this.flops.other += x.numel;
  }
  copyStrided(): void {}
  matmul(_a: DeviceBuffer, _b: DeviceBuffer, _c: DeviceBuffer, d: MatmulDesc): void {
    this.flops.matmul += 2 * d.batch * d.m * d.n * d.k;
  }
  gatherRows(): void {}
  scatterAddRows(src: DeviceBuffer): void {
    this.flops.other += src.numel;
  }
}
