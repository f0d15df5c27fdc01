// `prepare --out DIR` over an existing dataset: the new dataset is built beside the old one, in
// `.<DIR>.partial-<pid>`, and swapped in only once complete (manifest written), so an interrupted or
// failed re-prepare leaves the previous dataset exactly as it was, still trainable. Files in DIR
// that are not part of the old dataset (inputs kept there, notes) are carried into the new folder.
// A staging folder left by a prepare that was killed is removed by the next prepare.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { makeFolder } from '../util/make-folder.js';

export interface DatasetOutput {
  /** where to write the shards, tokenizer and manifest */
  buildDir: string;
  /** whether buildDir is a staging folder (an existing dataset is being replaced) */
  staged: boolean;
  /** a file inside the final folder as seen from buildDir (a --tokenizer kept in the old dataset) */
  inBuild(file: string): string;
  /** makes the new dataset the one at `out` (a no-op when built in place) */
  commit(): void;
  /** removes the staging folder after a failure (the old dataset is untouched) */
  abandon(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The files of the dataset whose manifest is in `dir` (manifest, shards, tokenizer when inside). */
function datasetFiles(dir: string): Set<string> {
  const files = new Set(['manifest.json']);
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
      splits?: Record<string, { shards?: { file?: unknown }[] }>;
      tokenizer?: { file?: unknown };
    };
    for (const split of Object.values(m.splits ?? {})) for (const s of split.shards ?? []) if (typeof s.file === 'string') files.add(s.file);
    if (typeof m.tokenizer?.file === 'string' && !m.tokenizer.file.startsWith('..')) files.add(m.tokenizer.file);
  } catch {
    // a damaged manifest: only the manifest itself is known to be the dataset's
  }
  return files;
}

/** Removes staging folders of `out` left by prepares that are no longer running. */
function removeStaleStaging(parent: string, name: string, log: (l: string) => void): void {
  const re = new RegExp(`^\\.${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.partial-(\\d+)$`);
  for (const e of fs.readdirSync(parent)) {
    const m = re.exec(e);
    if (!m || alive(Number(m[1]))) continue;
    fs.rmSync(path.join(parent, e), { recursive: true, force: true });
    log(`prepare: removed ${path.join(parent, e)}, left by an interrupted prepare`);
  }
}

/** Decides where `prepare --out out` builds; see the file comment. */
export function datasetOutput(out: string, log: (l: string) => void): DatasetOutput {
  const final = path.resolve(out);
  const st = fs.statSync(final, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw new UserError(`--out ${out} is a file, not a folder; name a folder for the dataset`);
  const parent = path.dirname(final);
  const name = path.basename(final);
  makeFolder(parent);
  removeStaleStaging(parent, name, log);
  if (!st || !fs.existsSync(path.join(final, 'manifest.json'))) {
    makeFolder(final);
    return { buildDir: final, staged: false, inBuild: (f) => f, commit: () => {}, abandon: () => {} };
  }
  const staging = path.join(parent, `.${name}.partial-${process.pid}`);
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging);
  log(`prepare: ${out} holds a dataset: building the new one in ${staging}, swapped in when complete`);
  return {
    buildDir: staging,
    staged: true,
    inBuild(file) {
      const rel = path.relative(final, path.resolve(file));
      if (rel.startsWith('..') || path.isAbsolute(rel)) return file;
      const copy = path.join(staging, rel);
      fs.mkdirSync(path.dirname(copy), { recursive: true });
      fs.copyFileSync(file, copy);
      return copy;
    },
    commit() {
      const old = datasetFiles(final);
      const aside = path.join(parent, `.${name}.old-${process.pid}`);
      fs.renameSync(final, aside);
      fs.renameSync(staging, final);
      // carry the files that were not the old dataset's into the new folder, then drop the old one
      for (const e of fs.readdirSync(aside)) {
        if (old.has(e) || fs.existsSync(path.join(final, e))) continue;
        fs.renameSync(path.join(aside, e), path.join(final, e));
      }
      fs.rmSync(aside, { recursive: true, force: true });
    },
    abandon() {
      fs.rmSync(staging, { recursive: true, force: true });
    },
  };
}
