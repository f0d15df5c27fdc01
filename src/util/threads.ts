// Thread counts a user asks for: the native kernels accept 1..MAX_THREADS; more threads than the
// machine has cores are allowed (a shared-core experiment) but oversubscribe and run many times
// slower, so the user is told.
import { availableParallelism } from 'node:os';

/** The native addon's limit on --threads. */
export const MAX_THREADS = 1024;

/** A warning line when `threads` exceeds the cores this process may use, else null. */
export function oversubscriptionWarning(threads: number, cores = availableParallelism()): string | null {
  if (threads <= cores) return null;
  return `warning: --threads ${threads} is more than the ${cores} core(s) available; the threads will share cores and run much slower (use --threads ${cores} or less)`;
}
