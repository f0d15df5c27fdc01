// Tensor: a shaped, typed handle on a reference-counted device buffer. Memory is freed at known
// points — `dispose()`, the end of a `tidy` scope, or when backward consumes what the tape saved —
// never by the JS garbage collector.
import type { Backend, DeviceBuffer } from '../backend/contract.js';
import { type DType, type HostArray, readElement } from './dtype.js';
import { type Shape, numel, shapeStr } from './shape.js';
import { BackendError } from './errors.js';
import { track } from './scope.js';
import type { GradNode } from './autograd.js';

export class Storage {
  refs = 1;
  /** the device buffer was freed while handles remain (evict); `refill` gives them a fresh one */
  evicted = false;
  constructor(
    readonly backend: Backend,
    private device: DeviceBuffer,
  ) {}
  get buf(): DeviceBuffer {
    if (this.evicted) throw new Error('Storage: buffer read while evicted (refill it first)');
    return this.device;
  }
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0 && !this.evicted) this.backend.free(this.device);
  }
  /** Frees the device memory while handles remain (values a later `refill` and rewrite bring back). */
  evict(): void {
    if (this.evicted) return;
    this.backend.free(this.device);
    this.evicted = true;
  }
  /** A fresh device buffer of the same dtype and size for an evicted storage (its values are the caller's to write). */
  refill(): void {
    if (!this.evicted) return;
    this.device = this.backend.alloc(this.device.dtype, this.device.numel);
    this.evicted = false;
  }
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  private disposedFlag = false;
  /** true for parameters and anything computed from them while grad is enabled */
  requiresGrad = false;
  /** accumulated gradient (leaves only); owned by this tensor, not by any scope */
  grad: Tensor | null = null;
  /** the op that produced this tensor, for backward (null for leaves) */
  node: GradNode | null = null;
  name = '';

  constructor(
    readonly storage: Storage,
    shape: Shape,
    tracked = true,
  ) {
    this.shape = Object.freeze([...shape]);
    this.dtype = storage.buf.dtype;
    if (numel(shape) !== storage.buf.numel)
      throw new Error(`Tensor: shape ${shapeStr(shape)} (${numel(shape)} elements) does not match its buffer of ${storage.buf.numel}`);
    if (tracked) track(this);
  }

  get backend(): Backend {
    return this.storage.backend;
  }
  get buf(): DeviceBuffer {
    if (this.disposedFlag) throw new Error(`tensor #${this.id}${this.name ? ` (${this.name})` : ''} ${shapeStr(this.shape)} used after dispose()`);
    return this.storage.buf;
  }
  get numel(): number {
    return this.storage.buf.numel;
  }
  get rank(): number {
    return this.shape.length;
  }
  get disposed(): boolean {
    return this.disposedFlag;
  }

  /** Releases this handle's reference to its buffer. Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.storage.release();
  }

  /** A new handle on the same buffer (with its own reference), optionally reshaped; not scope-tracked when tracked=false. */
  share(shape: Shape = this.shape, tracked = true): Tensor {
    void this.buf;
    this.storage.retain();
    return new Tensor(this.storage, shape, tracked);
  }

  async data(): Promise<HostArray> {
    return this.backend.read(this.buf);
  }

  dataSync(): HostArray {
    const b = this.backend;
    if (!b.readSync) throw new BackendError(`backend '${b.name}' is asynchronous: use 'await tensor.data()' instead of dataSync()`);
    return b.readSync(this.buf);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.numel !== 1) throw new Error(`item(): tensor ${shapeStr(this.shape)} has ${this.numel} elements, expected 1`);
    return readElement(await this.data(), 0);
  }

  /** Values as a plain number array (for tests and printing). */
  async toArray(): Promise<number[]> {
    const d = await this.data();
    return Array.from({ length: d.length }, (_, i) => readElement(d, i));
  }

  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.dtype}, ${this.backend.name}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}
