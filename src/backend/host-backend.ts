// Shared base of the backends whose device memory is host RAM (reference, cpu): allocation through
// the caching allocator, host reads and writes with dtype conversion, memory statistics.
import type { DeviceBuffer, MemoryStats } from './contract.js';
import { HostAllocator, HostBuffer } from './host-allocator.js';
import { type DType, type HostArray, convertHost } from '../tensor/dtype.js';
import { DTypeError } from '../tensor/errors.js';

/** The host buffer behind a device buffer, or an error naming the backend and the problem. */
export function hostBuffer(b: DeviceBuffer, backend: string): HostBuffer {
  if (!(b instanceof HostBuffer) || b.freed) throw new Error(`${backend}: ${b instanceof HostBuffer ? 'buffer used after free' : `buffer from backend '${b.backend}'`}`);
  return b;
}

export abstract class HostBackend {
  abstract readonly name: string;
  abstract readonly dtypes: readonly DType[];
  readonly asynchronous = false;
  protected readonly heap: HostAllocator;

  constructor(heapName: string, memoryLimitBytes?: number) {
    this.heap = new HostAllocator(heapName, memoryLimitBytes);
  }

  alloc(dtype: DType, numel: number): DeviceBuffer {
    if (!this.dtypes.includes(dtype)) throw new DTypeError(`backend '${this.name}' does not store ${dtype}; supported: ${this.dtypes.join(', ')}`);
    return this.heap.alloc(dtype, numel);
  }
  free(buf: DeviceBuffer): void {
    this.heap.release(hostBuffer(buf, this.name));
  }
  write(buf: DeviceBuffer, data: HostArray): void {
    const d = hostBuffer(buf, this.name).data;
    if (data.length !== d.length) throw new RangeError(`${this.name}.write: ${data.length} elements into a buffer of ${d.length}`);
    d.set((Object.getPrototypeOf(data) === Object.getPrototypeOf(d) ? data : convertHost(data, buf.dtype)) as never);
  }
  async read(buf: DeviceBuffer): Promise<HostArray> {
    return this.readSync(buf);
  }
  readSync(buf: DeviceBuffer): HostArray {
    return hostBuffer(buf, this.name).data.slice();
  }
  memory(): MemoryStats {
    return this.heap.memory();
  }
  resetPeak(): void {
    this.heap.resetPeak();
  }
  emptyCache(): void {
    this.heap.emptyCache();
  }
}
