// Host views of communication buffers. A Tensor of a host backend (cpu, reference) is operated on in
// place — its HostBuffer's typed array goes straight to MPI, zero copy. Any other backend (webgpu, or a
// device backend from outside the repository) is staged: read into host memory before the call and
// written back after it.
import type { CommBuffer, CommDType } from './communicator.js';
import { Tensor } from '../tensor/tensor.js';
import { HostBuffer } from '../backend/host-allocator.js';
import { type HostArray, dtypeOfArray, hostArray } from '../tensor/dtype.js';

export type HostCommArray = Float32Array | Uint16Array | Int32Array;

/** A typed array MPI can read/write, and how to put the result back where it belongs. */
export interface HostView {
  readonly data: HostCommArray;
  readonly dtype: CommDType;
  /** writes staged results back to the device (no-op for zero-copy views) */
  commit(): void;
}

/** The element type of a buffer, or a one-line error for types that cannot travel. */
export function commDType(buf: CommBuffer, what: string): CommDType {
  const d = buf instanceof Tensor ? buf.dtype : dtypeOfArray(buf);
  if (d === 'f64') throw new TypeError(`${what}: f64 buffers cannot be communicated; cast to f32 first`);
  return d;
}

export function elementCount(buf: CommBuffer): number {
  return buf instanceof Tensor ? buf.numel : buf.length;
}

/**
 * The host view of `buf`. mode 'in': only read by the call; 'out': only written (nothing is read
 * from the device); 'inout': both.
 */
export async function hostView(buf: CommBuffer, mode: 'in' | 'out' | 'inout', what: string): Promise<HostView> {
  const dtype = commDType(buf, what);
  if (!(buf instanceof Tensor)) return { data: buf as HostCommArray, dtype, commit: () => {} };
  const dev = buf.buf;
  if (dev instanceof HostBuffer && !dev.freed) return { data: dev.data as HostCommArray, dtype, commit: () => {} };
  const backend = buf.backend;
  const data = (mode === 'out' ? hostArray(dtype, buf.numel) : await backend.read(dev)) as HostArray as HostCommArray;
  return { data, dtype, commit: mode === 'in' ? () => {} : () => backend.write(dev, data) };
}

/** True when every buffer is usable without staging (so a call can be enqueued synchronously). */
export function zeroCopy(...bufs: CommBuffer[]): boolean {
  return bufs.every((b) => !(b instanceof Tensor) || b.buf instanceof HostBuffer);
}
