// What a user types that is wrong gets one line naming the problem and the fix, never a JavaScript
// stack trace: every case below runs `bin/zili` as a user does and checks the exit code, the
// message, and that stderr holds no `    at ` frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ZILI = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), 'bin', 'zili');
const root = mkdtempSync(join(tmpdir(), 'zili-cli-errors-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const aFile = join(root, 'a-file');
writeFileSync(aFile, 'not a folder\n');
const tiny = ['--preset', 'tiny', '--seq', '16', '--global-batch', '2', '--eval-every', '0'];

function zili(args: string[], opts: { timeout?: number } = {}) {
  return spawnSync(process.execPath, [ZILI, ...args], { encoding: 'utf8', timeout: opts.timeout ?? 120_000 });
}

/** Runs a command that must fail with `code` and a message matching `message`, and no stack frame. */
function refuses(args: string[], code: number, message: RegExp) {
  const r = zili(args);
  assert.doesNotMatch(r.stderr, /^ {4}at /m, `stack trace from zili ${args.join(' ')}:\n${r.stderr}`);
  assert.equal(r.status, code, `zili ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  assert.match(r.stderr, message);
  const last = r.stderr.trim().split('\n').pop()!;
  assert.match(last, /^zili [a-z]+: /, `the error is one line of its own: ${last}`);
}

// a tiny run to generate from (2 steps)
const run = join(root, 'run');
test('setup: a 2-step tiny run', () => {
  const r = zili(['train', ...tiny, '--steps', '2', '--out', run]);
  assert.equal(r.status, 0, r.stderr);
});

const cases: [string, string[], number, RegExp][] = [
  ['train --lr 1e9: the step and a lower LR', ['train', ...tiny, '--steps', '5', '--lr', '1e9', '--out', join(root, 'lr')], 1, /the loss became NaN at step \d+; lower --lr/],
  ['train --out naming a file', ['train', ...tiny, '--steps', '1', '--out', aFile], 1, /--out .*a-file is a file, not a folder/],
  ['train --threads 2000', ['train', ...tiny, '--steps', '1', '--threads', '2000', '--out', join(root, 't')], 2, /--threads must be between 1 and 1024, got '2000'/],
  ['train --seed -1', ['train', ...tiny, '--steps', '1', '--seed', '-1', '--out', join(root, 't')], 2, /--seed must be at least 0/],
  ['train --backend meta', ['train', ...tiny, '--steps', '1', '--backend', 'meta', '--out', join(root, 'meta')], 1, /--backend meta computes shapes and bytes, not values: it cannot train/],
  ['train --dry-run-rank without --backend meta', ['train', ...tiny, '--dry-run-rank', '0', '--pp', '2'], 1, /--dry-run-rank runs the program on --backend meta .*; add --backend meta/],
  ['train --dry-run-rank outside the layout', ['train', ...tiny, '--backend', 'meta', '--dry-run-rank', '4', '--pp', '2'], 1, /--dry-run-rank 4 is outside the layout's ranks 0\.\.1/],
  ['train --dry-run-rank of a layout not executable yet', ['train', ...tiny, '--backend', 'meta', '--dry-run-rank', '0', '--pp', '2', '--dp', '2', '--zero', '2'], 1, /--pp 2 with --zero 2: ZeRO-2\/3 under pipeline parallelism are not implemented .*; use --zero 1 or 0/],
  ['train --dry-run-rank with --ep of a dense model', ['train', ...tiny, '--backend', 'meta', '--dry-run-rank', '0', '--ep', '2'], 1, /--ep 2: model 'tiny' has no MoE layers; use --ep 1/],
  ['train --json without --dry-run-rank', ['train', ...tiny, '--json', '--out', join(root, 'j')], 2, /--json goes with --dry-run-rank/],
  ['generate --seed -1', ['generate', '--checkpoint', run, '--seed', '-1'], 2, /--seed must be at least 0, got '-1'/],
  ['generate --seed 1e20', ['generate', '--checkpoint', run, '--seed', '1e20'], 2, /--seed 1e20 is too large/],
  ['generate --top-p 2', ['generate', '--checkpoint', run, '--top-p', '2'], 2, /--top-p must be between 0 and 1/],
  ['prepare --vocab 10', ['prepare', '--builtin', '--vocab', '10', '--out', join(root, 'p')], 2, /--vocab must be at least 257, got '10'/],
  ['prepare --vocab 256', ['prepare', '--builtin', '--vocab', '256', '--out', join(root, 'p')], 2, /--vocab must be at least 257, got '256'/],
  ['tokenizer train --vocab 10', ['tokenizer', 'train', '--builtin', '--vocab', '10', '--out', join(root, 't.json')], 2, /--vocab must be at least 257/],
  ['prepare --out naming a file', ['prepare', '--builtin', '--out', aFile], 1, /--out .*a-file is a file, not a folder/],
  ['bench gemm of 100000^3', ['bench', 'gemm', '--m', '100000', '--n', '100000', '--k', '100000'], 2, /needs 111\.8 GiB for A, B and C; this machine has .* use smaller sizes/],
  ['bench gemm --threads 0', ['bench', 'gemm', '--threads', '0'], 2, /--threads must be between 1 and 1024, got '0'/],
  ['bench kernels --threads 0', ['bench', 'kernels', '--threads', '0'], 2, /--threads must be between 1 and 1024, got '0'/],
  ['bench gemm --repeat 0', ['bench', 'gemm', '--repeat', '0', '--m', '8', '--n', '8', '--k', '8'], 2, /--repeat must be at least 1, got '0'/],
  ['selftest --filter nosuch', ['selftest', '--filter', 'nosuch'], 2, /no conformance case matches --filter 'nosuch'/],
  ['tokenizer train --out naming a folder (before any work)', ['tokenizer', 'train', '--builtin', '--vocab', '300', '--out', root], 1, /--out .* is a folder; name a file/],
  ['train --out where no folder can be made (/proc)', ['train', ...tiny, '--steps', '1', '--out', '/proc/zili-run'], 1, /cannot create the folder \/proc\/zili-run: that location does not allow new folders/],
];
for (const [name, args, code, message] of cases) test(`refused clearly: ${name}`, () => refuses(args, code, message));

test('generate --tokenizer with fewer tokens than the model is refused', () => {
  const small = join(root, 'small-tok.json');
  const t = zili(['tokenizer', 'train', '--builtin', '--vocab', '300', '--out', small]);
  assert.equal(t.status, 0, t.stderr);
  refuses(['generate', '--checkpoint', run, '--tokenizer', small], 1, /the tokenizer has 300 tokens but the model in .* has 2048; use the tokenizer the model was trained with/);
});

test('selftest --backend meta --verbose claims no tolerance it did not check', () => {
  const r = zili(['selftest', '--backend', 'meta', '--verbose']);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /of tolerance/);
  assert.match(r.stdout, /^ok {3}matmul.*shapes and dtypes only/m);
  assert.match(r.stdout, /^selftest meta: \d+ passed, 0 failed, \d+ skipped \(shapes and dtypes only/m);
});

test('--threads above the core count warns', () => {
  const over = availableParallelism() + 1;
  const r = zili(['train', ...tiny, '--steps', '1', '--threads', String(over), '--out', join(root, 'over')]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`warning: --threads ${over} is more than the ${over - 1} core\\(s\\) available`));
});

test('generate | head: stops quietly and stops generating', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, [ZILI, 'generate', '--checkpoint', run, '--prompt', 'The', '--max-tokens', '1000000', '--no-stop'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.once('data', () => child.stdout.destroy()); // the reader goes away after the first bytes, as head does
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /^ {4}at |EPIPE/m);
  assert.doesNotMatch(stderr, /tokens in/, 'it stopped instead of generating all the tokens');
});

test('prepare on one 10-million-character "word" finishes (long runs are split in pre-tokenisation)', () => {
  const word = join(root, 'word.txt');
  writeFileSync(word, 'a'.repeat(10_000_000));
  const r = zili(['prepare', word, '--vocab', '300', '--val-fraction', '0', '--out', join(root, 'word')]);
  assert.doesNotMatch(r.stderr, /^ {4}at /m);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /manifest\.json/);
});

test('prepare: a binary file is refused, Latin-1 text is read with a warning naming the fix', () => {
  const bin = join(root, 'image.txt');
  writeFileSync(bin, Uint8Array.from({ length: 20000 }, (_, i) => (i * 7919) % 256));
  refuses(['prepare', bin, '--out', join(root, 'bin')], 1, /input '.*image\.txt' is binary \(a NUL byte at offset \d+\), not text/);
  const latin1 = join(root, 'latin1.txt');
  writeFileSync(latin1, Uint8Array.from('Le caf\xe9 est tr\xe8s bon, na\xefve id\xe9e. '.repeat(400), (ch) => ch.charCodeAt(0)));
  const r = zili(['prepare', latin1, '--vocab', '300', '--out', join(root, 'latin1')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.match(/is not valid UTF-8/g)?.length, 1, `warned once:\n${r.stderr}`);
  assert.match(r.stderr, /latin1\.txt' is not valid UTF-8 \(1600 byte\(s\), the first at offset 6; .*iconv -f latin1 -t utf-8/);
});

test("the vocabulary-mismatch advice is a command that works", () => {
  const data = join(root, 'latin1', 'manifest.json'); // prepared by the test above with a small vocabulary
  const args = ['train', ...tiny, '--steps', '1', '--data', data, '--out', join(root, 'vocab-run')];
  const r = zili(args);
  assert.equal(r.status, 1, r.stderr);
  const advice = /Use a model with --vocab (\d+)/.exec(r.stderr);
  assert.ok(advice, r.stderr);
  const fixed = zili([...args, '--vocab', advice[1]!]);
  assert.equal(fixed.status, 0, fixed.stderr);
  assert.match(fixed.stderr, /model 'tiny-custom'/);
});
