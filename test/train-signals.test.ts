// Tests of Ctrl-C handling with a real child process: the first SIGINT/SIGTERM lets the loop finish its step and save, a second exits at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { installInterruptHandler, interrupted } from '../src/train/signals.js';

const fixture = fileURLToPath(new URL('./fixtures/interrupt-child.js', import.meta.url));

function runChild(mode: string, signals: NodeJS.Signals[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture], { env: { ...process.env, ZILI_INTERRUPT_FIXTURE: mode } });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!sent && stdout.includes('ready\n')) {
        sent = true;
        let i = 0;
        const next = () => {
          child.kill(signals[i]!);
          if (++i < signals.length) setTimeout(next, 100);
        };
        next();
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not exit; stdout: ${stdout} stderr: ${stderr}`));
    }, 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('first SIGINT: the loop sees interrupted(), finishes the step and exits cleanly', async () => {
  const r = await runChild('fast', ['SIGINT']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /saved at step \d+ after SIGINT \(onInterrupt calls: 1\)/);
  assert.match(r.stderr, /SIGINT received: saving a checkpoint of the last complete step/);
});

test('SIGTERM is handled like SIGINT', async () => {
  const r = await runChild('fast', ['SIGTERM']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /after SIGTERM/);
});

test('a second Ctrl-C exits at once with code 130 and a message', async () => {
  const r = await runChild('slow', ['SIGINT', 'SIGINT']);
  assert.equal(r.code, 130);
  assert.doesNotMatch(r.stdout, /saved/);
  assert.match(r.stderr, /received again: exiting now without saving/);
});

test('dispose removes the handlers and clears the flag', () => {
  const before = process.listenerCount('SIGINT');
  const exits: number[] = [];
  const dispose = installInterruptHandler(undefined, { stream: { write: () => true }, exit: (c) => void exits.push(c) });
  assert.equal(process.listenerCount('SIGINT'), before + 1);
  process.emit('SIGINT', 'SIGINT');
  assert.equal(interrupted(), true);
  process.emit('SIGTERM', 'SIGTERM');
  assert.deepEqual(exits, [143]);
  dispose();
  assert.equal(interrupted(), false);
  assert.equal(process.listenerCount('SIGINT'), before);
});
