// Backend registry: name → factory. New chips register here (or via registerBackend at run time).
import type { Backend } from './contract.js';
import { BackendError } from '../tensor/errors.js';
import { ReferenceBackend } from './reference/reference-backend.js';

type Factory = () => Backend | Promise<Backend>;

const factories = new Map<string, Factory>([
  ['reference', () => new ReferenceBackend()],
  ['reference-unfused', () => new ReferenceBackend({ fused: false })],
  ['cpu', async () => new (await import('./cpu/cpu-backend.js')).CpuBackend()],
  ['meta', async () => new (await import('./meta/meta-backend.js')).MetaBackend()],
  ['webgpu', async () => (await import('./webgpu/webgpu-backend.js')).WebGpuBackend.create()],
]);
const instances = new Map<string, Backend>();

export function registerBackend(name: string, factory: Factory): void {
  factories.set(name, factory);
  instances.delete(name);
}

export function backendNames(): string[] {
  return [...factories.keys()];
}

/** The shared instance of a backend by name (created on first use). */
export async function getBackend(name: string): Promise<Backend> {
  const have = instances.get(name);
  if (have) return have;
  const f = factories.get(name);
  if (!f) throw new BackendError(`unknown backend '${name}'. Available backends: ${backendNames().join(', ')}`);
  const b = await f();
  instances.set(name, b);
  return b;
}
