// Where zili's files are: the repository root (found from this file, in src/ or dist/src/) and the
// cache folder for prepared data and measurements ($ZILI_CACHE, or .cache/zili under the root).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The nearest ancestor of this file holding package.json and native/. */
export function repoRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`zili: cannot find the repository root (package.json) above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The cache folder: $ZILI_CACHE, or <repo>/.cache/zili. */
export function cacheDir(): string {
  return process.env['ZILI_CACHE'] ? resolve(process.env['ZILI_CACHE']) : join(repoRoot(), '.cache', 'zili');
}
