// Typed command-line flag parsing shared by every command: declared flags only, so a typo
// (`--step 20`) is an error that names the flag and lists the valid ones, never silently ignored.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type FlagKind = 'string' | 'int' | 'number' | 'bool' | 'size';

export interface FlagSpec {
  kind: FlagKind;
  help: string;
  default?: string | number | boolean;
  /** smallest value accepted (numbers), checked here so a bad value never reaches the code */
  min?: number;
  /** largest value accepted (numbers) */
  max?: number;
}

export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<S extends FlagSpec> = S['kind'] extends 'bool'
  ? boolean
  : S['kind'] extends 'string'
    ? string
    : number;

export type Parsed<T extends FlagSpecs> = { [K in keyof T]: ValueOf<T[K]> | undefined } & { _: string[] };

/** Parses sizes like 10T, 1.5B, 300M, 64k, or plain numbers. */
export function parseSize(text: string): number {
  const m = /^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kKmMbBgGtTpP]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`'${text}' is not a number or size (examples: 4096, 300M, 1.5B, 10T)`);
  const mult: Record<string, number> = { '': 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9, t: 1e12, p: 1e15 };
  return Number(m[1]) * mult[m[2]!.toLowerCase()]!;
}

export function formatHelp(command: string, specs: FlagSpecs, synopsis = ''): string {
  const lines = [`usage: zili ${command} ${synopsis}`.trimEnd(), '', 'options:'];
  for (const [name, s] of Object.entries(specs)) {
    const arg = s.kind === 'bool' ? '' : ` <${s.kind}>`;
    const def = s.default !== undefined ? ` (default ${s.default})` : '';
    lines.push(`  --${name}${arg}`.padEnd(30) + ` ${s.help}${def}`);
  }
  return lines.join('\n');
}

function checkRange(name: string, spec: FlagSpec, n: number, text: string): void {
  const { min, max } = spec;
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
    const range = min !== undefined && max !== undefined ? `between ${min} and ${max}` : min !== undefined ? `at least ${min}` : `at most ${max}`;
    throw new UsageError(`option --${name} must be ${range}, got '${text}'`);
  }
}

/** Parses argv against specs. Throws UsageError for unknown flags, missing values or bad numbers. */
export function parseArgs<T extends FlagSpecs>(argv: string[], specs: T, command = ''): Parsed<T> {
  const out: Record<string, unknown> = { _: [] as string[] };
  for (const [name, s] of Object.entries(specs)) if (s.default !== undefined) out[name] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      (out._ as string[]).push(a);
      continue;
    }
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const spec = specs[name];
    if (!spec) {
      const known = Object.keys(specs).map((k) => `--${k}`).join(', ');
      throw new UsageError(`unknown option --${name}${command ? ` for '${command}'` : ''}. Valid options: ${known}`);
    }
    if (spec.kind === 'bool') {
      out[name] = value === undefined ? true : !(value === 'false' || value === '0');
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UsageError(`option --${name} needs a value (${spec.help})`);
    }
    if (spec.kind === 'string') out[name] = value;
    else {
      const n = spec.kind === 'size' ? parseSize(value) : Number(value);
      if (!Number.isFinite(n) || value.trim() === '') throw new UsageError(`option --${name} expects a number, got '${value}'`);
      if (spec.kind === 'int' && !Number.isInteger(n)) throw new UsageError(`option --${name} expects a whole number, got '${value}'`);
      if (spec.kind === 'int' && !Number.isSafeInteger(n)) throw new UsageError(`option --${name} ${value} is too large; give a whole number below 2^53`);
      checkRange(name, spec, n, value);
      out[name] = n;
    }
  }
  return out as Parsed<T>;
}
