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
import { type CheckpointInput, CheckpointError, commitStepDir, type FileRecord, makeManifest, MANIFEST_FILE, pruneCheckpoints, stepDirName } from '../train/checkpoint.js';
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

/**
 * Collective: every rank of dp's communicator calls it with the same step. Returns the committed step
 * folder (on every rank). Throws on every rank when any rank failed to write.
 */
export function saveDistributedCheckpoint(outDir: string, dp: DataParallel, comm: Communicator, c: DistCheckpointInput, keep: number): Promise<string> {
  return saveShardedCheckpoint(outDir, dataParallelShards(dp), comm, c, keep);
}

/** As saveDistributedCheckpoint, for any layout's shard source (comm: every rank that writes a file). */
export async function saveShardedCheckpoint(outDir: string, source: ShardSource, comm: Communicator, c: DistCheckpointInput, keep: number): Promise<string> {
  const name = stepDirName(c.step);
  // rank 0 prepares the temporary folder and names it after its pid (stale ones are recognised by it)
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

  let rec: FileRecord | null = null;
  let failure: Error | null = null;
  try {
    rec = writeSafetensors(path.join(tmp, rankFileName(comm.rank)), await source.pieces(), { metadata: { producer: 'zili', step: String(c.step), rank: String(comm.rank) } });
  } catch (e) {
    failure = e as Error;
  }
  const all = new Int32Array(RECORD_INTS * comm.size);
  await comm.allGather(encodeRecord(failure === null, rec), all);
  const records = Array.from({ length: comm.size }, (_, r) => decodeRecord(all, r));
  const failed = records.flatMap((r, i) => (r.ok ? [] : [i]));
  if (failed.length) {
    if (comm.rank === 0) fs.rmSync(tmp, { recursive: true, force: true });
    throw new CheckpointError(`checkpoint step ${c.step} not saved: rank(s) ${failed.join(', ')} could not write their shards${failure ? ` (${failure.message})` : ''}`);
  }

  const committed = Int32Array.of(0);
  let commitError: Error | null = null;
  if (comm.rank === 0) {
    try {
      const files: Record<string, FileRecord> = {};
      records.forEach((r, i) => (files[rankFileName(i)] = r.rec));
      const manifest = makeManifest(c, { params: source.params, extra: source.extra, state: source.state }, files, source.index());
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
