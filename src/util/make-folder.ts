// Creating a folder and its missing parents, one level at a time. Node's `mkdirSync(dir,
// { recursive: true })` reports ENOENT instead of EROFS on a read-only file system and never returns
// for a path under /proc (it retries forever); creating each missing level with a plain mkdir gives
// the real error at once.
import * as fs from 'node:fs';
import * as path from 'node:path';

export function makeFolder(dir: string): void {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d) && path.dirname(d) !== d; d = path.dirname(d)) missing.push(d);
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}
