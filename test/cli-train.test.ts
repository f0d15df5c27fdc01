// `bin/zili train` and `bin/zili generate` as a user runs them, on the tiny preset with short
// sequences: Ctrl-C (SIGINT) saves a checkpoint and exits 130, --resume refuses another model,
// generate streams text from the run folder, and its errors are clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { readMetrics } from '../src/train/metrics.js';

const ZILI = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), 'bin', 'zili');
const root = mkdtempSync(join(tmpdir(), 'zili-cli-train-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const out = join(root, 'run');
const common = ['--preset', 'tiny', '--seq', '16', '--global-batch', '2', '--eval-every', '0', '--out', out];

test('zili train: Ctrl-C saves at the end of the step and exits 130; generate reads the run folder', async () => {
  const child = spawn(process.execPath, [ZILI, 'train', ...common, '--steps', '100000', '--save-every', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setInterval(() => {
      const metrics = join(out, 'metrics.jsonl');
      if (existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').length > 3) {
        clearInterval(timer);
        child.kill('SIGINT');
      }
    }, 50);
    child.on('error', reject);
    child.on('exit', (c) => {
      clearInterval(timer);
      resolve(c);
    });
  });
  assert.equal(code, 130, stderr);
  assert.match(stderr, /1,049,728 parameters/);
  assert.match(stderr, /SIGINT received: saving a checkpoint/);
  const steps = readMetrics(join(out, 'metrics.jsonl')).map((m) => m.step);
  assert.equal(loadCheckpoint(out).step, steps[steps.length - 1], 'the checkpoint holds the last step reported');
  assert.ok(existsSync(join(out, 'tokenizer.json')));

  const g = spawnSync(process.execPath, [ZILI, 'generate', '--checkpoint', out, '--prompt', 'The', '--max-tokens', '5', '--temperature', '0', '--no-stop'], { encoding: 'utf8' });
  assert.equal(g.status, 0, g.stderr);
  assert.ok(g.stdout.startsWith('The') && g.stdout.length > 4, g.stdout);
  assert.match(g.stderr, /5 tokens in/);
});

test('zili train --resume with another preset, and zili generate on a missing folder, fail clearly', () => {
  const r = spawnSync(process.execPath, [ZILI, 'train', ...common.map((a) => (a === 'tiny' ? 'tiny-moe' : a)), '--resume', '--steps', '10'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /zili train: checkpoint in .* is from another model \(checkpoint 'tiny' vs this run 'tiny-moe'\)/);
  const g = spawnSync(process.execPath, [ZILI, 'generate', '--checkpoint', join(root, 'nope'), '--prompt', 'x'], { encoding: 'utf8' });
  assert.equal(g.status, 1);
  assert.match(g.stderr, /checkpoint folder .*nope does not exist/);
});
