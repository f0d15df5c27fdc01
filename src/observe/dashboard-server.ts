// `zili dashboard`: a local web page that plots runs live. One poll loop follows every run folder;
// each browser holds a server-sent-events stream that opens with a (downsampled) snapshot of each
// run and then carries the rows as they are appended. Serves the page, its script and uPlot from
// node_modules; no build step.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelConfig } from '../nn/config.js';
import type { ResolvedChip } from '../plan/hardware.js';
import { downsample } from './downsample.js';
import { MetricsColumns } from './metrics-columns.js';
import { plannerEstimate } from './planner-compare.js';
import { RunWatch } from './run-watch.js';

export interface DashboardOptions {
  runs: RunWatch[];
  /** most points per series in a snapshot (default 4000) */
  maxPoints?: number;
  /** how often run folders are polled, ms (default 500) */
  pollMs?: number;
  /** planner comparison: a resolved chip and how many */
  chip?: { chip: ResolvedChip; chips: number } | null;
}

export interface RunSnapshot {
  run: number;
  name: string;
  dir: string;
  rows: number;
  /** the file is still being read (a big file's first seconds): this is an even sample of its lines */
  partial: boolean;
  /** fraction of the file read */
  loaded: number;
  x: number[];
  series: Record<string, Array<number | null>>;
  checkpoints: number[];
  restarts: number[];
  events: unknown[];
  config: unknown;
  estimate: unknown;
}

/** bytes of metrics read between two yields to the event loop (~0.1 s of parsing) */
const CHUNK_BYTES = 16 << 20;
/** bytes read before the server answers: a small run entirely, a big one's first view is a sample */
const FIRST_BYTES = 4 << 20;
const ASSET_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src', 'observe', 'page');
const require = createRequire(import.meta.url);
const UPLOT_DIR = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
const ASSETS: Record<string, [string, string]> = {
  '/': [path.join(ASSET_DIR, 'dashboard.html'), 'text/html; charset=utf-8'],
  '/dashboard.js': [path.join(ASSET_DIR, 'dashboard.js'), 'text/javascript; charset=utf-8'],
  '/dashboard.css': [path.join(ASSET_DIR, 'dashboard.css'), 'text/css; charset=utf-8'],
  '/uPlot.iife.min.js': [path.join(UPLOT_DIR, 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
  '/uPlot.min.css': [path.join(UPLOT_DIR, 'uPlot.min.css'), 'text/css; charset=utf-8'],
};

/** An even sample of a big metrics file's lines (one after each of `count` evenly spaced offsets), for a first view in well under a second. */
export function sampleLines(file: string, size: number, count: number): MetricsColumns {
  const cols = new MetricsColumns();
  const fd = fs.openSync(file, 'r');
  const buf = new Uint8Array(64 << 10);
  try {
    for (let k = 0; k < count; k++) {
      const at = Math.floor((k * size) / count);
      const n = fs.readSync(fd, buf, 0, buf.length, at);
      const start = at === 0 ? 0 : buf.indexOf(0x0a) + 1;
      const end = buf.indexOf(0x0a, start);
      if (start <= 0 && at !== 0) continue;
      if (end < 0 || end >= n) continue;
      cols.addLines(buf, start, end);
    }
  } finally {
    fs.closeSync(fd);
  }
  return cols;
}

function seriesOf(cols: MetricsColumns, maxPoints: number, fromRow = 0): { x: number[]; series: Record<string, Array<number | null>> } {
  const names = cols.fields().filter((f) => f !== 'step');
  const d = downsample(cols.values('step'), names.map((n) => cols.values(n)), maxPoints, fromRow);
  return { x: d.x, series: Object.fromEntries(names.map((n, i) => [n, d.y[i]!])) };
}

export class DashboardServer {
  private readonly runs: RunWatch[];
  private readonly maxPoints: number;
  private readonly pollMs: number;
  private readonly chip: DashboardOptions['chip'];
  private readonly clients = new Set<http.ServerResponse>();
  private readonly server: http.Server;
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  private lastHeartbeat = Date.now();
  private readonly estimates = new Map<number, { checkpoint: string; value: unknown }>();

  constructor(opts: DashboardOptions) {
    this.runs = opts.runs;
    this.maxPoints = opts.maxPoints ?? 4000;
    this.pollMs = opts.pollMs ?? 500;
    this.chip = opts.chip ?? null;
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  /** Starts serving (port 0: any free port); resolves to the page's URL. */
  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    for (const r of this.runs) r.poll(FIRST_BYTES); // a first slice now; big files continue in the poll loop
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    this.timer = setInterval(() => void this.tick(), this.pollMs);
    const a = this.server.address() as { port: number };
    return `http://${host.includes(':') ? `[${host}]` : host}:${a.port}/`;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.clients) c.end();
    this.clients.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The snapshot of one run as a new page gets it. */
  snapshot(i: number): RunSnapshot {
    const r = this.runs[i]!;
    const partial = r.backlog() > 0;
    const cols = partial && r.size > 0 ? sampleLines(r.metricsFile, r.size, this.maxPoints) : r.data;
    return {
      run: i, name: r.name, dir: r.dir, rows: r.data.rows, partial, loaded: r.size > 0 ? r.offset / r.size : 1,
      ...seriesOf(cols, this.maxPoints),
      checkpoints: r.checkpointSteps(),
      restarts: r.restarts(),
      events: r.data.events.slice(-1000),
      config: r.config,
      estimate: this.estimate(i),
    };
  }

  private estimate(i: number): unknown {
    const r = this.runs[i]!;
    if (!this.chip || !r.config) return null;
    const cached = this.estimates.get(i);
    if (cached?.checkpoint === r.config.checkpoint) return cached.value;
    const value = plannerEstimate(r.config.modelConfig as unknown as ModelConfig, r.config.trainConfig, this.chip.chip, this.chip.chips);
    this.estimates.set(i, { checkpoint: r.config.checkpoint, value });
    return value;
  }

  private send(res: http.ServerResponse, event: string, data: unknown): void {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private broadcast(event: string, data: unknown): void {
    for (const c of this.clients) this.send(c, event, data);
  }

  private async tick(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      if (Date.now() - this.lastHeartbeat > 15_000) {
        this.lastHeartbeat = Date.now();
        for (const c of this.clients) c.write(': keep-alive\n\n'); // idle streams through proxies stay open
      }
      for (let i = 0; i < this.runs.length; i++) {
        const r = this.runs[i]!;
        const wasPartial = r.backlog() > 0;
        const p = r.poll(CHUNK_BYTES);
        // a big backlog (a long run's file) is read in slices, answering requests in between
        while (r.backlog() > 0) {
          this.broadcast('loading', { run: i, loaded: r.offset / r.size });
          await new Promise((resolve) => setImmediate(resolve));
          const q = r.poll(CHUNK_BYTES);
          if (q.reset) (p.reset = true), (p.fromRow = 0);
          p.infoChanged ||= q.infoChanged;
        }
        const added = r.data.rows - p.fromRow;
        if (p.reset || wasPartial || added > this.maxPoints) this.broadcast('snapshot', this.snapshot(i));
        else {
          if (added > 0) this.broadcast('append', { run: i, rows: r.data.rows, ...seriesOf(r.data, Infinity, p.fromRow), checkpoints: r.checkpointSteps(), restarts: r.restarts(), events: r.data.events.slice(-1000) });
          if (p.infoChanged) this.broadcast('info', { run: i, checkpoints: r.checkpointSteps(), config: r.config, estimate: this.estimate(i) });
        }
        await new Promise((resolve) => setImmediate(resolve)); // requests are answered between runs
      }
    } finally {
      this.polling = false;
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      this.send(res, 'runs', { count: this.runs.length, names: this.runs.map((r) => r.name) });
      for (let i = 0; i < this.runs.length; i++) this.send(res, 'snapshot', this.snapshot(i));
      this.clients.add(res);
      req.on('close', () => this.clients.delete(res));
      return;
    }
    const m = /^\/api\/runs\/(\d+)$/.exec(url.pathname);
    if (m && Number(m[1]) < this.runs.length) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.snapshot(Number(m[1]))));
      return;
    }
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204);
      res.end();
      return;
    }
    const asset = ASSETS[url.pathname];
    if (!asset || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`not found: ${url.pathname}\n`);
      return;
    }
    fs.readFile(asset[0], (err, body) => {
      if (err) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`cannot read ${asset[0]}: ${err.message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': asset[1], 'cache-control': 'no-cache' });
      res.end(body);
    });
  }
}
