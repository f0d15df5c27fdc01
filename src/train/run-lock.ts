// The lock a training run holds on its run folder (`<out>/.lock`), so two runs never write one
// folder's checkpoints and metrics at once (two seeds launched with the same --out). The file is
// created exclusively (O_EXCL) and holds the owner's pid, host and start time; a lock left by a run
// that crashed or was killed is detected (same host, no such process, or the pid now belongs to a
// process that started later) and replaced, so it never stays stuck. A lock from another host
// cannot be checked from here: the message says how to remove it if that run is gone.
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { makeFolder } from '../util/make-folder.js';

export const LOCK_FILE = '.lock';

export interface LockOwner {
  pid: number;
  host: string;
  /** when the owner took the lock (ISO time) */
  started: string;
  /** the owner's process start time in clock ticks since boot (Linux /proc), to tell a reused pid */
  procStart: number | null;
  command: string;
}

export interface RunLock {
  file: string;
  /** a stale lock that was replaced (its owner had exited), or null */
  replaced: LockOwner | null;
  release(): void;
}

/** The start time of a process (clock ticks since boot, from /proc/<pid>/stat), or null when unknown. */
function procStartTime(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]); // field 22 of stat; fields[0] is field 3
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** The state letter of a process (R, S, D, Z for a zombie, ...), or null when unknown. */
function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

/** Whether the process that wrote `owner` is still running (on this host). */
function ownerAlive(owner: LockOwner): boolean {
  // a killed rank whose parent (mpirun) is gone can stay a zombie where nothing reaps orphans (a
  // container's init): it answers kill(pid, 0) but runs nothing
  const state = procState(owner.pid);
  if (state === 'Z' || state === 'X') return false;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: a process exists but belongs to someone else: alive unless its start time says it is another one
  }
  if (owner.procStart !== null) {
    const now = procStartTime(owner.pid);
    if (now !== null && now !== owner.procStart) return false; // the pid was reused
  }
  return true;
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
    return typeof o.pid === 'number' && typeof o.host === 'string' ? o : null;
  } catch {
    return null; // vanished, or torn by a crash while being written
  }
}

function describe(o: LockOwner): string {
  return `process ${o.pid} on ${o.host} (since ${o.started}${o.command ? `: ${o.command}` : ''})`;
}

/** Creates the run folder if needed and locks it; throws a UserError naming the owner when another live run holds it. */
export function acquireRunLock(out: string, command = process.argv.slice(2).join(' ')): RunLock {
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(out);
  } catch {
    // created below
  }
  if (st && !st.isDirectory()) throw new UserError(`--out ${out} is a file, not a folder; name a run folder (a new or an existing run's folder)`);
  const unwritable = (e: unknown) => {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? new UserError(`cannot write the run folder ${out} (${code}${code === 'EROFS' ? ': read-only file system' : ': permission denied'}); choose an --out you can write, or fix its permissions`)
      : e;
  };
  try {
    makeFolder(out);
  } catch (e) {
    throw unwritable(e);
  }
  const file = path.join(out, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString(), procStart: procStartTime(process.pid), command };
  let replaced: LockOwner | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw unwritable(e);
      const owner = readOwner(file);
      if (owner && owner.host !== me.host)
        throw new UserError(`run folder ${out} is in use by ${describe(owner)}; wait for that run, choose another --out, or delete ${file} if that run is gone`);
      if (owner && ownerAlive(owner))
        throw new UserError(`run folder ${out} is in use by ${describe(owner)}; wait for it to finish or choose another --out`);
      if (!owner && Date.now() - (fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) < 10_000)
        throw new UserError(`run folder ${out} is being locked by another run that is starting now (${file}); choose another --out`);
      // a crashed run's lock (or one torn by a crash while being written): take it over
      replaced = owner;
      fs.rmSync(file, { force: true });
      continue;
    }
    try {
      fs.writeSync(fd, JSON.stringify(me) + '\n');
    } finally {
      fs.closeSync(fd);
    }
    let released = false;
    return {
      file,
      replaced,
      release() {
        if (released) return;
        released = true;
        const owner = readOwner(file);
        if (owner && owner.pid === me.pid && owner.host === me.host) fs.rmSync(file, { force: true });
      },
    };
  }
  throw new UserError(`could not lock run folder ${out}: ${file} keeps reappearing; another run may be starting there`);
}
