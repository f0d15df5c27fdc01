// Ctrl-C handling for training: the first SIGINT/SIGTERM sets a flag the loop polls between micro-batches (save the last complete step, exit cleanly); a second one exits at once.

let flag: string | null = null;

/** True once SIGINT or SIGTERM arrived since the handler was installed. */
export function interrupted(): boolean {
  return flag !== null;
}

/** The signal that interrupted the run ('SIGINT' or 'SIGTERM'), or null. */
export function interruptSignal(): string | null {
  return flag;
}

export interface InterruptOptions {
  /** where the messages go (default: stderr) */
  stream?: { write(text: string): unknown };
  /** how the second signal ends the process (default: process.exit) */
  exit?: (code: number) => void;
  signals?: NodeJS.Signals[];
}

/**
 * Installs SIGINT and SIGTERM handlers. The first signal sets `interrupted()` and calls
 * `onInterrupt(signal)`; the loop should stop at the next micro-batch boundary, save the last complete step and exit.
 * The second exits at once with code 130 (SIGINT) or 143 (SIGTERM), saving nothing; an earlier
 * checkpoint is safe because checkpoints are written atomically.
 *
 * Node runs signal handlers on the event loop: a training loop must yield once per step (e.g.
 * `await new Promise(setImmediate)`) for the flag to be seen. Returns a function that removes the
 * handlers and clears the flag.
 */
export function installInterruptHandler(onInterrupt?: (signal: string) => void, opts: InterruptOptions = {}): () => void {
  const stream = opts.stream ?? process.stderr;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const signals = opts.signals ?? ['SIGINT', 'SIGTERM'];
  flag = null;
  const handler = (signal: NodeJS.Signals) => {
    if (flag === null) {
      flag = signal;
      stream.write(`\nzili: ${signal} received: saving a checkpoint of the last complete step at the next micro-batch boundary, then exiting (press Ctrl-C again to quit now without saving)\n`);
      onInterrupt?.(signal);
      return;
    }
    stream.write(`\nzili: ${signal} received again: exiting now without saving (the last checkpoint written is intact)\n`);
    exit(signal === 'SIGTERM' ? 143 : 130);
  };
  for (const s of signals) process.on(s, handler);
  return () => {
    for (const s of signals) process.off(s, handler);
    flag = null;
  };
}
