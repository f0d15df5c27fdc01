// How fast `zili dashboard` shows a long run: a metrics.jsonl of N lines (default a million, ~220 MB,
// the fields zili train writes), timed from opening the run folder to the first snapshot a page gets
// (an even sample of the lines while the file is read), then to the complete read and its
// full-resolution (min/max-downsampled) snapshot. Server time only: no browser.
// Run: node dist/bench/dashboard-load.js [LINES]
import { mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DashboardServer } from '../src/observe/dashboard-server.js';
import { RunWatch } from '../src/observe/run-watch.js';

const lines = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'zili-bench-dash-'));
try {
  const parts: string[] = [];
  let text = '';
  for (let i = 1; i <= lines; i++) {
    const loss = 3 + 5 * Math.exp(-i / 1e5) + 0.1 * Math.sin(i);
    parts.push(JSON.stringify({ step: i, loss, lr: 3e-4 * Math.min(1, i / 2000), tokensPerSec: 1e5 + (i % 97), gradNorm: 0.5 + (i % 13) / 10, mfu: 0.41 + (i % 7) / 1000, elapsedS: i * 2.1, tokens: i * 2 ** 20, rssBytes: 2 ** 34 + i, ...(i % 1000 === 0 ? { valLoss: loss + 0.05 } : {}) }));
    if (parts.length === 100_000) (text += parts.join('\n') + '\n'), (parts.length = 0);
  }
  text += parts.length ? parts.join('\n') + '\n' : '';
  writeFileSync(join(dir, 'metrics.jsonl'), text);
  text = '';
  const bytes = statSync(join(dir, 'metrics.jsonl')).size;
  console.log(`${lines.toLocaleString('en-US')} lines, ${(bytes / 2 ** 20).toFixed(0)} MiB; ${cpus()[0]?.model}, load average ${loadavg()[0]!.toFixed(1)}`);

  for (let rep = 0; rep < 3; rep++) {
    const t0 = performance.now();
    const run = new RunWatch(dir);
    const server = new DashboardServer({ runs: [run] });
    await server.listen(0);
    const first = server.snapshot(0);
    const t1 = performance.now();
    while (run.backlog() > 0) run.poll(16 << 20);
    const t2 = performance.now();
    const full = server.snapshot(0);
    const t3 = performance.now();
    await server.close();
    console.log(
      `first view ${((t1 - t0) / 1000).toFixed(3)} s (${first.x.length} points, sampled: ${first.partial}); ` +
        `whole file read ${((t2 - t0) / 1000).toFixed(2)} s; full-resolution snapshot ${(t3 - t2).toFixed(0)} ms (${full.x.length} points of ${full.rows.toLocaleString('en-US')} rows)`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
