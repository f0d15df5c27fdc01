// The classes of failure a user can cause from the command line, turned into one line that names the
// problem and the fix: file-system errors from Node (EACCES, ENOSPC, EEXIST, ENOTDIR, ...), sizes too
// large to allocate (RangeError), and errors the code marks `userFacing`. src/cli/main.ts catches
// every command's error once and prints `userMessage(e)`; only a real bug keeps its stack trace.
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

/** An error whose message is already a complete one-line explanation with the fix. */
export class UserError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Node's file-system error codes and what the user can do about each. */
const FS_FIXES: Record<string, (path: string, op: string) => string> = {
  EACCES: (p, op) => `cannot ${op} ${p}: permission denied; choose a location you can write (or fix its permissions)`,
  EPERM: (p, op) => `cannot ${op} ${p}: operation not permitted; choose a location you can write (or fix its permissions)`,
  EROFS: (p, op) => `cannot ${op} ${p}: the file system is read-only; choose a location on a writable disk`,
  ENOSPC: (p, op) => `cannot ${op} ${p}: no space left on the device; free some space or choose a location on another disk`,
  EDQUOT: (p, op) => `cannot ${op} ${p}: disk quota exceeded; free some space or choose a location on another disk`,
  EEXIST: (p) => `${p} already exists and is not a folder; name a folder (or remove the file)`,
  ENOTDIR: (p) => `a part of ${p} is a file, not a folder; name a path inside a folder`,
  EISDIR: (p) => `${p} is a folder; name a file`,
  ENOENT: (p) => `${p} does not exist; check the path`,
  EMFILE: (p, op) => `cannot ${op} ${p}: too many open files; raise the limit (ulimit -n)`,
  ENAMETOOLONG: (p) => `the path ${p.slice(0, 80)}... is too long; choose a shorter one`,
};

const OPS: Record<string, string> = {
  open: 'open', mkdir: 'create the folder', rename: 'rename', write: 'write', unlink: 'remove', rmdir: 'remove', copyfile: 'copy', scandir: 'read the folder',
};

/** The one-line message for an error a user can act on, or null for an unexpected error (a bug). */
export function userMessage(e: unknown): string | null {
  if (!(e instanceof Error)) return null;
  if ((e as { userFacing?: boolean }).userFacing) return e.message;
  const err = e as NodeJS.ErrnoException;
  if (typeof err.code === 'string' && FS_FIXES[err.code]) {
    const p = err.path ?? (err as { dest?: string }).dest ?? '(unnamed path)';
    const op = OPS[err.syscall ?? ''] ?? err.syscall ?? 'write';
    if (err.code === 'ENOENT' && err.syscall === 'mkdir' && err.path && existsSync(dirname(err.path))) // a special file system such as /proc
      return `cannot create the folder ${p}: that location does not allow new folders; choose another (ENOENT)`;
    return `${FS_FIXES[err.code]!(p, op)} (${err.code})`;
  }
  if (e instanceof RangeError) {
    if (/allocation failed|invalid (typed )?array length|array buffer allocation|invalid string length/i.test(e.message))
      return `out of memory: a size asked for is too large to allocate (${e.message}); use smaller sizes`;
    if (/maximum call stack/i.test(e.message)) return `an input is too deeply nested or too long to process (${e.message})`;
  }
  return null;
}

/** True for the error a write to a closed pipe gives (`zili generate | head`). */
export function isBrokenPipe(e: unknown): boolean {
  return (e as NodeJS.ErrnoException | null)?.code === 'EPIPE';
}
