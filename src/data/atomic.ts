// Atomic file writes: write a temporary file next to the target, flush it, then rename over the
// target, so a crash mid-write never leaves a file that looks complete.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Writes data (string or byte chunks) to path atomically. */
export function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  const fd = openSync(tmp, 'w');
  try {
    const chunks: Uint8Array[] = Array.isArray(data) ? data : [typeof data === 'string' ? new TextEncoder().encode(data) : data];
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
