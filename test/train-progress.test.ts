// Tests of human formatting (durations, counts, bytes) and of the progress bar in log (non-TTY) and terminal modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatCount, formatDuration, formatPercent, formatValue } from '../src/train/format.js';
import { Progress, renderBar } from '../src/train/progress.js';

test('formatDuration', () => {
  assert.equal(formatDuration(0.85), '850ms');
  assert.equal(formatDuration(4.25), '4.2s');
  assert.equal(formatDuration(42.9), '42s');
  assert.equal(formatDuration(72), '1m12s');
  assert.equal(formatDuration(3599), '59m59s');
  assert.equal(formatDuration(2 * 3600 + 180 + 59), '2h03m');
  assert.equal(formatDuration(3 * 86400 + 4 * 3600), '3d04h');
  assert.equal(formatDuration(NaN), '--');
  assert.equal(formatDuration(Infinity), '--');
});

test('formatCount, formatBytes, formatPercent, formatValue', () => {
  assert.equal(formatCount(950), '950');
  assert.equal(formatCount(1234), '1.2k');
  assert.equal(formatCount(12345), '12.3k');
  assert.equal(formatCount(123456), '123k');
  assert.equal(formatCount(1_234_567), '1.2M');
  assert.equal(formatCount(999_999), '1.0M');
  assert.equal(formatCount(3.5e9), '3.5B');
  assert.equal(formatCount(1.04e12), '1.0T');
  assert.equal(formatCount(-2500), '-2.5k');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(300 * 2 ** 20), '300.0 MiB');
  assert.equal(formatBytes(1.5 * 2 ** 30), '1.5 GiB');
  assert.equal(formatPercent(0.0412), '4.1%');
  assert.equal(formatPercent(0.5, 0), '50%');
  assert.equal(formatValue(3.41234), '3.412');
  assert.equal(formatValue(1523), '1523');
  assert.equal(formatValue(1523.7), '1524');
  assert.equal(formatValue(0.000125), '0.0001250');
  assert.equal(formatValue(3e-5), '3.000e-5');
  assert.equal(formatValue(2_500_000), '2.5M');
  assert.equal(formatValue(NaN), 'nan');
  assert.equal(formatValue('4.1%'), '4.1%');
});

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (s: string) => void writes.push(s) } };
}

test('log mode (not a TTY): a line at start, at each 25%, none twice at finish', () => {
  const { writes, stream } = sink(false);
  let t = 0;
  const p = new Progress({ total: 100, label: 'train', stream, everyPercent: 25, now: () => t });
  for (let done = 1; done <= 100; done++) {
    t = done * 100;
    p.update(done, { loss: 3.41234, 'tok/s': 1523, MFU: formatPercent(0.041) });
  }
  p.finish();
  assert.deepEqual(writes, [
    'train [....................] 1/100 loss 3.412 tok/s 1523 MFU 4.1% ETA --\n',
    'train [#####...............] 25/100 loss 3.412 tok/s 1523 MFU 4.1% ETA 7.5s\n',
    'train [##########..........] 50/100 loss 3.412 tok/s 1523 MFU 4.1% ETA 5.0s\n',
    'train [###############.....] 75/100 loss 3.412 tok/s 1523 MFU 4.1% ETA 2.5s\n',
    'train [####################] 100/100 loss 3.412 tok/s 1523 MFU 4.1% in 9.9s\n',
  ]);
});

test('log mode also prints every few seconds when progress is slow; finish prints undrawn state', () => {
  const { writes, stream } = sink(false);
  let t = 0;
  const p = new Progress({ total: 100, stream, everyMs: 10_000, now: () => t });
  for (let done = 1; done <= 4; done++) {
    t = done * 6000;
    p.update(done, { loss: 5 - done });
  }
  p.finish();
  assert.deepEqual(
    writes.map((w) => w.split(' ')[1]),
    ['1/100', '3/100', '4/100'], // 4 is drawn by finish()
  );
  assert.match(writes[1]!, /loss 2 ETA 9m42s\n$/); // 2 steps in 12 s, 97 left
  p.update(6);
  assert.equal(writes.length, 3); // finished: no more output
});

test('terminal mode: redrawn in place with \\r, throttled to ~10 Hz, log() keeps the bar, finish ends the line', () => {
  const { writes, stream } = sink(true);
  let t = 0;
  const p = new Progress({ total: 10, stream, width: 10, now: () => t });
  p.update(1, { loss: 2.5 });
  t = 50;
  p.update(2, { loss: 2.4 }); // throttled
  t = 120;
  p.update(3, { loss: 2.3 });
  assert.deepEqual(writes, ['\r[#.........] 1/10 loss 2.500 ETA --\x1b[K', '\r[###.......] 3/10 loss 2.300 ETA 420ms\x1b[K']);
  p.log('validation loss 2.1');
  assert.equal(writes[2], '\r\x1b[Kvalidation loss 2.1\n');
  assert.equal(writes[3], '[###.......] 3/10 loss 2.300 ETA 420ms');
  t = 130;
  p.update(10, { loss: 1.95 }); // the last step always draws
  p.finish();
  assert.equal(writes[4], '\r[##########] 10/10 loss 1.950 in 130ms\x1b[K');
  assert.equal(writes.at(-1), '\n');
  assert.equal(renderBar(150, 300, 10), '[#####.....]');
});
