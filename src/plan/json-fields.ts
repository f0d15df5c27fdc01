// Strict readers for the planner's JSON inputs: a number must be a JSON number in range and a flag a
// JSON boolean, so "10T", -5 or the string "false" are refused with the field's name instead of turning
// into NaN days or `true`.
import { PlanError } from './hardware.js';

export interface NumberRule {
  integer?: boolean;
  /** smallest allowed value (inclusive unless `above`) */
  min?: number;
  /** the value must be strictly greater than `min` */
  above?: boolean;
  /** what the field means, for the message */
  hint?: string;
}

export function jsonNumber(v: unknown, field: string, origin: string, rule: NumberRule = {}): number {
  const { integer = false, min, above = false, hint } = rule;
  const bad = typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) ||
    (min !== undefined && (above ? v <= min : v < min));
  if (bad) {
    const kind = integer ? 'an integer' : 'a number';
    const range = min === undefined ? '' : ` ${above ? '>' : '>='} ${min}`;
    const str = typeof v === 'string' ? ` (a JSON number, not a string${/^[\d.]+\s*[kKmMbBtT]$/.test(v) ? `: write ${shorthand(v)}` : ''})` : '';
    throw new PlanError(`${origin}: ${field} must be ${kind}${range}${hint ? ` (${hint})` : ''}${str}, got ${JSON.stringify(v)}`);
  }
  return v as number;
}

export function jsonBoolean(v: unknown, field: string, origin: string): boolean {
  if (typeof v !== 'boolean') throw new PlanError(`${origin}: ${field} must be true or false (a JSON boolean, without quotes), got ${JSON.stringify(v)}`);
  return v;
}

export function jsonChoice<T extends string>(v: unknown, field: string, origin: string, choices: readonly T[]): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
    throw new PlanError(`${origin}: ${field} must be one of ${choices.map((c) => `"${c}"`).join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/** "10T" -> "1e13": the number a user meant by a size shorthand. */
function shorthand(text: string): string {
  const m = /^([\d.]+)\s*([kKmMbBtT])$/.exec(text)!;
  const exp: Record<string, number> = { k: 3, m: 6, b: 9, t: 12 };
  return String(Number(m[1]) * 10 ** exp[m[2]!.toLowerCase()]!);
}
