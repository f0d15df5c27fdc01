// Ordinary mistakes must not lose work, end to end with `bin/zili` as a user runs it: two runs on
// one --out (the run-folder lock), an interrupted re-`prepare` (the dataset swap), Ctrl-C in the
// middle of a long step, a stale metrics file, a full disk during a checkpoint, and an --out the
// user cannot write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { readMetrics } from '../src/train/metrics.js';
import { acquireRunLock, LOCK_FILE } from '../src/train/run-lock.js';
import { readManifest } from '../src/data/manifest.js';

const ZILI = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), 'bin', 'zili');
const root = mkdtempSync(join(tmpdir(), 'zili-work-loss-'));
chmodSync(root, 0o755); // the read-only test runs a command as another user
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const tiny = ['--preset', 'tiny', '--seq', '16', '--global-batch', '2', '--eval-every', '0'];

const zili = (args: string[]) => spawnSync(process.execPath, [ZILI, ...args], { encoding: 'utf8', timeout: 300_000 });

function start(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<{ code: number | null; signal: string | null }> } {
  const child = spawn(process.execPath, [ZILI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<{ code: number | null; signal: string | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  return { child, stderr: () => err, exit };
}

async function until(what: string, ok: () => boolean, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const metricSteps = (file: string) => (existsSync(file) ? readMetrics(file).map((m) => m.step) : []);
const noStack = (stderr: string) => assert.doesNotMatch(stderr, /^ {4}at /m, stderr);

test('two runs on one --out: the second refuses at once naming the owner, the first finishes intact', async () => {
  const out = join(root, 'locked');
  const a = start(['train', ...tiny, '--steps', '150', '--save-every', '50', '--out', out]);
  await until('the first run to train', () => metricSteps(join(out, 'metrics.jsonl')).length > 0);
  const b = zili(['train', ...tiny, '--seed', '2', '--steps', '150', '--out', out]);
  const firstStillRunning = a.child.exitCode === null;
  noStack(b.stderr);
  assert.equal(b.status, 1, b.stderr);
  assert.match(b.stderr, new RegExp(`zili train: run folder .*locked is in use by process ${a.child.pid} on \\S+ \\(since .*\\); wait for it to finish or choose another --out`));
  assert.doesNotMatch(b.stderr, /parameters/, 'refused before building anything');
  assert.ok(firstStillRunning, 'the second run was refused while the first was still training');
  const r = await a.exit;
  assert.equal(r.code, 0, a.stderr());
  assert.deepEqual(metricSteps(join(out, 'metrics.jsonl')), Array.from({ length: 150 }, (_, i) => i + 1), 'each step once, from one run');
  assert.equal(loadCheckpoint(out).step, 150);
  assert.equal(loadCheckpoint(out).trainConfig && (loadCheckpoint(out).trainConfig as { seed: number }).seed, 1);
  assert.ok(!existsSync(join(out, LOCK_FILE)), 'the lock is released at the end');
});

test("a crashed run's lock does not stay stuck; another host's lock is refused with the way out", () => {
  const out = join(root, 'stale');
  mkdirSync(out);
  const dead = spawnSync(process.execPath, ['-e', '']).pid; // a process that has exited
  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: dead, host: hostname(), started: '2020-01-01T00:00:00Z', procStart: null, command: 'train' }));
  const r = zili(['train', ...tiny, '--steps', '1', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`removed the lock of process ${dead}, which is no longer running`));

  writeFileSync(join(out, LOCK_FILE), JSON.stringify({ pid: 1, host: 'other-host', started: '2020-01-01T00:00:00Z', procStart: null, command: 'train' }));
  assert.throws(() => acquireRunLock(out), /run folder .* is in use by process 1 on other-host .*delete .*\.lock if that run is gone/);
  rmSync(join(out, LOCK_FILE));
  const lock = acquireRunLock(out);
  assert.throws(() => acquireRunLock(out), new RegExp(`in use by process ${process.pid} on `), 'a live owner (this process) holds it');
  lock.release();
  assert.ok(!existsSync(join(out, LOCK_FILE)));
});

/** Text with many distinct words, `mb` megabytes, so tokenizing it takes a while. */
function corpus(mb: number, seed: number): string {
  const syl = ['ka', 'lo', 'mi', 'ten', 'ra', 'sun', 'be', 'dor', 'ph', 'ix', 'qua', 'zel'];
  let s = seed;
  const words: string[] = [];
  let bytes = 0;
  while (bytes < mb * 1e6) {
    let w = '';
    for (let k = 0; k < 3; k++) {
      s = (s * 1103515245 + 12345) >>> 0;
      w += syl[s % syl.length];
    }
    words.push(w);
    bytes += w.length + 1;
    if (words.length % 200 === 0) words.push('.<|endoftext|>');
  }
  return words.join(' ');
}

test('an interrupted re-prepare (Ctrl-C) leaves the previous dataset trainable', async () => {
  const ds = join(root, 'ds');
  writeFileSync(join(root, 'small.txt'), corpus(0.2, 1));
  writeFileSync(join(root, 'big.txt'), corpus(40, 2));
  const p = zili(['prepare', join(root, 'small.txt'), '--vocab', '400', '--out', ds]);
  assert.equal(p.status, 0, p.stderr);
  writeFileSync(join(ds, 'NOTES.md'), 'my notes\n');
  const before = readFileSync(join(ds, 'manifest.json'), 'utf8');
  const tokBefore = readFileSync(join(ds, 'tokenizer.json'), 'utf8');

  // re-prepare a large corpus with the dataset's own tokenizer; Ctrl-C while it tokenizes
  const re = start(['prepare', join(root, 'big.txt'), '--tokenizer', join(ds, 'tokenizer.json'), '--out', ds]);
  await until('the re-prepare to start tokenizing', () => /using tokenizer/.test(re.stderr()));
  await new Promise((r) => setTimeout(r, 300));
  re.child.kill('SIGINT');
  const r = await re.exit;
  assert.ok(r.signal === 'SIGINT' || r.code === 130, `interrupted: ${JSON.stringify(r)}\n${re.stderr()}`);
  assert.doesNotMatch(re.stderr(), /replaced the previous one/, 'the SIGINT landed before the swap');

  assert.equal(readFileSync(join(ds, 'manifest.json'), 'utf8'), before, 'the old manifest is untouched');
  assert.equal(readFileSync(join(ds, 'tokenizer.json'), 'utf8'), tokBefore, 'the old tokenizer is untouched');
  const vocab = readManifest(join(ds, 'manifest.json')).tokenizer.vocabSize;
  const t = zili(['train', ...tiny, '--vocab', String(vocab), '--steps', '2', '--data', join(ds, 'manifest.json'), '--out', join(root, 'ds-run')]);
  assert.equal(t.status, 0, `the previous dataset still trains:\n${t.stderr}`);

  // the next prepare removes the interrupted one's staging folder, swaps in a complete dataset and keeps NOTES.md
  const again = zili(['prepare', join(root, 'small.txt'), '--tokenizer', join(ds, 'tokenizer.json'), '--out', ds]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /removed .*\.ds\.partial-\d+, left by an interrupted prepare/);
  assert.match(again.stderr, /the new dataset replaced the previous one/);
  assert.equal(again.stdout.trim(), join(resolve(ds), 'manifest.json'));
  assert.equal(readFileSync(join(ds, 'NOTES.md'), 'utf8'), 'my notes\n');
  readManifest(join(ds, 'manifest.json')); // complete and valid, tokenizer hash included
  assert.deepEqual(readdirSync(root).filter((e) => e.startsWith('.ds.')), [], 'no staging folder left');
});

test('Ctrl-C in the middle of a long step stops at the next micro-batch with the last complete step saved; resume stays exact', async () => {
  const long = ['--preset', 'tiny', '--seq', '16', '--global-batch', '32', '--micro-batch', '1', '--eval-every', '0', '--steps', '3', '--save-every', '0'];
  const out = join(root, 'mid');
  const a = start(['train', ...long, '--out', out]);
  await until('step 1', () => metricSteps(join(out, 'metrics.jsonl')).length >= 1);
  a.child.kill('SIGINT'); // step 2 (32 micro-batches) has just begun
  const r = await a.exit;
  assert.equal(r.code, 130, a.stderr());
  assert.equal(loadCheckpoint(out).step, 1, 'the checkpoint is the last complete step, not the one interrupted');
  assert.deepEqual(metricSteps(join(out, 'metrics.jsonl')), [1]);

  const resumed = zili(['train', ...long, '--resume', '--out', out]);
  assert.equal(resumed.status, 0, resumed.stderr);
  const whole = zili(['train', ...long, '--out', join(root, 'mid-ref')]);
  assert.equal(whole.status, 0, whole.stderr);
  const losses = (f: string) => readMetrics(f).map((m) => m.loss);
  assert.deepEqual(losses(join(out, 'metrics.jsonl')), losses(join(root, 'mid-ref', 'metrics.jsonl')), 'bit-identical to an uninterrupted run');
});

test("a fresh run moves an earlier run's metrics.jsonl aside instead of appending to it", () => {
  const out = join(root, 'stale-metrics');
  mkdirSync(out);
  const stale = '{"step":1,"loss":9,"lr":0,"tokensPerSec":1}\n{"step":2,"loss":9,"lr":0,"tokensPerSec":1}\n';
  writeFileSync(join(out, 'metrics.jsonl'), stale);
  const r = zili(['train', ...tiny, '--steps', '3', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(metricSteps(join(out, 'metrics.jsonl')), [1, 2, 3]);
  assert.equal(readFileSync(join(out, 'metrics.old-1.jsonl'), 'utf8'), stale);
  assert.match(r.stderr, /moved the metrics of an earlier run .* to .*metrics\.old-1\.jsonl/);
});

const isRoot = process.getuid?.() === 0;

test('disk full during a checkpoint: how much was needed, the previous checkpoint kept', (t) => {
  const mnt = join(root, 'small-disk');
  mkdirSync(mnt);
  // a real full disk: a 20 MiB tmpfs holds one tiny checkpoint (12 MiB) but not two
  const m = isRoot ? spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mnt], { encoding: 'utf8' }) : null;
  if (!m || m.status !== 0) return t.skip(`needs root and mount to make a small tmpfs (${m ? m.stderr.trim() : 'not root'})`);
  try {
    const out = join(mnt, 'run');
    const r = zili(['train', ...tiny, '--steps', '4', '--save-every', '2', '--out', out]);
    noStack(r.stderr);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /zili train: no space left on the disk of .* while writing the checkpoint of step 4: it needs about 12\.0 MiB \([\d.]+ MiB are free\)\. The previous checkpoint .*step-00000002 is intact\./);
    assert.equal(loadCheckpoint(out).step, 2);
    assert.deepEqual(readdirSync(out).filter((e) => e.startsWith('.tmp')), [], 'the partial checkpoint is removed');
  } finally {
    spawnSync('umount', [mnt]);
  }
});

/** How to run zili as a user without write access to `dir`, or null when this machine cannot. */
function asOtherUser(): string[] | null {
  if (!isRoot) return []; // permissions apply to us
  const setpriv = spawnSync('setpriv', ['--version']);
  if (setpriv.status !== 0) return null;
  // the other user must be able to read the repository and the prepared data
  for (let d = dirname(ZILI); d !== dirname(d); d = dirname(d)) if ((statSync(d).mode & 0o005) !== 0o005) return null;
  return ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
}

test('--out in a read-only folder, and a read-only run folder on --resume: one line naming the fix', (t) => {
  const prefix = asOtherUser();
  if (!prefix) return t.skip('running as root without setpriv, or the repository is not readable by other users');
  const run = (args: string[]) => {
    const cmd = [...prefix, process.execPath, ZILI, ...args];
    return spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 120_000 });
  };
  const ro = join(root, 'read-only');
  mkdirSync(ro);
  chmodSync(ro, 0o555);
  let r = run(['train', ...tiny, '--steps', '1', '--out', join(ro, 'run')]);
  noStack(r.stderr);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /zili train: cannot write the run folder .*read-only\/run \(EACCES: permission denied\); choose an --out you can write/);

  const done = join(root, 'done');
  assert.equal(zili(['train', ...tiny, '--steps', '1', '--out', done]).status, 0);
  chmodSync(done, 0o555);
  r = run(['train', ...tiny, '--steps', '2', '--resume', '--out', done]);
  noStack(r.stderr);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /zili train: cannot write the run folder .*done \(EACCES: permission denied\)/);
});
