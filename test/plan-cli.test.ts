// `zili plan` end to end: ranked table, HTML report with inline SVG, estimate JSON (planner-io), and
// clear messages for impossible requests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const zili = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'zili'), ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'zili-plan-'));

test('plan --model moe-1t --chip ascend-910b --chips 8192: ranked table, breakdown, run answers, HTML', () => {
  const html = join(dir, 'report.html');
  const r = zili('plan', '--model', 'moe-1t', '--chip', 'ascend-910b', '--chips', '8192', '--tokens', '10T', '--html', html, '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /#\s+layout\s+mbs\s+zero\s+recompute\s+GiB\/chip\s+step s\s+MFU\s+tokens\/s\s+days/);
  assert.match(r.stdout, /memory per chip [\d.]+ of 55\.0 GiB: weights/);
  assert.match(r.stdout, /interruptions per week/);
  assert.match(r.stdout, /checkpoint every/);
  assert.match(r.stdout, /Ascend papers do not say which peak/);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(last.chips, 8192);
  assert.ok(last.layouts[0].fits && last.layouts[0].days > 0);
  const page = readFileSync(html, 'utf8');
  assert.equal((page.match(/<svg /g) ?? []).length, 3);
  assert.match(page, /Memory per chip/);
  assert.match(page, /Step time breakdown/);
  assert.ok(!/<script|https?:\/\/(?!www\.w3\.org)/.test(page), 'self-contained');
});

test('plan estimate --input FILE --json: last line is the planner-io output', () => {
  const input = join(dir, 'in.json');
  writeFileSync(input, JSON.stringify({
    model: { layers: 128, hidden: 25600, heads: 160, kvHeads: 160, ffnHidden: 102400, ffnKind: 'gelu', vocab: 51200, seqLen: 2048, tiedEmbeddings: true, moe: null },
    hardware: { name: 'A100-SXM4-80GB', peakTflops: 312, memoryGiB: 80, memoryBandwidthTBs: 2.04, chipsPerNode: 8, intraNodeGBs: 300, interNodeGBs: 25 },
    chips: 3072,
    layout: { tp: 8, pp: 64, dp: 6, cp: 1, ep: 1, vpp: 1, sequenceParallel: false, zero: 1, microBatch: 1, globalBatch: 3072, recompute: 'full' },
    precision: 'bf16',
  }));
  const r = zili('plan', 'estimate', '--input', input, '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  for (const k of ['stepTimeS', 'tokensPerS', 'mfu', 'hfu', 'tflopsPerChip', 'bubbleFraction', 'fits', 'memoryGiB']) assert.ok(k in out, k);
  for (const k of ['total', 'weights', 'grads', 'optimizer', 'activations', 'other']) assert.ok(k in out.memoryGiB, k);
  assert.ok(Math.abs(out.stepTimeS - 102.6) / 102.6 < 0.1, `step ${out.stepTimeS}`);
  assert.ok(out.hfu > out.mfu);
  assert.equal(out.fits, true);

  writeFileSync(input, JSON.stringify({ ...JSON.parse(readFileSync(input, 'utf8')), chips: 3000 }));
  const bad = zili('plan', 'estimate', '--input', input, '--json');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /does not equal the 3000 chips.*use 2560 or 3072 chips/);
});

test('impossible requests say what would make them possible', () => {
  const big = zili('plan', '--model', 'dense-1t', '--chip', 'ascend-910b', '--chips', '64');
  assert.equal(big.status, 1);
  assert.match(big.stderr, /does not fit on 64 x ascend-910b.*It becomes possible with \d+ chips/);
  const chip = zili('plan', '--model', 'moe-1t', '--chip', 'ascend-9000', '--chips', '8192');
  assert.equal(chip.status, 1);
  assert.match(chip.stderr, /unknown chip 'ascend-9000'.*Known chips: .*ascend-910b/);
  const div = zili('plan', '--model', 'moe-1t', '--chip', 'ascend-910b', '--chips', '8000', '--tp', '8', '--pp', '16');
  assert.equal(div.status, 1);
  assert.match(div.stderr, /does not divide 8000 chips; use 7936 or 8064 chips/);
});

test('plan refuses nonsense numbers at the flags, the same way as in a --cluster file, without stack traces', () => {
  const base = ['plan', '--model', 'small', '--chip', 'h100-sxm', '--chips', '8'];
  const cases: [string[], number, RegExp][] = [
    [['--top', '0'], 2, /--top must be at least 1, got 0/],
    [['--global-batch', '0'], 2, /--global-batch must be at least 1/],
    [['--seq', '0'], 2, /--seq must be at least 1/],
    [['--chips', '-8'], 2, /--chips must be at least 1, got -8/],
    [['--failures-per-chip-year', '-1'], 1, /--failures-per-chip-year must be a number >= 0/],
    [['--storage-gbs', '0'], 1, /--storage-gbs must be a number > 0/],
    [['--power-overhead', '-1'], 1, /--power-overhead must be a number >= 1/],
    [['--restart-min', '-10'], 1, /--restart-min must be a number >= 0/],
    [['--html', dir], 2, /--html .* is a folder; give a file name/],
    [['--html', join(dir, 'no-such-folder', 'r.html')], 2, /the folder '.*no-such-folder' does not exist/],
  ];
  for (const [extra, status, msg] of cases) {
    const r = zili(...base, ...extra);
    assert.equal(r.status, status, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  }
  const cl = join(dir, 'cluster.json');
  writeFileSync(cl, JSON.stringify({ chip: 'h100-sxm', chips: 8, storageWriteGBs: 0 }));
  const r = zili('plan', '--model', 'small', '--cluster', cl);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /storageWriteGBs must be a number > 0/);
});

test('a best layout that never finishes (goodput 0%) is printed with a warning', () => {
  const r = zili('plan', '--model', 'small', '--chip', 'h100-sxm', '--chips', '8', '--failures-per-chip-year', '20000', '--top', '1');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /WARNING: this run never finishes \(goodput 0%\).*--restart-min/);
  assert.match(r.stdout, /never finishing wall-clock/);
});

test('plan estimate refuses "10T" strings, negative tokens and the string "false" for a flag', () => {
  const input = join(dir, 'bad.json');
  const good = JSON.parse(readFileSync(join(root, 'docs', 'examples', 'plan-estimate.json'), 'utf8'));
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...good, tokens: '10T' }, /tokens must be a number > 0.*not a string: write 10000000000000/],
    [{ ...good, tokens: -5 }, /tokens must be a number > 0/],
    [{ ...good, layout: { ...good.layout, sequenceParallel: 'false' } }, /layout.sequenceParallel must be true or false \(a JSON boolean/],
    [{ ...good, model: { ...good.model, tiedEmbeddings: 'false' } }, /tiedEmbeddings must be true or false/],
    [{ ...good, layout: { ...good.layout, tp: '8' } }, /layout.tp must be an integer >= 1 \(a JSON number, not a string\)/],
    [{ ...good, stack: 'nemo' }, /stack must be one of "megatron", "deepspeed-legacy", "overlapped"/],
    [{ ...good, hardware: 'h100-sxm', precision: 'f32' }, /precision "f32" on catalog chip 'h100-sxm'.*hardware "local"/],
  ];
  for (const [obj, msg] of cases) {
    writeFileSync(input, JSON.stringify(obj));
    const r = zili('plan', 'estimate', '--input', input);
    assert.equal(r.status, 1, `${JSON.stringify(obj).slice(0, 80)}: ${r.stdout}`);
    assert.match(r.stderr, msg);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  }
});

test('the example input of docs/planner-io.md runs as written and reports the honest band', () => {
  const r = zili('plan', 'estimate', '--input', join(root, 'docs', 'examples', 'plan-estimate.json'), '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(out.mfuLow < out.mfu && out.mfu < out.mfuHigh);
  assert.ok(Math.abs(out.stepTimeS - 102.6) / 102.6 < 0.1, `step ${out.stepTimeS}`);
});
