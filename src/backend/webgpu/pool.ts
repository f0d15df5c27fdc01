// Caching allocator for GPU buffers: freed buffers go to free lists keyed by byte size and are
// handed out again (creating a GPU buffer costs a driver call and fresh, zeroed memory). Tracks live
// buffers, allocated, peak and cached bytes for memory() and the leak tests, and enforces the
// device's maxBufferSize and an optional memory limit with an error that names the fix.
/// <reference types="@webgpu/types" />
import type { DeviceBuffer, MemoryStats } from '../contract.js';
import { type DType, bytesOf } from '../../tensor/dtype.js';
import { OutOfMemoryError } from '../../tensor/errors.js';
import { fmtBytes } from '../host-allocator.js';

export class GpuBuffer implements DeviceBuffer {
  readonly backend = 'webgpu';
  freed = false;
  constructor(
    readonly dtype: DType,
    readonly numel: number,
    /** the GPU allocation (its size is `bytes` rounded up to 16, at least 16) */
    readonly gpu: GPUBuffer,
  ) {}
  get bytes(): number {
    return this.numel * bytesOf(this.dtype);
  }
}

/** Size class of an allocation: multiples of 16 bytes (WebGPU needs 4-byte copies; 0 is not bindable). */
export function sizeClass(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

export class GpuPool {
  private free = new Map<number, GPUBuffer[]>();
  private stats: MemoryStats = { allocatedBytes: 0, peakBytes: 0, cachedBytes: 0, liveBuffers: 0 };

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
    private readonly limitBytes = Number.POSITIVE_INFINITY,
    /** called before cached buffers are destroyed, so no unsubmitted command still uses them */
    private readonly beforeDestroy: () => void = () => {},
  ) {}

  alloc(dtype: DType, numel: number): GpuBuffer {
    if (!Number.isInteger(numel) || numel < 0) throw new RangeError(`webgpu.alloc: bad element count ${numel}`);
    const bytes = numel * bytesOf(dtype);
    const size = sizeClass(bytes);
    if (size > this.maxBufferSize)
      throw new OutOfMemoryError(
        `webgpu: cannot allocate ${fmtBytes(bytes)} (${numel} × ${dtype}): this device's largest buffer is ${fmtBytes(this.maxBufferSize)}. ` +
          `Reduce the batch size or sequence length, or shard the tensor (tensor parallelism).`,
      );
    if (this.stats.allocatedBytes + bytes > this.limitBytes)
      throw new OutOfMemoryError(
        `webgpu: out of memory allocating ${fmtBytes(bytes)} (${numel} × ${dtype}); ${fmtBytes(this.stats.allocatedBytes)} of ${fmtBytes(this.limitBytes)} in use. ` +
          `Reduce the batch size or sequence length, enable activation recomputation, or use a smaller model.`,
      );
    let gpu = this.free.get(size)?.pop();
    if (gpu) this.stats.cachedBytes -= size;
    else gpu = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    this.stats.allocatedBytes += bytes;
    this.stats.liveBuffers++;
    if (this.stats.allocatedBytes > this.stats.peakBytes) this.stats.peakBytes = this.stats.allocatedBytes;
    return new GpuBuffer(dtype, numel, gpu);
  }

  release(buf: GpuBuffer): void {
    if (buf.freed) throw new Error(`webgpu.free: buffer of ${buf.numel} × ${buf.dtype} freed twice`);
    buf.freed = true;
    this.stats.allocatedBytes -= buf.bytes;
    this.stats.liveBuffers--;
    const size = buf.gpu.size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf.gpu);
    this.stats.cachedBytes += size;
  }

  memory(): MemoryStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peakBytes = this.stats.allocatedBytes;
  }

  emptyCache(): void {
    if (this.free.size === 0) return;
    this.beforeDestroy();
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.stats.cachedBytes = 0;
  }
}
