// Durable file-system helpers shared by checkpoints, token shards and manifests: fsync of files and
// folders, atomic replace (a crash never leaves a file that looks complete), streaming sha256.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** fsyncs a folder so the names created, renamed or removed in it are durable (a no-op where folders cannot be opened). */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on a folder; the rename is still atomic there
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes a whole file (a string, bytes, or byte chunks) and fsyncs it; returns its size and sha256. */
export function writeFileDurable(file: string, data: string | Uint8Array | Uint8Array[]): { bytes: number; sha256: string } {
  const chunks = Array.isArray(data) ? data : [typeof data === 'string' ? new TextEncoder().encode(data) : data];
  const hash = createHash('sha256');
  let bytes = 0;
  const fd = fs.openSync(file, 'w');
  try {
    for (const buf of chunks) {
      for (let at = 0; at < buf.length; ) at += fs.writeSync(fd, buf, at, buf.length - at);
      hash.update(buf);
      bytes += buf.length;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** Replaces `file` atomically: readers see the old content or the new, never a mix (tmp file, fsync, rename, fsync folder). */
export function writeFileAtomic(file: string, data: string | Uint8Array | Uint8Array[]): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  try {
    writeFileDurable(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(file));
}

/** sha256 (hex) and size of a file, read in 8 MiB chunks. */
export function hashFile(file: string): { bytes: number; sha256: string } {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const chunk = new Uint8Array(8 << 20);
  let bytes = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, bytes);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
      bytes += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { bytes, sha256: hash.digest('hex') };
}
