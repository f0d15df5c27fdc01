// `zili plan`: ranks the parallel layouts of a model on N chips of a kind and reports memory, time,
// MFU, days, energy and reliability; `zili plan estimate --input FILE.json` predicts one given layout.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { formatHelp, parseArgs, UsageError } from './args.js';
import { clusterFromJson, clusterParams, type ClusterParams } from '../plan/cluster.js';
import { estimate, toPlannerIo } from '../plan/estimate.js';
import {
  ASCEND_PEAK_CAVEAT, CATALOG, type Chip, chipFromJson, catalogChip, isAscend, overrideChip, parseOverrides, PlanError, resolveChip,
} from '../plan/hardware.js';
import { estimateInputFromJson } from '../plan/io.js';
import { describeLayout, type Layout, type Recompute } from '../plan/layout.js';
import { loadModel } from '../plan/model.js';
import { localChip, measureLocal } from '../plan/local-chip.js';
import { loadLocalRanks, measureLocalRanks, measureRanksCommand, saveLocalRanks } from '../plan/local-ranks.js';
import { openWorld } from '../dist/world.js';
import { loadNative } from '../backend/cpu/native.js';
import { cpuIdentity, cpuKey } from '../backend/cpu/cpu-info.js';
import { cacheDir } from '../util/paths.js';
import { loadavg } from 'node:os';
import { type Stack, STACKS } from '../plan/stack.js';
import { chipLine, memoryLine, runLines, textReport, timeLine } from '../plan/report-text.js';
import { htmlReport } from '../plan/report-html.js';
import { impossibleError, searchLayouts } from '../plan/search.js';

const SPECS = {
  model: { kind: 'string', help: 'preset name (dense-1t, moe-1t, 70b, ...) or a JSON model file (planner-io schema)' },
  chip: { kind: 'string', help: 'catalog id (ascend-910b, h100-sxm, ...) or a JSON chip file' },
  'chip-set': { kind: 'string', help: 'override chip fields: peakTflops=300,memoryGiB=96,...' },
  cluster: { kind: 'string', help: 'JSON cluster file {chip, chips, failuresPerChipYear, storageWriteGBs, restartMinutes, powerOverhead}' },
  chips: { kind: 'int', help: 'number of chips' },
  tokens: { kind: 'size', help: 'tokens to train (default 10T)' },
  'global-batch': { kind: 'int', help: 'sequences per step (default: about 16M tokens, a power of two)' },
  seq: { kind: 'int', help: 'override the training sequence length' },
  attention: { kind: 'string', help: 'flash | standard (standard materialises the s x s scores)', default: 'flash' },
  stack: { kind: 'string', help: 'software stack: megatron | deepspeed-legacy | overlapped (docs/planner.md)', default: 'megatron' },
  tp: { kind: 'int', help: 'pin tensor parallelism' },
  pp: { kind: 'int', help: 'pin pipeline parallelism' },
  dp: { kind: 'int', help: 'pin data parallelism' },
  cp: { kind: 'int', help: 'pin context parallelism' },
  ep: { kind: 'int', help: 'pin expert parallelism (folded inside dp*cp, Megatron-Core convention)' },
  vpp: { kind: 'int', help: 'pin virtual pipeline stages' },
  'micro-batch': { kind: 'int', help: 'pin the micro-batch size' },
  zero: { kind: 'int', help: 'pin the ZeRO stage (0-3)' },
  recompute: { kind: 'string', help: 'pin recomputation: none | selective | full' },
  'failures-per-chip-year': { kind: 'number', help: 'job interruptions per chip per year (default 0.17, Llama 3)' },
  'storage-gbs': { kind: 'number', help: 'checkpoint storage write bandwidth, GB/s (default 100)' },
  'restart-min': { kind: 'number', help: 'minutes to restart after an interruption (default 15)' },
  'power-overhead': { kind: 'number', help: 'facility power / chip power for energy (default 1: chips only)' },
  top: { kind: 'int', help: 'layouts to list', default: 8 },
  html: { kind: 'string', help: 'write a self-contained HTML report with charts to this file' },
  json: { kind: 'bool', help: 'print the best layouts as JSON on the last line' },
  'list-chips': { kind: 'bool', help: 'list the hardware catalog and exit' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

const ESTIMATE_SPECS = {
  input: { kind: 'string', help: 'JSON file: {model, hardware, chips, layout, precision, stack} (docs/planner-io.md)' },
  tokens: { kind: 'size', help: 'tokens to train, for days (default 10T)' },
  json: { kind: 'bool', help: 'print the prediction as JSON on the last line' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new PlanError(`cannot read ${what} file '${path}'`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PlanError(`${what} file '${path}' is not valid JSON: ${(e as Error).message}`);
  }
}

function listChips(): string {
  const rows = CATALOG.map((c) => `${c.id.padEnd(22)} ${String(c.peakTflops ?? '?').padStart(7)} TF  ${String(c.memoryGiB ?? '?').padStart(4)} GiB  ${c.confidence.padEnd(8)} ${c.source}`);
  return ['id                      bf16 TF/s   memory  confidence  source', ...rows].join('\n');
}

async function runEstimate(argv: string[]): Promise<number> {
  const a = parseArgs(argv, ESTIMATE_SPECS, 'plan estimate');
  if (a.help) {
    console.log(formatHelp('plan estimate', ESTIMATE_SPECS, '--input FILE.json [--json]'));
    return 0;
  }
  if (!a.input) throw new UsageError('plan estimate needs --input FILE.json (schema and example: docs/planner-io.md, docs/examples/plan-estimate.json)');
  if (a.tokens !== undefined && !(a.tokens > 0)) throw new UsageError(`--tokens must be positive (e.g. 10T), got ${a.tokens}`);
  const inp = estimateInputFromJson(readJson(a.input, 'input'), a.input, { local: localProvider });
  const e = estimate({ ...inp, tokens: a.tokens ?? inp.tokens ?? 10e12 });
  console.log(`${describeLayout(e.layout)} on ${e.chips} x ${inp.chip.id} (${e.layout.attention} attention, ${e.layout.recompute} recompute, ${inp.precision}, stack ${inp.stack})`);
  console.log(chipLine(inp.chip));
  if (isAscend(inp.chip)) console.log(`note: ${ASCEND_PEAK_CAVEAT}`);
  console.log(memoryLine(e) + (e.fits ? '' : '  -- DOES NOT FIT'));
  console.log(timeLine(e));
  for (const s of runLines(e, inp.chip)) console.log(s);
  if (a.json) console.log(JSON.stringify(toPlannerIo(e)));
  return 0;
}

/** `hardware: "local"`: this machine measured now; beyond one rank, plus the stored measurement of that many ranks. */
function localProvider(precision: string, ranks: number) {
  const native = loadNative();
  const stored = ranks > 1 ? loadLocalRanks(cacheDir(), cpuKey(cpuIdentity()), ranks, native.threads()) : undefined;
  return localChip(precision, measureLocal(native), stored);
}

const MEASURE_SPECS = {
  iterations: { kind: 'int', help: 'timed all-reduces per message size', default: 10 },
  help: { kind: 'bool', help: 'show this help' },
} as const;

/** `zili plan measure-ranks` (under mpirun): the communicator and the ranks' core sharing, stored for `hardware: "local"`. */
async function runMeasureRanks(argv: string[]): Promise<number> {
  const a = parseArgs(argv, MEASURE_SPECS, 'plan measure-ranks');
  if (a.help) {
    console.log(formatHelp('plan measure-ranks', MEASURE_SPECS, `(under mpirun) e.g. ${measureRanksCommand(2)}`));
    return 0;
  }
  const world = await openWorld();
  if (world.size < 2) {
    await world.finalize();
    throw new UsageError(`plan measure-ranks measures several ranks: start it under mpirun, e.g. ${measureRanksCommand(2)}`);
  }
  const native = loadNative();
  const m = await measureLocalRanks(world, native, cpuKey(cpuIdentity()), loadavg()[0]!, Math.max(1, a.iterations!));
  if (world.rank === 0) {
    for (const p of m.allReduce) console.log(`all-reduce f32 ${(p.bytes / 1024).toFixed(0).padStart(6)} KiB on ${m.ranks} ranks: median ${(p.seconds * 1e3).toFixed(3)} ms`);
    console.log(`links: ${m.linkGBs.toFixed(2)} GB/s, latency ${m.latencyUs.toFixed(1)} us per ring step (fit through the smallest and largest message)`);
    console.log(`core sharing (${m.threads} thread(s) per rank, all ranks computing): GEMM ${m.gemmShares.map((g) => `${g.shape.join('x')} ${g.share.toFixed(2)}`).join(', ')} -> ${m.gemmShare.toFixed(2)}; bandwidth ${m.bandwidthShare.toFixed(2)}`);
    saveLocalRanks(cacheDir(), m);
    console.log(`stored for hardware "local" on ${m.ranks} ranks (load ${m.load.toFixed(1)})`);
  }
  await world.finalize();
  return 0;
}

function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Counts and sizes must be positive: checked here, at the flags, so no nonsense reaches the model. */
function checkFlags(a: Record<string, unknown>): void {
  for (const k of ['chips', 'top', 'global-batch', 'seq', 'tp', 'pp', 'dp', 'cp', 'ep', 'vpp', 'micro-batch']) {
    const v = a[k];
    if (v !== undefined && (v as number) < 1) throw new UsageError(`--${k} must be at least 1, got ${v}`);
  }
  if (a['tokens'] !== undefined && !((a['tokens'] as number) > 0)) throw new UsageError(`--tokens must be positive (e.g. 10T), got ${a['tokens']}`);
}

/** An output file path must name a file in an existing folder: said before minutes of work, not after. */
function checkOutputFile(path: string, flag: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    const dir = dirname(path);
    if (!existsSync(dir)) throw new UsageError(`${flag} ${path}: the folder '${dir}' does not exist; create it or write the report elsewhere`);
    return;
  }
  if (st.isDirectory()) throw new UsageError(`${flag} ${path} is a folder; give a file name, e.g. ${join(path, 'plan.html')}`);
}

function defaultGlobalBatch(seqLen: number): number {
  return 2 ** Math.round(Math.log2(16 * 2 ** 20 / seqLen));
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === 'estimate') return runEstimate(argv.slice(1));
  if (argv[0] === 'measure-ranks') return runMeasureRanks(argv.slice(1));
  const a = parseArgs(argv, SPECS, 'plan');
  if (a.help) {
    console.log(formatHelp('plan', SPECS, '--model NAME|FILE --chip ID|FILE --chips N [--tokens 10T] [--html FILE]\n       zili plan estimate --input FILE.json [--json]\n       mpirun -np N bin/zili plan measure-ranks'));
    return 0;
  }
  if (a['list-chips']) {
    console.log(listChips());
    return 0;
  }
  if (a._.length) throw new UsageError(`unexpected argument '${a._[0]}' (subcommands: estimate, measure-ranks)`);

  // chip and cluster
  let chip: Chip | undefined;
  let chips = a.chips;
  let cluster: ClusterParams = clusterParams();
  if (a.cluster) {
    const cl = clusterFromJson(readJson(a.cluster, 'cluster'), a.cluster);
    chip = cl.chip;
    chips ??= cl.chips;
    cluster = cl;
  }
  if (a.chip) chip = a.chip.endsWith('.json') ? chipFromJson(readJson(a.chip, 'chip'), a.chip) : catalogChip(a.chip);
  if (!chip) throw new UsageError('plan needs --chip ID|FILE (see --list-chips) or --cluster FILE');
  if (a['chip-set']) chip = overrideChip(chip, parseOverrides(a['chip-set']), '--chip-set');
  const rc = resolveChip(chip);
  if (!a.model) throw new UsageError('plan needs --model NAME|FILE');
  if (chips === undefined) throw new UsageError('plan needs --chips N');
  checkFlags(a);
  // the flags go through the same checks as a --cluster file's fields
  cluster = clusterParams({
    ...cluster,
    ...defined({
      failuresPerChipYear: a['failures-per-chip-year'], storageWriteGBs: a['storage-gbs'], restartMinutes: a['restart-min'], powerOverhead: a['power-overhead'],
    }),
  }, 'plan', { failuresPerChipYear: '--failures-per-chip-year', storageWriteGBs: '--storage-gbs', restartMinutes: '--restart-min', powerOverhead: '--power-overhead' });
  if (a.html) checkOutputFile(a.html, '--html');
  const model = loadModel(a.model, a.seq);
  const attention = a.attention;
  if (attention !== 'flash' && attention !== 'standard') throw new UsageError(`--attention must be flash or standard, got '${attention}'`);
  if (a.recompute && !['none', 'selective', 'full'].includes(a.recompute)) throw new UsageError(`--recompute must be none, selective or full`);
  if (a.zero !== undefined && ![0, 1, 2, 3].includes(a.zero)) throw new UsageError('--zero must be 0, 1, 2 or 3');
  const globalBatch = a['global-batch'] ?? defaultGlobalBatch(model.config.seqLen);
  if (!(STACKS as readonly string[]).includes(a.stack!)) throw new UsageError(`--stack must be one of ${STACKS.join(', ')}, got '${a.stack}'`);
  const stack = a.stack as Stack;

  // pinned dimensions must divide the chips
  // Megatron-Core convention: chips = tp*pp*cp*dp, ep folded inside dp*cp
  const pinned = { tp: a.tp, pp: a.pp, cp: a.cp, dp: a.dp };
  const prod = Object.values(pinned).reduce((s: number, v) => s * (v ?? 1), 1);
  if (chips % prod !== 0) {
    const lo = Math.floor(chips / prod) * prod, hi = Math.ceil(chips / prod) * prod;
    const named = Object.entries(pinned).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ');
    throw new PlanError(`the pinned layout (${named}, product ${prod}) does not divide ${chips} chips; use ${lo > 0 ? `${lo} or ` : ''}${hi} chips, or pinned sizes whose product divides ${chips}`);
  }
  if (pinned.dp !== undefined && ['tp', 'pp', 'cp'].every((k) => pinned[k as keyof typeof pinned] !== undefined) && prod !== chips) {
    throw new PlanError(`tp*pp*cp*dp = ${prod} but there are ${chips} chips; set dp to ${chips / (prod / pinned.dp)}`);
  }
  const fixed = {
    tp: a.tp, pp: a.pp, cp: a.cp, ep: a.ep, dp: a.dp, vpp: a.vpp, microBatch: a['micro-batch'],
    zero: a.zero as Layout['zero'] | undefined, recompute: a.recompute as Recompute | undefined,
  };
  const opts = { model, chip: rc, chips, globalBatch, tokens: a.tokens ?? 10e12, attention, cluster, fixed, keep: a.top, stack } as const;
  const res = searchLayouts(opts);
  if (!res.ranked.length) throw impossibleError(opts, res);
  const report = { model, chip: rc, chips, globalBatch, ranked: res.ranked, reason: res.reason, considered: res.considered, fitting: res.fitting, elapsedMs: res.elapsedMs };
  console.log(textReport(report));
  if (a.html) {
    try {
      writeFileSync(a.html, htmlReport(report));
    } catch (e) {
      throw new PlanError(`cannot write the HTML report '${a.html}': ${(e as Error).message}`);
    }
    console.log(`\nwrote ${a.html}`);
  }
  if (a.json) {
    console.log(JSON.stringify({
      model: model.config.name, chip: rc.id, chips, globalBatch, reason: res.reason,
      layouts: res.ranked.map((e) => ({ layout: e.layout, ...toPlannerIo(e), wallDays: Number(e.wallDays.toPrecision(4)), energyMWh: e.energyMWh === null ? null : Number(e.energyMWh.toPrecision(4)) })),
    }));
  }
  return 0;
}
