// Command batching for the webgpu backend: a pipeline cache keyed by shader name and
// specialisation, a ring of uniform slots for kernel parameters, and one command encoder that
// collects dispatches until a read, a host write or a batch limit submits it. Kernel calls only
// enqueue; queue.writeBuffer and submit are ordered on the queue, so parameters written for the
// current batch land before its dispatches run, and `flush()` before a host write keeps the write
// after every dispatch enqueued earlier.
/// <reference types="@webgpu/types" />
import { BackendError } from '../../tensor/errors.js';

/** Binding kinds after the parameter uniform (binding 0): read-only or read-write storage. */
export type Access = 'r' | 'w';

interface Kernel {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Packs a uniform parameter block: 4-byte fields in order, vec4-aligned arrays. */
export class Params {
  private words: number[] = [];
  private kinds: ('u' | 'i' | 'f')[] = [];
  u32(...v: number[]): this {
    for (const x of v) this.words.push(x >>> 0), this.kinds.push('u');
    return this;
  }
  i32(...v: number[]): this {
    for (const x of v) this.words.push(x | 0), this.kinds.push('i');
    return this;
  }
  f32(...v: number[]): this {
    for (const x of v) this.words.push(x), this.kinds.push('f');
    return this;
  }
  /** pads to a 16-byte boundary and appends `len` u32 (array<vec4<u32>, len/4>) */
  u32array(values: readonly number[], len: number): this {
    while (this.words.length % 4) this.u32(0);
    for (let i = 0; i < len; i++) this.u32(values[i] ?? 0);
    return this;
  }
  bytes(): ArrayBuffer {
    const n = Math.max(4, Math.ceil(this.words.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const dv = new DataView(buf);
    this.words.forEach((w, i) => {
      const k = this.kinds[i];
      if (k === 'f') dv.setFloat32(i * 4, w, true);
      else if (k === 'i') dv.setInt32(i * 4, w, true);
      else dv.setUint32(i * 4, w, true);
    });
    return buf;
  }
}

const RING_BYTES = 1 << 16;
const SLOT = 256;
const MAX_BATCH = 64;

export class KernelQueue {
  private kernels = new Map<string, Kernel>();
  private ring: GPUBuffer;
  private ringPos = 0;
  private encoder: GPUCommandEncoder | null = null;
  private pending = 0;
  /** dispatches enqueued since creation (for tests and profiling) */
  dispatches = 0;
  readonly maxGroups: number;
  readonly maxBinding: number;

  constructor(readonly device: GPUDevice) {
    this.ring = device.createBuffer({ size: RING_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
    this.maxBinding = device.limits.maxStorageBufferBindingSize;
  }

  /** The compiled pipeline for `key`, building it from `source()` on first use. */
  kernel(key: string, access: readonly Access[], source: () => string): Kernel {
    const have = this.kernels.get(key);
    if (have) return have;
    const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }];
    access.forEach((a, i) =>
      entries.push({ binding: i + 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: a === 'r' ? 'read-only-storage' : 'storage' } }),
    );
    const layout = this.device.createBindGroupLayout({ entries });
    const module = this.device.createShaderModule({ code: source(), label: key });
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
      label: key,
    });
    const k = { pipeline, layout };
    this.kernels.set(key, k);
    return k;
  }

  /** Workgroup counts for `groups` one-dimensional workgroups, split over x and y (shaders fold y back). */
  grid(groups: number): [number, number] {
    if (groups <= this.maxGroups) return [Math.max(1, groups), 1];
    const y = Math.ceil(groups / this.maxGroups);
    if (y > this.maxGroups) throw new BackendError(`webgpu: ${groups} workgroups exceed this device's ${this.maxGroups}² dispatch limit`);
    return [this.maxGroups, y];
  }

  /** Enqueues one dispatch: params → binding 0, buffers → bindings 1..n. */
  dispatch(op: string, k: Kernel, params: Params, buffers: readonly GPUBuffer[], groups: readonly [number, number?, number?]): void {
    for (const b of buffers)
      if (b.size > this.maxBinding)
        throw new BackendError(`webgpu.${op}: a ${b.size}-byte buffer exceeds this device's maxStorageBufferBindingSize (${this.maxBinding} bytes); use smaller tensors (shorter sequences, smaller batch or vocabulary shards)`);
    const data = params.bytes();
    if (data.byteLength > SLOT * 4) throw new Error(`webgpu.${op}: parameter block of ${data.byteLength} bytes is too large`);
    if (this.ringPos + data.byteLength > RING_BYTES) this.flush();
    const at = this.ringPos;
    this.ringPos += Math.ceil(data.byteLength / SLOT) * SLOT;
    this.device.queue.writeBuffer(this.ring, at, data);
    const bind = this.device.createBindGroup({
      layout: k.layout,
      entries: [{ binding: 0, resource: { buffer: this.ring, offset: at, size: data.byteLength } }, ...buffers.map((b, i) => ({ binding: i + 1, resource: { buffer: b } }))],
    });
    const enc = (this.encoder ??= this.device.createCommandEncoder());
    const pass = enc.beginComputePass();
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
    pass.end();
    this.dispatches++;
    if (++this.pending >= MAX_BATCH) this.flush();
  }

  /** Records a buffer copy in order with the dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    const enc = (this.encoder ??= this.device.createCommandEncoder());
    enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    if (++this.pending >= MAX_BATCH) this.flush();
  }

  /** Submits everything enqueued so far. */
  flush(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
    this.pending = 0;
    this.ringPos = 0;
  }
}
