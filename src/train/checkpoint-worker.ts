// The background thread of asynchronous checkpoints (async-checkpoint.ts): receives a state already
// copied to host memory and writes it with the same code as a synchronous save — a whole one-process
// checkpoint (temporary folder, fsync, rename, `latest`, pruning) or one data-parallel rank's shard
// file (whose commit stays a collective on the main thread). Fault injection `kill-in-save` makes it
// write part of the first file and SIGKILL the process, as a crash in the middle of a write would.
import * as path from 'node:path';
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { type CheckpointInput, MODEL_FILE, pruneCheckpoints, saveCheckpoint, stepDirName } from './checkpoint.js';
import { type NamedTensors, writeSafetensors } from './safetensors.js';

export type WorkerRequest =
  | { id: number; op: 'save'; outDir: string; input: CheckpointInput; keep: number; killMidway: boolean }
  | { id: number; op: 'shard'; file: string; tensors: NamedTensors; metadata: Record<string, string>; killMidway: boolean };

export type WorkerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string; code?: string };

/** Writes about half the tensors to `file`, then kills the process. */
function dieMidway(file: string, tensors: NamedTensors): never {
  const names = Object.keys(tensors);
  const half: NamedTensors = {};
  for (const n of names.slice(0, Math.max(1, names.length >> 1))) half[n] = tensors[n]!;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, half);
  fs.writeSync(2, `zili: ZILI_FAULT kill-in-save: pid ${process.pid} kills itself with SIGKILL while writing ${file}\n`); // synchronous: a worker's process.stderr would not get out in time
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

function handle(req: WorkerRequest): unknown {
  if (req.op === 'save') {
    if (req.killMidway) dieMidway(path.join(req.outDir, `.tmp-${stepDirName(req.input.step)}-${process.pid}`, MODEL_FILE), req.input.tensors);
    const dir = saveCheckpoint(req.outDir, req.input);
    pruneCheckpoints(req.outDir, req.keep);
    return dir;
  }
  if (req.killMidway) dieMidway(req.file, req.tensors);
  return writeSafetensors(req.file, req.tensors, { metadata: req.metadata });
}

parentPort!.on('message', (req: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { id: req.id, ok: true, value: handle(req) };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    reply = { id: req.id, ok: false, message: err.message, ...(err.code ? { code: err.code } : {}) };
  }
  parentPort!.postMessage(reply);
});
