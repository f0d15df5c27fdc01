// Human formatting for progress and logs: durations (1m12s), counts (1.2M), bytes (1.5 GiB), percents and short numbers.

/** A duration in seconds as `850ms`, `4.2s`, `42s`, `1m12s`, `2h03m`, `3d04h`; `--` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 10) return `${(Math.floor(seconds * 10) / 10).toFixed(1)}s`;
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor((s % 86400) / 3600))}h`;
}

const COUNT_UNITS = ['', 'k', 'M', 'B', 'T', 'P'];

/** A count with a metric suffix and 2-3 significant digits: 950, 1.2k, 12.3k, 1.2M, 3.5B, 1.0T. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  if (v < 1000) return sign + (Number.isInteger(v) ? String(v) : v.toPrecision(3).replace(/\.?0+$/, ''));
  let u = 0;
  while (v >= 999.95 && u < COUNT_UNITS.length - 1) {
    v /= 1000;
    u++;
  }
  return `${sign}${v < 100 ? v.toFixed(1) : v.toFixed(0)}${COUNT_UNITS[u]}`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes in binary units: 512 B, 1.5 KiB, 300.0 MiB, 1.2 GiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${n} B`;
  let v = n;
  let u = 0;
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${BYTE_UNITS[u]}`;
}

/** A fraction as a percent: formatPercent(0.0412) = '4.1%'. */
export function formatPercent(fraction: number, digits = 1): string {
  if (!Number.isFinite(fraction)) return '--%';
  return `${(fraction * 100).toFixed(digits)}%`;
}

/**
 * A metric value for a status line: integers as they are (compact above 100k), other numbers with
 * 4 significant digits (3.412, 0.0001235, 1.235e-7 below 1e-4), non-finite as `nan`/`inf`.
 */
export function formatValue(x: number | string): string {
  if (typeof x === 'string') return x;
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (Number.isInteger(x)) return Math.abs(x) >= 1e5 ? formatCount(x) : String(x);
  const a = Math.abs(x);
  if (a >= 1e5) return formatCount(x);
  if (a < 1e-4) return x.toExponential(3);
  if (a >= 1000) return x.toFixed(0);
  return x.toPrecision(4);
}
