// Fewer points for a chart without losing its spikes: the rows are cut into buckets of equal row
// count and each bucket gives two points, at its first and last row, holding each series' minimum
// and maximum over the bucket (in the order they occur), so a one-step loss spike still shows.

export interface Series {
  /** x values (steps) */
  x: number[];
  /** per series: values at x (null: none in that bucket or row) */
  y: Array<Array<number | null>>;
}

const orNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** All rows when there are at most maxPoints, else the min/max envelope in maxPoints/2 buckets. */
export function downsample(x: ArrayLike<number>, ys: ReadonlyArray<ArrayLike<number>>, maxPoints: number, from = 0): Series {
  const n = x.length - from;
  if (n <= maxPoints) {
    const out: Series = { x: [], y: ys.map(() => []) };
    for (let i = from; i < x.length; i++) {
      out.x.push(x[i]!);
      ys.forEach((y, s) => out.y[s]!.push(orNull(y[i]!)));
    }
    return out;
  }
  const buckets = Math.max(1, Math.floor(maxPoints / 2));
  const out: Series = { x: [], y: ys.map(() => []) };
  for (let b = 0; b < buckets; b++) {
    const lo = from + Math.floor((b * n) / buckets);
    const hi = from + Math.floor(((b + 1) * n) / buckets); // exclusive
    out.x.push(x[lo]!, x[hi - 1]!);
    ys.forEach((y, s) => {
      let min = Infinity, max = -Infinity, iMin = -1, iMax = -1;
      for (let i = lo; i < hi; i++) {
        const v = y[i]!;
        if (!Number.isFinite(v)) continue;
        if (v < min) (min = v), (iMin = i);
        if (v > max) (max = v), (iMax = i);
      }
      const col = out.y[s]!;
      if (iMin < 0) col.push(null, null);
      else if (iMin <= iMax) col.push(min, max);
      else col.push(max, min);
    });
  }
  return out;
}
