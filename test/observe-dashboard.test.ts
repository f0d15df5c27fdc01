// zili dashboard: the run follower (torn last line, a file replaced by --resume, restarts, a missing
// folder), spike-keeping downsampling, and the page itself in headless Chromium (Debian's chromium
// driven by playwright-core) while a real training run proceeds: its curves grow (two screenshots
// differ, the plotted point count rises), per-rank step times get their chart. The screenshots are
// kept in test-artifacts/dashboard/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { DashboardServer, sampleLines } from '../src/observe/dashboard-server.js';
import { downsample } from '../src/observe/downsample.js';
import { chipFromSpec } from '../src/observe/planner-compare.js';
import { RunFolderError, RunWatch } from '../src/observe/run-watch.js';

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const ZILI = join(ROOT, 'bin', 'zili');
const ARTIFACTS = join(ROOT, 'test-artifacts', 'dashboard');
const tmp = mkdtempSync(join(tmpdir(), 'zili-dash-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const line = (step: number, extra: Record<string, unknown> = {}) => JSON.stringify({ step, loss: 5 - step / 100, lr: 1e-3, tokensPerSec: 1000, elapsedS: step, ...extra }) + '\n';

test('run follower: complete lines only, a replaced file is read again, restarts found, a missing folder is a clear error', () => {
  const dir = join(tmp, 'follow');
  mkdirSync(dir);
  const file = join(dir, 'metrics.jsonl');
  writeFileSync(file, line(1) + line(2) + line(3) + '{"step":4,"lo');
  const w = new RunWatch(dir);
  assert.deepEqual(w.poll(), { reset: false, fromRow: 0, infoChanged: false });
  assert.deepEqual([...w.data.values('step')], [1, 2, 3], 'the torn last line waits for its end');
  appendFileSync(file, 'ss":1,"lr":1,"tokensPerSec":1,"elapsedS":4}\n' + JSON.stringify({ event: 'skip', step: 5, count: 2 }) + '\nnot json\n');
  assert.equal(w.poll().fromRow, 3);
  assert.deepEqual([...w.data.values('step')], [1, 2, 3, 4]);
  assert.deepEqual(w.data.events, [{ event: 'skip', step: 5, count: 2 }]);
  assert.equal(w.data.badLines, 1);

  // --resume rewrites the file (steps after the checkpoint dropped), then appends with a fresh clock
  writeFileSync(file + '.tmp', line(1) + line(2) + line(3, { elapsedS: 0.5 }));
  renameSync(file + '.tmp', file);
  const p = w.poll();
  assert.equal(p.reset, true);
  assert.deepEqual([...w.data.values('step')], [1, 2, 3]);
  assert.deepEqual(w.restarts(), [3]);

  assert.throws(() => new RunWatch(join(tmp, 'nope')), (e: Error) => e instanceof RunFolderError && /run folder .*nope does not exist/.test(e.message));
  const r = spawnSync(process.execPath, [ZILI, 'dashboard', join(tmp, 'nope'), '--port', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^zili dashboard: run folder .*nope does not exist/);
});

test('downsampling keeps a one-step spike; a big file gets an even sample first', () => {
  const n = 10_000;
  const x = Float64Array.from({ length: n }, (_, i) => i + 1);
  const y = Float64Array.from({ length: n }, (_, i) => (i === 7777 ? 50 : 3));
  const d = downsample(x, [y], 200);
  assert.equal(d.x.length, 200);
  assert.equal(Math.max(...(d.y[0] as number[])), 50);
  assert.equal(d.x[0], 1);
  assert.equal(d.x[199], n);

  const file = join(tmp, 'big.jsonl');
  writeFileSync(file, Array.from({ length: n }, (_, i) => line(i + 1)).join(''));
  const s = sampleLines(file, readFileSync(file).length, 100);
  const steps = [...s.values('step')];
  assert.ok(steps.length >= 95 && steps.length <= 100, String(steps.length));
  assert.ok(steps[0] === 1 && steps[steps.length - 1]! > n * 0.95, 'spread over the whole file');
});

test('server: a big file is first a sample, then all of it; the event stream opens with a snapshot per run', { timeout: 60_000 }, async () => {
  const dir = join(tmp, 'big-run');
  mkdirSync(dir);
  const rows = 60_000; // ~6 MiB: more than the server reads before answering
  writeFileSync(join(dir, 'metrics.jsonl'), Array.from({ length: rows }, (_, i) => line(i + 1, i === 33_333 ? { loss: 99 } : {})).join(''));
  const server = new DashboardServer({ runs: [new RunWatch(dir)], pollMs: 50, maxPoints: 1000 });
  try {
    const url = await server.listen(0);
    const first = server.snapshot(0);
    assert.equal(first.partial, true);
    assert.ok(first.x.length > 900 && first.x.length <= 1000, String(first.x.length));
    const res = await fetch(new URL('/events', url));
    const reader = res.body!.getReader();
    let text = '';
    while (!/event: snapshot\ndata: \{"run":0[^\n]*"partial":false/.test(text)) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream ended');
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    assert.match(text, /^event: runs\ndata: \{"count":1,"names":\["big-run"\]\}/);
    const full = server.snapshot(0);
    assert.equal(full.rows, rows);
    assert.equal(full.x.length, 1000);
    assert.equal(Math.max(...(full.series['loss'] as number[])), 99, 'the one-step spike survives downsampling');
    const page = await fetch(url);
    assert.match(await page.text(), /<script src="\/uPlot.iife.min.js">/);
    assert.equal((await fetch(new URL('/uPlot.iife.min.js', url))).status, 200);
    assert.equal((await fetch(new URL('/../package.json', url))).status, 404);
  } finally {
    await server.close();
  }
});

test('the page in headless Chromium: curves of a run in progress grow; per-rank step times are plotted', { timeout: 180_000 }, async () => {
  assert.ok(existsSync('/usr/bin/chromium'), 'Debian chromium is needed (scripts/setup installs it)');
  mkdirSync(ARTIFACTS, { recursive: true });
  const live = join(tmp, 'live');
  const train = spawn(process.execPath, [ZILI, 'train', '--preset', 'tiny', '--seq', '16', '--global-batch', '2', '--steps', '100000', '--save-every', '15', '--eval-every', '10', '--eval-batches', '1', '--out', live], { stdio: 'ignore' });
  // a 4-rank run whose rank 2 straggles (written here: distributed training writes the same lines)
  const ranks = join(tmp, 'ranks');
  mkdirSync(ranks);
  let step = 0;
  const writeRanks = () => appendFileSync(join(ranks, 'metrics.jsonl'), line(++step, { rankStepS: [0.1, 0.1, 0.1 + (step % 10 === 0 ? 0.3 : 0.05), 0.1] }));
  for (let i = 0; i < 20; i++) writeRanks();
  appendFileSync(join(ranks, 'metrics.jsonl'), JSON.stringify({ event: 'skip', step: 12, count: 2 }) + '\n' + JSON.stringify({ event: 'restart', step: 15 }) + '\n');
  const ticker = setInterval(writeRanks, 200);
  const udd = mkdtempSync(join(tmp, 'chromium-'));
  let server: DashboardServer | null = null;
  let ctx: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | null = null;
  try {
    for (let t = 0; !(existsSync(join(live, 'metrics.jsonl')) && readFileSync(join(live, 'metrics.jsonl'), 'utf8').split('\n').length > 3); t++) {
      assert.ok(t < 600, 'the training run did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    server = new DashboardServer({ runs: [new RunWatch(live), new RunWatch(ranks)], pollMs: 200, chip: { chip: chipFromSpec('h100-sxm'), chips: 1 } });
    const url = await server.listen(0);
    ctx = await chromium.launchPersistentContext(udd, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1400, height: 1000 },
    });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    const points = async () => Number(await page.evaluate(() => document.body.dataset['points']));
    await page.waitForFunction(() => Number(document.body.dataset['points']) > 0, null, { timeout: 20_000 });
    const p1 = await points();
    const shot1 = await page.screenshot({ path: join(ARTIFACTS, 'dashboard-1.png'), fullPage: true });
    await page.waitForFunction((p) => Number(document.body.dataset['points']) > p + 20, p1, { timeout: 20_000 });
    await page.waitForTimeout(1000);
    const p2 = await points();
    const shot2 = await page.screenshot({ path: join(ARTIFACTS, 'dashboard-2.png'), fullPage: true });
    assert.ok(p2 > p1, `plotted points rise (${p1} -> ${p2})`);
    assert.notDeepEqual(new Uint8Array(shot1), new Uint8Array(shot2), 'the two screenshots differ');
    assert.equal(await page.locator('#charts .chart').count(), 6, 'loss, lr, tokens/s, MFU, memory, gradient norm');
    assert.equal(await page.locator('#rank-charts .chart').count(), 1, 'per-rank step times of the 4-rank run');
    assert.match(await page.locator('#rank-charts').innerText(), /rank 3/);
    // the configuration (from the first checkpoint) and the planner's figures beside the measured ones
    await page.waitForFunction(() => /planner: 1 × h100-sxm/.test(document.querySelector('.run')?.textContent ?? ''), null, { timeout: 20_000 });
    const card = await page.locator('.run').first().innerText();
    assert.match(card, /tiny · 2×16 tokens\/step/);
    assert.match(card, /tokens\/s\s+[\d.]+\s+[\d.e+]+/);
    assert.match(card, /MFU \(%\)\s+[\d.]+\s+[\d.]+/);
    const ranksCard = await page.locator('.run').nth(1).innerText();
    assert.match(ranksCard, /restarts\s+15\b/);
    assert.match(ranksCard, /slowest rank\s+rank 2: 0\.\d+ s, [\d.]+× the median/);
    assert.match(ranksCard, /events\s+skip at 12 \(2\)/);
    assert.deepEqual(errors, []);
  } finally {
    clearInterval(ticker);
    await ctx?.close();
    await server?.close();
    train.kill('SIGKILL');
  }
});
