// WebGPU adapter and device creation through Dawn (the `webgpu` npm package, which ships its native
// binary). On a machine without a GPU the Vulkan driver is Mesa's lavapipe, unpacked by
// scripts/setup-lavapipe into .cache/lavapipe/ (Debian 12's own Mesa 22.3 is rejected by Dawn).
// When the user has not chosen Vulkan drivers (VK_ICD_FILENAMES / VK_DRIVER_FILES) and the system
// offers no adapter, we point the Vulkan loader at that lavapipe and retry. The object returned by
// Dawn's create() must stay referenced while the GPU is used: if the GC frees it Dawn crashes.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BackendError } from '../../tensor/errors.js';

/** What a backend needs to keep alive: Dawn's GPU object, the adapter and the device. */
export interface GpuContext {
  gpu: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  /** human-readable adapter description, e.g. "llvmpipe: Mesa 25.0.7 ..." */
  description: string;
  /** true when this process uses the project-local lavapipe */
  lavapipe: boolean;
}

const RTLD_NOW = 2, RTLD_GLOBAL = 0x100, RTLD_NODELETE = 0x1000;

/** The repository root: the nearest folder above this file with a package.json named zili. */
function projectRoot(): string | null {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'scripts', 'setup-lavapipe'))) return d;
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  return null;
}

/** The lavapipe folder written by scripts/setup-lavapipe (ZILI_LAVAPIPE_DIR overrides), if present. */
export function lavapipeDir(): string | null {
  const dir = process.env.ZILI_LAVAPIPE_DIR ?? (projectRoot() ? join(projectRoot()!, '.cache', 'lavapipe') : null);
  return dir && existsSync(join(dir, 'lvp_icd.json')) ? dir : null;
}

function systemHasIcd(): boolean {
  for (const d of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'])
    try {
      if (readdirSync(d).some((f) => f.endsWith('.json'))) return true;
    } catch {
      /* missing folder */
    }
  return false;
}

function systemHasLoader(): boolean {
  return ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'].some((d) => existsSync(join(d, 'libvulkan.so.1')));
}

/**
 * Loads the unpacked Vulkan loader (and LLVM, when the system lacks it) by absolute path, kept
 * resident (RTLD_NODELETE): Dawn's later dlopen("libvulkan.so.1") then finds it by its soname.
 * process.dlopen is Node's only dlopen; it reports "did not self-register" for a plain library,
 * which is expected and ignored.
 */
function preloadLibraries(dir: string): void {
  const lib = join(dir, 'lib');
  const wanted: string[] = [];
  if (!systemHasLoader()) wanted.push('libvulkan.so.1');
  for (const f of existsSync(lib) ? readdirSync(lib) : []) if (/^libLLVM.*\.so\.\d+$/.test(f)) wanted.unshift(f);
  for (const f of wanted) {
    const p = join(lib, f);
    if (!existsSync(p)) continue;
    try {
      (process as unknown as { dlopen(m: object, f: string, flags: number): void }).dlopen({ exports: {} }, p, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
    } catch {
      /* not a Node addon: expected; the library stays loaded */
    }
  }
}

let lavapipeActive = false;

function useLavapipe(dir: string): void {
  process.env.VK_ICD_FILENAMES = join(dir, 'lvp_icd.json');
  preloadLibraries(dir);
  lavapipeActive = true;
}

const NO_ADAPTER =
  'no WebGPU adapter: install a Vulkan driver (Mesa lavapipe for CPU: run scripts/setup-lavapipe, which unpacks Mesa 25 from ' +
  "Debian bookworm-backports into .cache/lavapipe/), or a GPU vendor's Vulkan/Metal/D3D12 driver";

let dawn: typeof import('webgpu') | null = null;

async function loadDawn(): Promise<typeof import('webgpu')> {
  if (dawn) return dawn;
  try {
    dawn = await import('webgpu');
  } catch (e) {
    throw new BackendError(`webgpu: cannot load the 'webgpu' package (Dawn): ${(e as Error).message}. Run npm install.`);
  }
  return dawn;
}

async function tryAdapter(): Promise<{ gpu: GPU; adapter: GPUAdapter } | null> {
  const { create, globals } = await loadDawn();
  // the GPU* classes (GPUBufferUsage, ...) are globals in browsers; Dawn hands them to us
  for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const gpu = create([]) as GPU;
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  return adapter ? { gpu, adapter } : null;
}

/** Finds an adapter (falling back to the project's lavapipe) and creates a device with its largest limits. */
export async function createContext(): Promise<GpuContext> {
  const userChose = process.env.VK_ICD_FILENAMES !== undefined || process.env.VK_DRIVER_FILES !== undefined;
  const lvp = userChose ? null : lavapipeDir();
  if (lvp && !systemHasIcd() && !lavapipeActive) useLavapipe(lvp);
  let found = await tryAdapter();
  if (!found && lvp && !lavapipeActive) {
    useLavapipe(lvp);
    found = await tryAdapter();
  }
  if (!found) throw new BackendError(NO_ADAPTER);
  const { gpu, adapter } = found;
  const L = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
    maxBufferSize: L.maxBufferSize,
    maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: L.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
  };
  const device = await adapter.requestDevice({ requiredLimits });
  const info = adapter.info;
  const description = info ? [info.description || info.device, info.vendor, info.architecture].filter(Boolean).join(' / ') : 'unknown adapter';
  return { gpu, adapter, device, description, lavapipe: lavapipeActive };
}
