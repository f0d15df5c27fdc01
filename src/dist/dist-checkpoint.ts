// Saving a checkpoint from data-parallel ranks: every rank writes, in parallel, its own piece of every
// weight and AdamW moment (the elements its ZeRO chunk covers, whatever the stage) to
// `rank-NNNNN.safetensors` in a shared temporary folder and fsyncs it; the ranks exchange the files'
// sizes and sha256 in one all-gather; only when every rank has written does rank 0 write the
// manifest (global shapes, each piece's offset, every file's sha256), rename the folder into place
// and update `latest`. A rank that dies mid-save leaves only a temporary folder, ignored and later
// removed, so the last complete checkpoint stays the one --resume finds. Reading is
// checkpoint-shards.ts (through loadCheckpoint), under any layout.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type CheckpointInput, CheckpointError, commitStepDir, type FileRecord, makeManifest, type Manifest, MANIFEST_FILE, pruneCheckpoints, stepDirName } from '../train/checkpoint.js';
import { rankFileName, type ShardIndex, type ShardedTensor } from '../train/checkpoint-shards.js';
import type { NamedTensors } from '../train/safetensors.js';
import { writeSafetensors } from '../train/safetensors.js';
import { routerBiasTensors } from '../train/train-state.js';
import { fsyncDir, writeFileDurable } from '../util/atomic-fs.js';
import type { Communicator } from './communicator.js';
import type { DataParallel } from './data-parallel.js';
import { ownedRange } from './shard-layout.js';

/** Ints per rank in the exchange: ok flag, file size (low, high 32 bits), sha256 (8 words). */
const RECORD_INTS = 11;

function encodeRecord(ok: boolean, rec: FileRecord | null): Int32Array {
  const out = new Int32Array(RECORD_INTS);
  out[0] = ok ? 1 : 0;
  if (rec) {
    out[1] = rec.bytes % 2 ** 31;
    out[2] = Math.floor(rec.bytes / 2 ** 31);
    const h = Buffer.from(rec.sha256, 'hex');
    for (let i = 0; i < 8; i++) out[3 + i] = h.readInt32LE(4 * i);
  }
  return out;
}

function decodeRecord(a: Int32Array, rank: number): { ok: boolean; rec: FileRecord } {
  const r = a.subarray(rank * RECORD_INTS, (rank + 1) * RECORD_INTS);
  const h = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) h.writeInt32LE(r[3 + i]!, 4 * i);
  return { ok: r[0] === 1, rec: { bytes: r[1]! + r[2]! * 2 ** 31, sha256: h.toString('hex') } };
}

/** This rank's pieces: weights under their names, moments as `<name>.m` / `<name>.v`; rank 0 adds the routing biases. */
async function rankPieces(dp: DataParallel): Promise<NamedTensors> {
  const { world, rank } = dp.layout;
  const out: NamedTensors = {};
  const opt = dp.optimizerState();
  for (const [name, shape] of dp.paramShapes()) {
    const numel = shape.reduce((a, b) => a * b, 1);
    const { start, end } = ownedRange(numel, world, rank);
    if (end === start) continue;
    const piece = async (t: { numel: number; data(): Promise<unknown> }, sharded: boolean) => {
      const d = (await t.data()) as Float32Array;
      return { dtype: 'f32' as const, shape: [end - start], data: Float32Array.from(sharded ? d.subarray(0, end - start) : d.subarray(start, end)) };
    };
    const src = dp.paramSource(name);
    out[name] = await piece(src.tensor, src.sharded);
    out[`${name}.m`] = await piece(opt.m.get(name)!, dp.zero >= 1);
    out[`${name}.v`] = await piece(opt.v.get(name)!, dp.zero >= 1);
  }
  if (rank === 0) Object.assign(out, routerBiasTensors(dp.model));
  return out;
}

/** The manifest's index: where each rank put its piece of every tensor. */
function shardIndex(dp: DataParallel): ShardIndex {
  const { world } = dp.layout;
  const tensors: Record<string, ShardedTensor> = {};
  for (const [name, shape] of dp.paramShapes()) {
    const numel = shape.reduce((a, b) => a * b, 1);
    for (const key of [name, `${name}.m`, `${name}.v`]) {
      const pieces = [];
      for (let r = 0; r < world; r++) {
        const { start, end } = ownedRange(numel, world, r);
        if (end > start) pieces.push({ file: rankFileName(r), key, start, numel: end - start });
      }
      tensors[key] = { shape: [...shape], dtype: 'f32', pieces };
    }
  }
  for (const [key, t] of Object.entries(routerBiasTensors(dp.model))) tensors[key] = { shape: t.shape, dtype: 'f64', pieces: [{ file: rankFileName(0), key, start: 0, numel: t.data.length }] };
  return { world, zero: dp.zero, tensors };
}

export type DistCheckpointInput = Omit<CheckpointInput, 'tensors' | 'optimizer'>;

/** One rank's state at a step boundary, in host memory: its pieces, and what rank 0's manifest will say. */
export interface RankSnapshot {
  pieces: NamedTensors;
  metadata: Record<string, string>;
  optimizer: NonNullable<Manifest['optimizer']>;
  shards: ShardIndex;
}

/** What a parallel layout saves: this rank's pieces, and (on rank 0) the index of every rank's pieces. */
export interface ShardSource {
  /** this rank's file: every piece it owns under its key */
  pieces(): Promise<NamedTensors>;
  /** the manifest's shards index over all ranks */
  index(): ShardIndex;
  /** parameter names (whole model), extra tensor names, and the optimizer's JSON state, for the manifest */
  params: string[];
  extra: string[];
  state: unknown;
}

/** The data-parallel (ZeRO) layout as a shard source. */
export function dataParallelShards(dp: DataParallel): ShardSource {
  return {
    pieces: () => rankPieces(dp),
    index: () => shardIndex(dp),
    params: [...dp.paramShapes().keys()].sort(),
    extra: Object.keys(routerBiasTensors(dp.model)).sort(),
    state: { step: dp.step, config: dp.opts.adamw },
  };
}

/** Copies this rank's pieces to host memory (the only part of a save that must stop training). */
export async function snapshotRank(dp: DataParallel | ShardSource, comm: Communicator, step: number): Promise<RankSnapshot> {
  const source = 'pieces' in dp ? dp : dataParallelShards(dp);
  return {
    pieces: await source.pieces(),
    metadata: { producer: 'zili', step: String(step), rank: String(comm.rank) },
    optimizer: { params: source.params, extra: source.extra, state: source.state },
    shards: source.index(),
  };
}

/** Collective: rank 0 makes the step's temporary folder, named after its pid (stale ones are recognised by it). */
export async function openShardFolder(outDir: string, comm: Communicator, step: number): Promise<string> {
  const name = stepDirName(step);
  const pid = Int32Array.of(0);
  if (comm.rank === 0) {
    fs.mkdirSync(outDir, { recursive: true });
    pid[0] = process.pid;
  }
  await comm.broadcast(pid, 0);
  const tmp = path.join(outDir, `.tmp-${name}-${pid[0]}`);
  if (comm.rank === 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
  }
  await comm.barrier();
  return tmp;
}

/** What writing this rank's file gave: its record, or the error. */
export type ShardWrite = { rec: FileRecord; failure: null } | { rec: null; failure: Error };

/**
 * Collective: the ranks exchange their files' records; only when every rank wrote its file does rank 0
 * write the manifest, rename the folder into place and update `latest`. Returns the committed step
 * folder (on every rank); throws on every rank when any rank failed.
 */
export async function commitShards(outDir: string, tmp: string, comm: Communicator, c: DistCheckpointInput, snap: Omit<RankSnapshot, 'pieces'>, local: ShardWrite, keep: number): Promise<string> {
  const name = stepDirName(c.step);
  const all = new Int32Array(RECORD_INTS * comm.size);
  await comm.allGather(encodeRecord(local.failure === null, local.rec), all);
  const records = Array.from({ length: comm.size }, (_, r) => decodeRecord(all, r));
  const failed = records.flatMap((r, i) => (r.ok ? [] : [i]));
  if (failed.length) {
    if (comm.rank === 0) fs.rmSync(tmp, { recursive: true, force: true });
    throw new CheckpointError(`checkpoint step ${c.step} not saved: rank(s) ${failed.join(', ')} could not write their shards${local.failure ? ` (${local.failure.message})` : ''}`);
  }

  const committed = Int32Array.of(0);
  let commitError: Error | null = null;
  if (comm.rank === 0) {
    try {
      const files: Record<string, FileRecord> = {};
      records.forEach((r, i) => (files[rankFileName(i)] = r.rec));
      const manifest = makeManifest(c, snap.optimizer, files, snap.shards);
      writeFileDurable(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
      fsyncDir(tmp);
      commitStepDir(outDir, tmp, name);
      pruneCheckpoints(outDir, keep);
      committed[0] = 1;
    } catch (e) {
      commitError = e as Error;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  await comm.broadcast(committed, 0);
  if (commitError) throw commitError;
  if (!committed[0]) throw new CheckpointError(`checkpoint step ${c.step} not saved: rank 0 could not commit it (see rank 0's message)`);
  return path.join(outDir, name);
}

/**
 * Collective: every rank of dp's communicator calls it with the same step. Returns the committed step
 * folder (on every rank). Throws on every rank when any rank failed to write.
 */
export function saveDistributedCheckpoint(outDir: string, dp: DataParallel, comm: Communicator, c: DistCheckpointInput, keep: number): Promise<string> {
  return saveShardedCheckpoint(outDir, dataParallelShards(dp), comm, c, keep);
}

/** As saveDistributedCheckpoint, for any layout's shard source (comm: every rank that writes a file). */
export async function saveShardedCheckpoint(outDir: string, source: ShardSource, comm: Communicator, c: DistCheckpointInput, keep: number): Promise<string> {
  const tmp = await openShardFolder(outDir, comm, c.step);
  const snap = await snapshotRank(source, comm, c.step);
  let local: ShardWrite;
  try {
    local = { rec: writeSafetensors(path.join(tmp, rankFileName(comm.rank)), snap.pieces, { metadata: snap.metadata }), failure: null };
  } catch (e) {
    local = { rec: null, failure: e as Error };
  }
  return commitShards(outDir, tmp, comm, c, snap, local, keep);
}
