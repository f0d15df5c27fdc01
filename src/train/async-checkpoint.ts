// Checkpoint saving for the training loop, synchronous or asynchronous (`--save-mode`). Asynchronous:
// at the step boundary the state is copied to host memory (the only stall), then a worker thread
// (checkpoint-worker.ts) writes it while training continues. The files go to a temporary folder that
// is renamed into place only when complete, so a crash mid-write leaves the previous checkpoint as the
// latest. Data parallel: each rank's worker writes its own shard file; at every later step boundary the
// ranks agree (one tiny all-reduce) whether all have finished, and only then exchange the records and
// let rank 0 write the manifest and commit (dist-checkpoint.ts) — the same invariant as a synchronous
// save, at the same step on every rank, so the collectives stay in order.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { type CheckpointInput, CheckpointError, pruneCheckpoints, saveCheckpoint } from './checkpoint.js';
import { rankFileName } from './checkpoint-shards.js';
import type { WorkerReply, WorkerRequest } from './checkpoint-worker.js';
import type { Communicator } from '../dist/communicator.js';
import type { DataParallel } from '../dist/data-parallel.js';
import { commitShards, type DistCheckpointInput, openShardFolder, type RankSnapshot, type ShardWrite, snapshotRank } from '../dist/dist-checkpoint.js';
import type { FileRecord } from './checkpoint.js';
import { writeSafetensors } from './safetensors.js';

export type SaveMode = 'sync' | 'async';

type Request = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * The snapshot's buffers that can move to the worker without a copy: each one a whole ArrayBuffer of
 * its own (the host copies the backends' read() returns). The sender must not touch them afterwards.
 */
function transferable(req: Request): ArrayBuffer[] {
  const groups = req.op === 'save' ? [req.input.tensors, req.input.optimizer?.m, req.input.optimizer?.v, req.input.optimizer?.tensors] : [req.tensors];
  const views = new Map<ArrayBufferLike, number>();
  const whole = new Set<ArrayBuffer>();
  for (const g of groups)
    for (const t of Object.values(g ?? {})) {
      const b = t.data.buffer;
      views.set(b, (views.get(b) ?? 0) + 1);
      if (b instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === b.byteLength) whole.add(b);
    }
  // a buffer behind two views is copied, not moved
  return [...whole].filter((b) => views.get(b) === 1);
}

/** A worker thread that writes checkpoint files, one request at a time. */
class CheckpointThread {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  /** Starts the thread now, so the first checkpoint's stall does not include its start-up. */
  start(): void {
    if (!this.worker) {
      this.worker = new Worker(new URL('./checkpoint-worker.js', import.meta.url));
      this.worker.on('message', (r: WorkerReply) => {
        const w = this.waiting.get(r.id);
        this.waiting.delete(r.id);
        if (!w) return;
        if (r.ok) w.resolve(r.value);
        else w.reject(r.code === 'ENOSPC' || r.code === 'EDQUOT' ? new CheckpointError(`no space left on the disk while writing a checkpoint (${r.message}); free some space, then continue with --resume`) : new CheckpointError(r.message));
      });
      this.worker.on('error', (e) => {
        for (const w of this.waiting.values()) w.reject(e);
        this.waiting.clear();
      });
    }
  }

  call(req: Request): Promise<unknown> {
    this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker!.postMessage({ ...req, id }, transferable(req));
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}

export interface CheckpointerDeps {
  out: string;
  keep: number;
  mode: SaveMode;
  log: (line: string) => void;
  /** the state of one process (null under data parallelism) */
  snapshot?: () => Promise<Pick<CheckpointInput, 'tensors' | 'optimizer'>>;
  dp?: DataParallel | null;
  comm?: Communicator | null;
  /** fault injection: this rank must die partway through writing the checkpoint of `step` */
  killInSave?: (step: number) => boolean;
}

export interface SaveTiming {
  step: number;
  /** seconds training stood still for this checkpoint */
  stallS: number;
  /** seconds from the step boundary to the commit */
  writeS: number;
}

interface Pending {
  step: number;
  startedAt: number;
  stallS: number;
  settled: boolean;
  /** one process: the committed folder; data parallel: this rank's file */
  result: Promise<ShardWrite | string>;
  dist: { tmp: string; meta: DistCheckpointInput; snap: Omit<RankSnapshot, 'pieces'> } | null;
}

export class Checkpointer {
  private readonly thread = new CheckpointThread();
  private pending: Pending | null = null;
  /** the last committed step folder */
  lastSaved: string | null = null;
  /** one entry per committed checkpoint */
  readonly timings: SaveTiming[] = [];

  constructor(private readonly d: CheckpointerDeps) {
    if (d.mode === 'async') this.thread.start();
  }

  private get dist(): boolean {
    return !!this.d.dp && !!this.d.comm;
  }

  /** Saves the state of `meta.step` (collective under data parallelism). Returns the seconds training stalled. */
  async save(meta: DistCheckpointInput): Promise<number> {
    await this.flush(); // one write at a time
    const t0 = performance.now();
    const killMidway = this.d.killInSave?.(meta.step) ?? false;
    if (this.dist) {
      const { dp, comm } = this.d as { dp: DataParallel; comm: Communicator };
      const tmp = await openShardFolder(this.d.out, comm, meta.step);
      const { pieces, ...snap } = await snapshotRank(dp, comm, meta.step);
      const file = path.join(tmp, rankFileName(comm.rank));
      if (this.d.mode === 'sync' && !killMidway) {
        let local: ShardWrite;
        try {
          local = { rec: writeSafetensors(file, pieces, { metadata: snap.metadata }), failure: null };
        } catch (e) {
          local = { rec: null, failure: e as Error };
        }
        const dir = await commitShards(this.d.out, tmp, comm, meta, snap, local, this.d.keep);
        return this.committed(meta.step, dir, t0, (performance.now() - t0) / 1000);
      }
      const result = this.thread.call({ op: 'shard', file, tensors: pieces, metadata: snap.metadata, killMidway }).then(
        (rec): ShardWrite => ({ rec: rec as FileRecord, failure: null }),
        (e): ShardWrite => ({ rec: null, failure: e as Error }),
      );
      return this.track(meta.step, t0, result, { tmp, meta, snap });
    }
    const state = await this.d.snapshot!();
    const input: CheckpointInput = { ...meta, ...state };
    if (this.d.mode === 'sync' && !killMidway) {
      const dir = saveCheckpoint(this.d.out, input);
      pruneCheckpoints(this.d.out, this.d.keep);
      return this.committed(meta.step, dir, t0, (performance.now() - t0) / 1000);
    }
    const result = this.thread.call({ op: 'save', outDir: this.d.out, input, keep: this.d.keep, killMidway }) as Promise<string>;
    return this.track(meta.step, t0, result, null);
  }

  private track(step: number, t0: number, result: Promise<ShardWrite | string>, dist: Pending['dist']): number {
    const stallS = (performance.now() - t0) / 1000;
    const p: Pending = { step, startedAt: t0, stallS, settled: false, result, dist };
    result.then(
      () => (p.settled = true),
      () => (p.settled = true),
    );
    this.pending = p;
    return stallS;
  }

  private committed(step: number, dir: string, t0: number, stallS: number): number {
    const writeS = (performance.now() - t0) / 1000;
    this.lastSaved = dir;
    this.timings.push({ step, stallS, writeS });
    const ranks = this.dist ? ` (${this.d.comm!.size} ranks' shards)` : '';
    const how = this.d.mode === 'async' ? `training stalled ${stallS.toFixed(3)} s for the snapshot, written in the background in ${writeS.toFixed(2)} s` : `training stalled ${stallS.toFixed(3)} s (synchronous write)`;
    this.d.log(`train: saved checkpoint ${dir}${ranks}: ${how}`);
    return stallS;
  }

  /** At a step boundary: commits a finished background write (collective under data parallelism: every rank calls it at every step). */
  async poll(): Promise<void> {
    const p = this.pending;
    if (!p) return;
    if (this.dist) {
      const flag = Int32Array.of(p.settled ? 1 : 0);
      await this.d.comm!.allReduce(flag);
      if (flag[0] !== this.d.comm!.size) return;
    } else if (!p.settled) return;
    await this.finish(p);
  }

  /** Waits for the background write (if any) and commits it (collective under data parallelism). */
  async flush(): Promise<void> {
    const p = this.pending;
    if (!p) return;
    await p.result.catch(() => {});
    await this.finish(p);
  }

  private async finish(p: Pending): Promise<void> {
    this.pending = null;
    const r = await p.result;
    if (p.dist) {
      const dir = await commitShards(this.d.out, p.dist.tmp, this.d.comm!, p.dist.meta, p.dist.snap, r as ShardWrite, this.d.keep);
      this.committed(p.step, dir, p.startedAt, p.stallS);
    } else this.committed(p.step, r as string, p.startedAt, p.stallS);
  }

  /** Stops the worker thread (after flush, or when abandoning a failed run). */
  async close(): Promise<void> {
    await this.thread.close();
  }
}

