// `zili selftest --backend NAME [--json] [--filter S]`: the conformance kit a chip vendor runs.
import { formatHelp, parseArgs, UsageError } from './args.js';
import { getBackend } from '../backend/registry.js';
import { runConformance, SHAPES_ONLY } from '../backend/conformance/kit.js';

const FLAGS = {
  backend: { kind: 'string', help: 'backend to test (reference, cpu, meta, ...)', default: 'cpu' },
  filter: { kind: 'string', help: 'only cases whose name contains this text' },
  json: { kind: 'bool', help: 'print a JSON summary as the last line' },
  verbose: { kind: 'bool', help: 'print every case, not only failures' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'selftest');
  if (a.help) {
    console.log(formatHelp('selftest', FLAGS));
    return 0;
  }
  const backend = await getBackend(a.backend!);
  const report = await runConformance(backend, { filter: a.filter });
  if (report.results.length === 0) throw new UsageError(`no conformance case matches --filter '${a.filter}'; run without --filter (with --verbose) to list the cases`);
  for (const r of report.results) {
    if (r.status === 'passed' && !a.verbose) continue;
    const mark = r.status === 'passed' ? 'ok  ' : r.status === 'skipped' ? 'skip' : 'FAIL';
    console.log(`${mark} ${r.name}${r.ratio !== undefined ? ` (worst ${r.ratio.toFixed(3)} of tolerance)` : ''}${r.detail ? `: ${r.detail}` : ''}`);
  }
  const shapesOnly = report.results.some((r) => r.detail === SHAPES_ONLY) ? ` (${SHAPES_ONLY})` : '';
  console.log(`selftest ${report.backend}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped${shapesOnly}`);
  if (a.json) console.log(JSON.stringify({ backend: report.backend, passed: report.passed, failed: report.failed, skipped: report.skipped }));
  return report.failed === 0 ? 0 : 1;
}
