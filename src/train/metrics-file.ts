// The metrics file of a fresh run: a file left by an earlier run in the same place (one that failed
// before its first checkpoint, or any file named by --metrics) is moved aside, never appended to,
// so a run's metrics.jsonl holds that run's steps only, each once. (A resume instead keeps the
// file and drops the lines past the checkpoint's step: MetricsWriter's resumeStep.)
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Renames a non-empty `file` to `<name>.old-N<ext>` (the first N free) and returns that path; null when there was nothing to move. */
export function moveAsideStaleMetrics(file: string): string | null {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st || !st.isFile() || st.size === 0) return null;
  const { dir, name, ext } = path.parse(file);
  for (let n = 1; ; n++) {
    const aside = path.join(dir, `${name}.old-${n}${ext}`);
    if (fs.existsSync(aside)) continue;
    fs.renameSync(file, aside);
    return aside;
  }
}
