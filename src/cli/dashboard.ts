// `zili dashboard [RUN_DIR...]`: serves a live page of one or more training runs (loss, validation
// loss, learning rate, tokens/s, MFU, memory, gradient norm, per-rank step times, checkpoints and
// restarts) on the loopback interface until Ctrl-C.
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { DashboardServer } from '../observe/dashboard-server.js';
import { chipFromSpec } from '../observe/planner-compare.js';
import { RunWatch } from '../observe/run-watch.js';

const FLAGS = {
  port: { kind: 'int', help: 'port to serve on (0: any free port)', default: 8090 },
  host: { kind: 'string', help: 'address to listen on (0.0.0.0 exposes the page to the network)', default: '127.0.0.1' },
  chip: { kind: 'string', help: "compare with the planner's estimate on this chip (catalog id or JSON chip file)" },
  chips: { kind: 'int', help: 'chips for the planner comparison (default 1)', default: 1 },
  'max-points': { kind: 'int', help: 'points per curve before downsampling', default: 4000 },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'dashboard');
  if (a.help) {
    console.log(formatHelp('dashboard', FLAGS, '[RUN_DIR...] [--port 8090]'));
    return 0;
  }
  const dirs = a._;
  if (!dirs.length) throw new UsageError('name the run folders to watch: zili dashboard RUN_DIR [RUN_DIR...] (the --out of zili train)');
  if (a['max-points']! < 100) throw new UsageError(`--max-points must be at least 100, got ${a['max-points']}`);
  if (a.chips! < 1) throw new UsageError(`--chips must be at least 1, got ${a.chips}`);
  const runs = dirs.map((d) => new RunWatch(d));
  const chip = a.chip ? { chip: chipFromSpec(a.chip), chips: a.chips! } : null;
  const server = new DashboardServer({ runs, chip, maxPoints: a['max-points'] });
  let url: string;
  try {
    url = await server.listen(a.port!, a.host!);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError(`port ${a.port} is in use; pick another with --port N (0: any free port)`);
    throw e;
  }
  console.log(`zili dashboard: ${runs.length} run(s) at ${url} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  return 0;
}
