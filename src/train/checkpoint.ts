// Training checkpoints: <out>/step-NNNNNNNN/ folders (weights, optimizer state, manifest with sha256 of every file), written atomically, found and verified on resume.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig } from '../nn/config.js';
import { fsyncDir, hashFile, writeFileAtomic, writeFileDurable } from '../util/atomic-fs.js';
import { type NamedTensors, readSafetensors, writeSafetensors } from './safetensors.js';
import { assembleShards, type ShardIndex } from './checkpoint-shards.js';

export const CHECKPOINT_FORMAT = 'zili-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const MANIFEST_FILE = 'manifest.json';
export const LATEST_FILE = 'latest';

export class CheckpointError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface OptimizerState {
  /** AdamW first moments by parameter name (stored as `<param>.m`) */
  m: NamedTensors;
  /** AdamW second moments by parameter name (stored as `<param>.v`) */
  v: NamedTensors;
  /** any other optimizer tensors, stored under their own names */
  tensors?: NamedTensors;
  /** JSON optimizer state (step count, hyper-parameters), kept in the manifest */
  state?: unknown;
}

export interface CheckpointInput {
  modelConfig: ModelConfig;
  /** optimizer steps completed */
  step: number;
  trainConfig: unknown;
  /** model weights by parameter name */
  tensors: NamedTensors;
  optimizer?: OptimizerState | null;
  /** the data loader's state (JSON) */
  data: unknown;
  /** RNG state (JSON), e.g. Rng.state() */
  rng: unknown;
  metrics?: Record<string, unknown>;
}

export interface FileRecord {
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: typeof CHECKPOINT_FORMAT;
  version: typeof CHECKPOINT_VERSION;
  modelConfig: ModelConfig;
  step: number;
  trainConfig: unknown;
  data: unknown;
  rng: unknown;
  metrics: Record<string, unknown>;
  /** parameter names with moments in optimizer.safetensors, and the optimizer's JSON state; null when none was saved */
  optimizer: { params: string[]; extra: string[]; state: unknown } | null;
  files: Record<string, FileRecord>;
  createdAt: string;
  /** a checkpoint written by data-parallel ranks, each its own pieces (checkpoint-shards.ts); absent for one-process checkpoints */
  shards?: ShardIndex;
}

export interface Checkpoint {
  /** the step folder it was read from */
  dir: string;
  manifest: Manifest;
  step: number;
  modelConfig: ModelConfig;
  trainConfig: unknown;
  tensors: NamedTensors;
  optimizer: OptimizerState | null;
  data: unknown;
  rng: unknown;
  metrics: Record<string, unknown>;
}

export interface WarnOptions {
  /** where warnings about skipped checkpoints go (default: stderr) */
  warn?: (message: string) => void;
}

const defaultWarn = (message: string) => process.stderr.write(`zili: warning: ${message}\n`);

/** `step-00000042`: eight digits so folder names sort by step. */
export function stepDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** The step of a folder name `step-N`, or null. */
export function parseStepDirName(name: string): number | null {
  const m = /^step-(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Step folders of a run folder, newest first. */
function stepDirs(outDir: string): { name: string; step: number }[] {
  let names: string[];
  try {
    names = fs.readdirSync(outDir);
  } catch {
    return [];
  }
  const out: { name: string; step: number }[] = [];
  for (const name of names) {
    const step = parseStepDirName(name);
    if (step !== null && fs.statSync(path.join(outDir, name)).isDirectory()) out.push({ name, step });
  }
  return out.sort((a, b) => b.step - a.step);
}

/** Leftovers of interrupted saves (`.tmp-step-N-<pid>`, `.deleting-...`) whose process is gone. */
function staleTempDirs(outDir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(outDir);
  } catch {
    return [];
  }
  return names.filter((n) => {
    const m = /^\.(?:tmp|deleting|replaced)-step-\d+-(\d+)$/.exec(n);
    return m !== null && !pidAlive(Number(m[1]));
  });
}

/**
 * Saves a checkpoint atomically: everything is written and fsynced in `<out>/.tmp-step-N-<pid>/`
 * (manifest last), the folder is renamed to `step-N`, then `<out>/latest` is replaced (tmp + rename).
 * Returns the step folder.
 */
/** Bytes of tensor data a checkpoint holds (its files are this plus small headers and the manifest). */
function tensorBytes(c: CheckpointInput): number {
  const sum = (t: NamedTensors | undefined) => Object.values(t ?? {}).reduce((n, x) => n + x.data.byteLength, 0);
  return sum(c.tensors) + (c.optimizer ? sum(c.optimizer.m) + sum(c.optimizer.v) + sum(c.optimizer.tensors) : 0);
}

function diskFullMessage(outDir: string, c: CheckpointInput): string {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const prev = latestCheckpoint(outDir, { warn: () => {} });
  let free = '';
  try {
    const fsStat = fs.statfsSync(outDir);
    free = ` (${mib(fsStat.bavail * fsStat.bsize)} are free)`;
  } catch {
    // statfs unsupported here: leave it out
  }
  return (
    `no space left on the disk of ${outDir} while writing the checkpoint of step ${c.step}: it needs about ${mib(tensorBytes(c))}${free}.` +
    ` ${prev ? `The previous checkpoint ${prev} is intact. ` : ''}Free some space (or lower --keep-checkpoints), then continue with --resume`
  );
}

export function saveCheckpoint(outDir: string, c: CheckpointInput): string {
  if (!Number.isSafeInteger(c.step) || c.step < 0) throw new CheckpointError(`checkpoint step must be an integer >= 0, got ${c.step}`);
  fs.mkdirSync(outDir, { recursive: true });
  const name = stepDirName(c.step);
  const tmp = path.join(outDir, `.tmp-${name}-${process.pid}`);
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);
  try {
    const files: Record<string, FileRecord> = {};
    const metadata = { producer: 'zili', step: String(c.step) };
    files[MODEL_FILE] = writeSafetensors(path.join(tmp, MODEL_FILE), c.tensors, { metadata });
    let optimizer: Manifest['optimizer'] = null;
    if (c.optimizer) {
      const o = c.optimizer;
      const params = Object.keys(o.m).sort();
      const vNames = Object.keys(o.v).sort();
      if (params.join('\0') !== vNames.join('\0'))
        throw new CheckpointError(`optimizer state: m and v name different parameters (${params.length} vs ${vNames.length} names)`);
      const all: NamedTensors = {};
      for (const p of params) {
        all[`${p}.m`] = o.m[p]!;
        all[`${p}.v`] = o.v[p]!;
      }
      const extra = Object.keys(o.tensors ?? {}).sort();
      for (const e of extra) {
        if (e in all) throw new CheckpointError(`optimizer state: extra tensor '${e}' collides with a moment's name`);
        all[e] = o.tensors![e]!;
      }
      files[OPTIMIZER_FILE] = writeSafetensors(path.join(tmp, OPTIMIZER_FILE), all, { metadata });
      optimizer = { params, extra, state: o.state ?? null };
    }
    const manifest = makeManifest(c, optimizer, files);
    writeFileDurable(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
    fsyncDir(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new CheckpointError(diskFullMessage(outDir, c));
    throw e;
  }
  return commitStepDir(outDir, tmp, name);
}

/** The manifest of a step folder whose files are written (`files`: name → size and sha256). */
export function makeManifest(c: Omit<CheckpointInput, 'tensors' | 'optimizer'>, optimizer: Manifest['optimizer'], files: Record<string, FileRecord>, shards?: ShardIndex): Manifest {
  return {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    modelConfig: c.modelConfig,
    step: c.step,
    trainConfig: c.trainConfig ?? null,
    data: c.data ?? null,
    rng: c.rng ?? null,
    metrics: c.metrics ?? {},
    optimizer,
    files,
    createdAt: new Date().toISOString(),
    ...(shards ? { shards } : {}),
  };
}

/**
 * Makes a fully written and fsynced temporary step folder the checkpoint `name`: renamed into place
 * (replacing an older folder of the same step), then `latest` updated. Returns the step folder.
 */
export function commitStepDir(outDir: string, tmp: string, name: string): string {
  const final = path.join(outDir, name);
  // Re-saving a step (a resumed run reaching it again): move the old folder aside first, since a
  // folder cannot be renamed over a non-empty one. Older step folders stay valid meanwhile.
  let replaced: string | null = null;
  if (fs.existsSync(final)) {
    replaced = path.join(outDir, `.replaced-${name}-${process.pid}`);
    fs.rmSync(replaced, { recursive: true, force: true });
    fs.renameSync(final, replaced);
  }
  fs.renameSync(tmp, final);
  fsyncDir(outDir);
  if (replaced) fs.rmSync(replaced, { recursive: true, force: true });
  writeFileAtomic(path.join(outDir, LATEST_FILE), name + '\n');
  return final;
}

function readManifest(dir: string): Manifest {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new CheckpointError(`${dir} is not a complete checkpoint: ${MANIFEST_FILE} is missing`);
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (e) {
    throw new CheckpointError(`corrupt checkpoint ${dir}: ${MANIFEST_FILE} is not valid JSON (${(e as Error).message})`);
  }
  const bad = (why: string) => new CheckpointError(`corrupt checkpoint ${dir}: ${why}`);
  if (typeof m !== 'object' || m === null || m.format !== CHECKPOINT_FORMAT) throw bad(`${MANIFEST_FILE} is not a ${CHECKPOINT_FORMAT} manifest`);
  if (m.version !== CHECKPOINT_VERSION) throw new CheckpointError(`checkpoint ${dir} has format version ${m.version}; this zili reads version ${CHECKPOINT_VERSION}`);
  if (!Number.isSafeInteger(m.step) || m.step < 0) throw bad(`manifest step ${m.step} is not an integer >= 0`);
  if (typeof m.modelConfig !== 'object' || m.modelConfig === null) throw bad('manifest has no modelConfig');
  if (typeof m.files !== 'object' || m.files === null || (!m.shards && !m.files[MODEL_FILE])) throw bad(`manifest lists no ${MODEL_FILE}`);
  if (m.shards && (typeof m.shards !== 'object' || typeof m.shards.tensors !== 'object' || m.shards.tensors === null)) throw bad('manifest has a malformed shards index');
  if (m.optimizer && !m.shards && !m.files[OPTIMIZER_FILE]) throw bad(`manifest has optimizer state but lists no ${OPTIMIZER_FILE}`);
  const step = parseStepDirName(path.basename(dir));
  if (step !== null && step !== m.step) throw bad(`folder is named for step ${step} but the manifest says step ${m.step}`);
  return m;
}

/**
 * Checks a step folder: manifest well formed, and every listed file present with the recorded size
 * and (unless hash is false) sha256. Returns the manifest; throws CheckpointError saying what is wrong.
 */
export function verifyCheckpoint(dir: string, opts: { hash?: boolean } = {}): Manifest {
  const m = readManifest(dir);
  for (const [name, rec] of Object.entries(m.files)) {
    if (name.includes('/') || name.includes('\\') || name.startsWith('.')) throw new CheckpointError(`corrupt checkpoint ${dir}: bad file name '${name}' in manifest`);
    const file = path.join(dir, name);
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      throw new CheckpointError(`corrupt checkpoint ${dir}: ${name} is missing`);
    }
    if (size !== rec.bytes) throw new CheckpointError(`corrupt checkpoint ${dir}: ${name} has ${size} bytes, the manifest says ${rec.bytes}`);
    if (opts.hash !== false) {
      const h = hashFile(file);
      if (h.sha256 !== rec.sha256) throw new CheckpointError(`corrupt checkpoint ${dir}: ${name} fails its sha256 check (file damaged after it was written)`);
    }
  }
  return m;
}

/**
 * The newest valid checkpoint folder of a run (by step number; `latest` is a pointer for people
 * and tools), or null when there is none. Invalid folders are skipped with a warning, as are
 * leftovers of interrupted saves.
 */
export function latestCheckpoint(outDir: string, opts: WarnOptions = {}): string | null {
  const warn = opts.warn ?? defaultWarn;
  for (const t of staleTempDirs(outDir)) warn(`ignoring ${path.join(outDir, t)}: left by an interrupted save`);
  for (const { name } of stepDirs(outDir)) {
    const dir = path.join(outDir, name);
    try {
      verifyCheckpoint(dir);
      return dir;
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      warn(`skipping checkpoint ${dir}: ${e.message}`);
    }
  }
  return null;
}

function readVerified(dir: string, m: Manifest): Checkpoint {
  let whole: NamedTensors | null = null;
  if (m.shards)
    try {
      whole = assembleShards(dir, m.shards);
    } catch (e) {
      throw new CheckpointError(`corrupt checkpoint ${dir}: ${(e as Error).message}`);
    }
  const modelTensors: NamedTensors = {};
  if (whole) {
    const moments = new Set(m.optimizer ? [...m.optimizer.params.flatMap((p) => [`${p}.m`, `${p}.v`]), ...m.optimizer.extra] : []);
    for (const [n, t] of Object.entries(whole)) if (!moments.has(n)) modelTensors[n] = t;
  }
  const model = whole ? { tensors: modelTensors } : readSafetensors(path.join(dir, MODEL_FILE));
  let optimizer: OptimizerState | null = null;
  if (m.optimizer) {
    const all = whole ?? readSafetensors(path.join(dir, OPTIMIZER_FILE)).tensors;
    const take = (n: string) => {
      const t = all[n];
      if (!t) throw new CheckpointError(`corrupt checkpoint ${dir}: ${whole ? 'the shards lack' : `${OPTIMIZER_FILE} lacks`} tensor '${n}'`);
      return t;
    };
    optimizer = { m: {}, v: {}, tensors: {}, state: m.optimizer.state };
    for (const p of m.optimizer.params) {
      optimizer.m[p] = take(`${p}.m`);
      optimizer.v[p] = take(`${p}.v`);
    }
    for (const e of m.optimizer.extra) optimizer.tensors![e] = take(e);
  }
  return {
    dir,
    manifest: m,
    step: m.step,
    modelConfig: m.modelConfig,
    trainConfig: m.trainConfig,
    tensors: model.tensors,
    optimizer,
    data: m.data,
    rng: m.rng,
    metrics: m.metrics,
  };
}

/**
 * Loads a checkpoint from a step folder (verified first), or from a run's out folder (its newest
 * valid checkpoint). Throws CheckpointError when there is none or it is damaged.
 */
export function loadCheckpoint(dirOrRunDir: string, opts: WarnOptions = {}): Checkpoint {
  if (!fs.existsSync(dirOrRunDir)) throw new CheckpointError(`checkpoint folder ${dirOrRunDir} does not exist`);
  if (fs.existsSync(path.join(dirOrRunDir, MANIFEST_FILE)) || parseStepDirName(path.basename(dirOrRunDir)) !== null)
    return readVerified(dirOrRunDir, verifyCheckpoint(dirOrRunDir));
  const dir = latestCheckpoint(dirOrRunDir, opts);
  if (!dir) throw new CheckpointError(`no complete checkpoint in ${dirOrRunDir} (expected step-NNNNNNNN folders holding a ${MANIFEST_FILE})`);
  return readVerified(dir, verifyCheckpoint(dir, { hash: false }));
}

/**
 * Removes all but the newest `keep` step folders (never the one `latest` names) and leftovers of
 * interrupted saves. Each folder is renamed away before deletion, so a crash mid-prune never
 * leaves a damaged step folder. Returns the paths removed.
 */
export function pruneCheckpoints(outDir: string, keep: number): string[] {
  if (!Number.isInteger(keep) || keep < 1) throw new CheckpointError(`pruneCheckpoints: keep must be an integer >= 1, got ${keep}`);
  let latest: string | null = null;
  try {
    latest = fs.readFileSync(path.join(outDir, LATEST_FILE), 'utf8').trim();
  } catch {
    latest = null;
  }
  const removed: string[] = [];
  for (const { name } of stepDirs(outDir).slice(keep)) {
    if (name === latest) continue;
    const dir = path.join(outDir, name);
    const aside = path.join(outDir, `.deleting-${name}-${process.pid}`);
    fs.renameSync(dir, aside);
    fs.rmSync(aside, { recursive: true, force: true });
    removed.push(dir);
  }
  for (const t of staleTempDirs(outDir)) {
    fs.rmSync(path.join(outDir, t), { recursive: true, force: true });
    removed.push(path.join(outDir, t));
  }
  if (removed.length) fsyncDir(outDir);
  return removed;
}

function flatten(c: ModelConfig): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(c)) {
    if (k === 'name') continue;
    if (k === 'moe') {
      const m = v as ModelConfig['moe'];
      out.set('moe', m === null ? 'none' : `${m.experts} experts top-${m.topK}`);
      if (m !== null) for (const [mk, mv] of Object.entries(m)) out.set(`moe.${mk}`, mv);
    } else out.set(k, v);
  }
  return out;
}

/**
 * Throws a user-facing CheckpointError when a checkpoint's model config differs from this run's in
 * any field but the name, listing each difference as `field <checkpoint> vs <this run>`.
 */
export function assertCompatible(checkpointConfig: ModelConfig, modelConfig: ModelConfig, where?: string): void {
  const a = flatten(checkpointConfig);
  const b = flatten(modelConfig);
  const diffs: string[] = [];
  const moeDiffers = (checkpointConfig.moe === null) !== (modelConfig.moe === null);
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (moeDiffers && k.startsWith('moe.')) continue;
    const show = (m: Map<string, unknown>) => (m.has(k) ? (typeof m.get(k) === 'object' ? JSON.stringify(m.get(k)) : String(m.get(k))) : 'unset');
    if (JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k))) diffs.push(`${k} ${show(a)} vs ${show(b)}`);
  }
  if (diffs.length === 0) return;
  const from = where ? ` in ${where}` : '';
  const hint = checkpointConfig.name ? `use --preset ${checkpointConfig.name} or a fresh --out` : 'use the same model options or a fresh --out';
  throw new CheckpointError(
    `checkpoint${from} is from another model (checkpoint '${checkpointConfig.name}' vs this run '${modelConfig.name}'): ${diffs.join(', ')}; ${hint}`,
  );
}
