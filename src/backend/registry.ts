// Backend registry: name → factory. Built-in backends are listed here; a new chip's backend can live
// outside the repository as a module named in $ZILI_BACKEND_MODULES (comma-separated paths or package
// names) whose default export is { name, create(): Backend | Promise<Backend> } — then every command,
// `zili selftest --backend NAME` included, finds it (docs/new-chip.md).
import type { Backend } from './contract.js';
import { pathToFileURL } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
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

export interface BackendModule {
  name: string;
  create(): Backend | Promise<Backend>;
}

let pluginsLoaded = false;
/** Registers the backends of the modules named in $ZILI_BACKEND_MODULES (once per process). */
export async function loadBackendModules(spec = process.env['ZILI_BACKEND_MODULES'] ?? ''): Promise<void> {
  if (pluginsLoaded) return;
  pluginsLoaded = true;
  for (const entry of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const target = entry.startsWith('.') || isAbsolute(entry) ? pathToFileURL(resolve(entry)).href : entry;
    let mod: { default?: BackendModule };
    try {
      mod = (await import(target)) as { default?: BackendModule };
    } catch (e) {
      throw new BackendError(`cannot load backend module '${entry}' (from ZILI_BACKEND_MODULES): ${(e as Error).message}`);
    }
    const b = mod.default;
    if (!b || typeof b.name !== 'string' || typeof b.create !== 'function')
      throw new BackendError(`backend module '${entry}' must export default { name: string, create(): Backend }`);
    registerBackend(b.name, () => b.create());
  }
}

/** The shared instance of a backend by name (created on first use). */
export async function getBackend(name: string): Promise<Backend> {
  const have = instances.get(name);
  if (have) return have;
  if (!factories.has(name)) await loadBackendModules();
  const f = factories.get(name);
  if (!f) throw new BackendError(`unknown backend '${name}'. Available backends: ${backendNames().join(', ')}`);
  const b = await f();
  instances.set(name, b);
  return b;
}
