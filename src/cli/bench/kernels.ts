// `zili bench kernels`: each fused CPU kernel of the native addon against an unfused composition
// of the addon's primitives (sgemm / sgemmBatched, unary, binary, reduce, copyStrided, axpy...),
// the path a backend without that fused routine would take. Shapes are those of the reference
// training config (batch 8 x seq 256 tokens, d_model 384, 6 heads of 64, SwiGLU 1024, vocab 4096);
// attention also at T = 1024 (batch 1) and with grouped kv heads (8:2 and 6:2).
// Also reports the attention's scratch memory, fused against unfused, at T = 256, 1024, 4096.
import { formatHelp, parseArgs, UsageError } from '../args.js';
import { loadNative, type NativeKernels } from '../../backend/cpu/native.js';
import { MAX_THREADS, oversubscriptionWarning } from '../../util/threads.js';

const SPECS = {
  repeat: { kind: 'int', help: 'timed runs per kernel (best is reported)', default: 5, min: 1 },
  only: { kind: 'string', help: 'comma-separated kernel names to run (attention [also runs attention-1k, -gqa4, -gqa3],rmsnorm,rope,swiglu,cross-entropy,adamw,embedding)' },
  threads: { kind: 'int', help: 'threads (default: ZILI_THREADS or 2)', min: 1, max: MAX_THREADS },
  'attention-kernel': { kind: 'string', help: 'attention kernel to time (avx512, avx2, portable; default: the widest this CPU runs)' },
  json: { kind: 'bool', help: 'end with one JSON line' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = lo + ((hi - lo) * s) / 4294967296;
  }
  return a;
}

function bestMs(fn: () => void, repeat: number): number {
  fn();
  let best = Infinity;
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return best;
}

const I = (...v: number[]) => Int32Array.from(v);

interface Case { name: string; detail: string; fused: () => void; unfused: () => void }

/** Attention with every [B,H,T,T] score/probability buffer materialised (causal, Hq = Hkv). */
export class UnfusedAttention {
  readonly P: Float32Array; readonly tmp: Float32Array; readonly dP: Float32Array; readonly mask: Float32Array; readonly rowv: Float32Array;
  constructor(private N: NativeKernels, private B: number, private T: number, private H: number, private D: number) {
    const n = B * H * T * T;
    this.P = new Float32Array(n); this.tmp = new Float32Array(n); this.dP = new Float32Array(n);
    this.mask = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) this.mask[i * T + j] = -Infinity;
    this.rowv = new Float32Array(B * H * T);
  }
  /** Bytes of the buffers that scale with T^2 (scores/probabilities, their gradients, mask). */
  static scratchBytes(B: number, T: number, H: number): number { return (3 * B * H * T * T + T * T + B * H * T) * 4; }
  forward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, scale: number): void {
    const { N, B, T, H, D, P, tmp, mask, rowv } = this;
    const HD = H * D, TT = T * T, BHT = B * H * T;
    for (let b = 0; b < B; b++)
      N.sgemmBatched(H, false, true, T, T, D, scale, q.subarray(b * T * HD), D, HD, k.subarray(b * T * HD), D, HD, 0, tmp.subarray(b * H * TT), TT, T);
    N.binary(N.BINARY.add, tmp, I(TT, 1), mask, I(0, 1), P, I(B * H, TT)); // causal mask
    N.reduce(N.REDUCE.max, P, BHT, T, 1, rowv);
    N.binary(N.BINARY.sub, P, I(T, 1), rowv, I(1, 0), tmp, I(BHT, T));
    N.unary(N.UNARY.exp, tmp, P);
    N.reduce(N.REDUCE.sum, P, BHT, T, 1, rowv);
    N.binary(N.BINARY.div, P, I(T, 1), rowv, I(1, 0), P, I(BHT, T));
    for (let b = 0; b < B; b++)
      N.sgemmBatched(H, false, false, T, D, T, 1, P.subarray(b * H * TT), TT, T, v.subarray(b * T * HD), D, HD, 0, out.subarray(b * T * HD), D, HD);
  }
  backward(q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, scale: number, dq: Float32Array, dk: Float32Array, dv: Float32Array): void {
    const { N, B, T, H, D, P, tmp, dP, rowv } = this;
    const HD = H * D, TT = T * T, BHT = B * H * T;
    for (let b = 0; b < B; b++) {
      N.sgemmBatched(H, true, false, T, D, T, 1, P.subarray(b * H * TT), TT, T, dout.subarray(b * T * HD), D, HD, 0, dv.subarray(b * T * HD), D, HD);
      N.sgemmBatched(H, false, true, T, T, D, 1, dout.subarray(b * T * HD), D, HD, v.subarray(b * T * HD), D, HD, 0, dP.subarray(b * H * TT), TT, T);
    }
    N.binary(N.BINARY.mul, P, I(T, 1), dP, I(T, 1), tmp, I(BHT, T));
    N.reduce(N.REDUCE.sum, tmp, BHT, T, 1, rowv);
    N.binary(N.BINARY.sub, dP, I(T, 1), rowv, I(1, 0), tmp, I(BHT, T));
    N.binary(N.BINARY.mul, P, I(T, 1), tmp, I(T, 1), dP, I(BHT, T)); // dS
    for (let b = 0; b < B; b++) {
      N.sgemmBatched(H, false, false, T, D, T, scale, dP.subarray(b * H * TT), TT, T, k.subarray(b * T * HD), D, HD, 0, dq.subarray(b * T * HD), D, HD);
      N.sgemmBatched(H, true, false, T, D, T, scale, dP.subarray(b * H * TT), TT, T, q.subarray(b * T * HD), D, HD, 0, dk.subarray(b * T * HD), D, HD);
    }
  }
}

function attentionCase(N: NativeKernels, B: number, T: number, H: number, D: number, Hkv = H): Case {
  const n = B * T * H * D, nkv = B * T * Hkv * D, scale = 1 / Math.sqrt(D), G = H / Hkv;
  const q = rand(n, 1), k = rand(nkv, 2), v = rand(nkv, 3), dout = rand(n, 4);
  const out = new Float32Array(n), lse = new Float32Array(B * H * T), dq = new Float32Array(n), dk = new Float32Array(nkv), dv = new Float32Array(nkv);
  // The unfused path has no grouped heads: it runs on k/v repeated to H heads (expanded once, outside
  // the timing) and leaves the per-query-head dk/dv unsummed, so it slightly flatters the unfused side.
  const expand = (x: Float32Array) => {
    if (G === 1) return x;
    const e = new Float32Array(n);
    for (let r = 0; r < B * T; r++) for (let h = 0; h < H; h++) e.set(x.subarray((r * Hkv + Math.floor(h / G)) * D, (r * Hkv + Math.floor(h / G) + 1) * D), (r * H + h) * D);
    return e;
  };
  const ke = expand(k), ve = expand(v), dke = G === 1 ? dk : new Float32Array(n), dve = G === 1 ? dv : new Float32Array(n);
  const un = new UnfusedAttention(N, B, T, H, D);
  return {
    name: 'attention',
    detail: `causal fwd+bwd B=${B} T=${T} H=${H}${Hkv !== H ? ` Hkv=${Hkv}` : ''} D=${D}`,
    fused: () => {
      N.attentionFwd(q, k, v, B, T, H, Hkv, D, scale, true, out, lse);
      N.attentionBwd(q, k, v, out, lse, dout, B, T, H, Hkv, D, scale, true, dq, dk, dv);
    },
    unfused: () => {
      un.forward(q, ke, ve, out, scale);
      un.backward(q, ke, ve, dout, scale, dq, dke, dve);
    },
  };
}

function rmsnormCase(N: NativeKernels, rows: number, dim: number): Case {
  const x = rand(rows * dim, 5), w = rand(dim, 6, 0.5, 1.5), dy = rand(rows * dim, 7), eps = 1e-5;
  const y = new Float32Array(rows * dim), rstd = new Float32Array(rows), dx = new Float32Array(rows * dim), dw = new Float32Array(dim);
  const t1 = new Float32Array(rows * dim), t2 = new Float32Array(rows * dim), r1 = new Float32Array(rows), r2 = new Float32Array(rows);
  const sc = (v: number) => Float32Array.of(v);
  return {
    name: 'rmsnorm',
    detail: `fwd+bwd rows=${rows} dim=${dim}`,
    fused: () => {
      N.rmsnormFwd(x, w, eps, rows, dim, y, rstd);
      N.rmsnormBwd(dy, x, w, rstd, rows, dim, dx, dw);
    },
    unfused: () => {
      // forward: r = rsqrt(mean(x^2) + eps); y = x * r * w
      N.unary(N.UNARY.square, x, t1);
      N.reduce(N.REDUCE.sum, t1, rows, dim, 1, r1);
      N.binary(N.BINARY.mul, r1, I(1), sc(1 / dim), I(0), r2, I(rows));
      N.binary(N.BINARY.add, r2, I(1), sc(eps), I(0), r1, I(rows));
      N.unary(N.UNARY.rsqrt, r1, rstd);
      N.binary(N.BINARY.mul, x, I(dim, 1), rstd, I(1, 0), t1, I(rows, dim));
      N.binary(N.BINARY.mul, t1, I(dim, 1), w, I(0, 1), y, I(rows, dim));
      // backward: a = dy*w; g = sum(a*x); dx = a*r - x*(g*r^3/dim); dw = sum_rows(dy*x*r)
      N.binary(N.BINARY.mul, dy, I(dim, 1), w, I(0, 1), t1, I(rows, dim));
      N.binary(N.BINARY.mul, t1, I(1), x, I(1), t2, I(rows * dim));
      N.reduce(N.REDUCE.sum, t2, rows, dim, 1, r1);
      N.binary(N.BINARY.mul, r1, I(1), rstd, I(1), r2, I(rows));
      N.binary(N.BINARY.mul, r2, I(1), rstd, I(1), r1, I(rows));
      N.binary(N.BINARY.mul, r1, I(1), rstd, I(1), r2, I(rows));
      N.binary(N.BINARY.mul, r2, I(1), sc(1 / dim), I(0), r1, I(rows));
      N.binary(N.BINARY.mul, t1, I(dim, 1), rstd, I(1, 0), t2, I(rows, dim));
      N.binary(N.BINARY.mul, x, I(dim, 1), r1, I(1, 0), t1, I(rows, dim));
      N.binary(N.BINARY.sub, t2, I(1), t1, I(1), dx, I(rows * dim));
      N.binary(N.BINARY.mul, dy, I(1), x, I(1), t1, I(rows * dim));
      N.binary(N.BINARY.mul, t1, I(dim, 1), rstd, I(1, 0), t2, I(rows, dim));
      N.reduce(N.REDUCE.sum, t2, 1, rows, dim, dw);
    },
  };
}

function ropeCase(N: NativeKernels, B: number, T: number, H: number, D: number): Case {
  const n = B * T * H * D, half = D / 2, BTH = B * T * H;
  const x = rand(n, 8), out = new Float32Array(n);
  const ang = new Float32Array(T * half), cos = new Float32Array(T * half), sin = new Float32Array(T * half);
  for (let t = 0; t < T; t++) for (let i = 0; i < half; i++) ang[t * half + i] = t * 10000 ** (-2 * i / D);
  const x1 = new Float32Array(BTH * half), x2 = new Float32Array(BTH * half), a = new Float32Array(BTH * half), b = new Float32Array(BTH * half);
  const cat = new Float32Array(2 * BTH * half);
  const o1 = cat.subarray(0, BTH * half), o2 = cat.subarray(BTH * half);
  // broadcast cos/sin [T, half] over [B, T, H, half]
  const tabS = I(0, half, 0, 1), xS = I(T * H * half, H * half, half, 1), shp = I(B, T, H, half);
  return {
    name: 'rope',
    detail: `fwd B=${B} T=${T} H=${H} D=${D}`,
    fused: () => N.ropeFwd(x, B, T, H, D, 0, 10000, out, false),
    unfused: () => {
      N.unary(N.UNARY.cos, ang, cos);
      N.unary(N.UNARY.sin, ang, sin);
      N.copyStrided(4, x, 0, I(D, 1), x1, I(BTH, half));
      N.copyStrided(4, x, half, I(D, 1), x2, I(BTH, half));
      N.binary(N.BINARY.mul, x1, xS, cos, tabS, a, shp);
      N.binary(N.BINARY.mul, x2, xS, sin, tabS, b, shp);
      N.binary(N.BINARY.sub, a, I(1), b, I(1), o1, I(BTH * half));
      N.binary(N.BINARY.mul, x2, xS, cos, tabS, a, shp);
      N.binary(N.BINARY.mul, x1, xS, sin, tabS, b, shp);
      N.binary(N.BINARY.add, a, I(1), b, I(1), o2, I(BTH * half));
      N.copyStrided(4, cat, 0, I(half, BTH * half, 1), out, I(BTH, 2, half));
    },
  };
}

function swigluCase(N: NativeKernels, n: number): Case {
  const g = rand(n, 9, -4, 4), u = rand(n, 10), d = rand(n, 11);
  const out = new Float32Array(n), dg = new Float32Array(n), du = new Float32Array(n), s = new Float32Array(n), t = new Float32Array(n);
  return {
    name: 'swiglu',
    detail: `fwd+bwd ${n} elements (2048 tokens x 1024)`,
    fused: () => {
      N.swigluFwd(g, u, out);
      N.swigluBwd(g, u, d, dg, du);
    },
    unfused: () => {
      N.unary(N.UNARY.silu, g, s);
      N.binary(N.BINARY.mul, s, I(1), u, I(1), out, I(n));
      N.binary(N.BINARY.mul, d, I(1), s, I(1), du, I(n));
      N.binary(N.BINARY.mul, d, I(1), u, I(1), t, I(n));
      N.unaryBackward(N.UNARY.silu, g, s, t, dg);
    },
  };
}

function crossEntropyCase(N: NativeKernels, rows: number, vocab: number): Case {
  const logits = rand(rows * vocab, 12, -6, 6), targets = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % vocab);
  const losses = new Float32Array(rows), lse = new Float32Array(rows), dl = new Float32Array(rows * vocab);
  const t = new Float32Array(rows * vocab), m = new Float32Array(rows), s = new Float32Array(rows);
  return {
    name: 'cross-entropy',
    detail: `fwd+bwd rows=${rows} vocab=${vocab}`,
    fused: () => {
      N.crossEntropyFwd(logits, targets, rows, vocab, losses, lse);
      N.crossEntropyBwd(logits, targets, lse, rows, vocab, 1 / rows, dl);
    },
    unfused: () => {
      N.reduce(N.REDUCE.max, logits, rows, vocab, 1, m);
      N.binary(N.BINARY.sub, logits, I(vocab, 1), m, I(1, 0), t, I(rows, vocab));
      N.unary(N.UNARY.exp, t, dl);
      N.reduce(N.REDUCE.sum, dl, rows, vocab, 1, s);
      N.unary(N.UNARY.log, s, lse);
      N.binary(N.BINARY.add, lse, I(1), m, I(1), lse, I(rows));
      for (let r = 0; r < rows; r++) losses[r] = lse[r]! - logits[r * vocab + targets[r]!]!;
      N.binary(N.BINARY.sub, logits, I(vocab, 1), lse, I(1, 0), t, I(rows, vocab));
      N.unary(N.UNARY.exp, t, dl);
      for (let r = 0; r < rows; r++) dl[r * vocab + targets[r]!]! -= 1;
      N.scaleInPlace(dl, 1 / rows);
    },
  };
}

function adamwCase(N: NativeKernels, n: number): Case {
  const p = rand(n, 13), g = rand(n, 14), m = new Float32Array(n), v = new Float32Array(n);
  const t1 = new Float32Array(n), t2 = new Float32Array(n);
  const [lr, b1, b2, eps, wd, step] = [1e-3, 0.9, 0.95, 1e-8, 0.1, 10];
  const sc = (x: number) => Float32Array.of(x);
  return {
    name: 'adamw',
    detail: `${(n / 1e6).toFixed(1)}M parameters`,
    fused: () => N.adamw(p, g, m, v, lr, b1, b2, eps, wd, step),
    unfused: () => {
      N.scaleInPlace(m, b1);
      N.axpy(1 - b1, g, m);
      N.unary(N.UNARY.square, g, t1);
      N.scaleInPlace(v, b2);
      N.axpy(1 - b2, t1, v);
      N.binary(N.BINARY.mul, v, I(1), sc(1 / (1 - b2 ** step)), I(0), t1, I(n));
      N.unary(N.UNARY.sqrt, t1, t2);
      N.binary(N.BINARY.add, t2, I(1), sc(eps), I(0), t1, I(n));
      N.binary(N.BINARY.div, m, I(1), t1, I(1), t2, I(n));
      N.scaleInPlace(p, 1 - lr * wd);
      N.axpy(-lr / (1 - b1 ** step), t2, p);
    },
  };
}

function embeddingCase(N: NativeKernels, n: number, vocab: number, dim: number): Case {
  const table = rand(vocab * dim, 15), ids = Int32Array.from({ length: n }, (_, i) => (i * 104729) % vocab);
  const out = new Float32Array(n * dim), dout = rand(n * dim, 16), dtable = new Float32Array(vocab * dim);
  const onehot = new Float32Array(n * vocab);
  return {
    name: 'embedding',
    detail: `gather+scatter-add ${n} ids, vocab=${vocab} dim=${dim} (unfused: one-hot GEMMs)`,
    fused: () => {
      N.embeddingFwd(table, ids, dim, out);
      N.embeddingBwd(dout, ids, dim, dtable);
    },
    unfused: () => {
      onehot.fill(0);
      for (let i = 0; i < n; i++) onehot[i * vocab + ids[i]!] = 1;
      N.sgemm(false, false, n, dim, vocab, 1, onehot, vocab, table, dim, 0, out, dim);
      N.sgemm(true, false, vocab, dim, n, 1, onehot, vocab, dout, dim, 1, dtable, dim);
    },
  };
}

export async function run(argv: string[]): Promise<number> {
  const o = parseArgs(argv, SPECS, 'bench kernels');
  if (o.help) {
    console.log(formatHelp('bench kernels', SPECS, '[--repeat R] [--only a,b] [--json]'));
    return 0;
  }
  const N = loadNative();
  if (o.threads !== undefined) N.setThreads(o.threads);
  const kernel = o['attention-kernel'];
  if (kernel !== undefined && !N.attentionKernels().includes(kernel))
    throw new UsageError(`--attention-kernel ${kernel}: this CPU runs ${N.attentionKernels().join(', ')}`);
  if (kernel !== undefined) N.attentionKernel(kernel);
  const oversubscribed = oversubscriptionWarning(N.threads());
  if (oversubscribed) console.error(`zili bench: ${oversubscribed}`);
  const repeat = Math.max(1, o.repeat ?? 5);
  const [B, T, H, D, d, F, V] = [8, 256, 6, 64, 384, 1024, 4096];
  const makers: Record<string, () => Case> = {
    attention: () => attentionCase(N, B, T, H, D),
    'attention-1k': () => attentionCase(N, 1, 1024, H, D),
    'attention-gqa4': () => attentionCase(N, B, T, 8, D, 2),
    'attention-gqa3': () => attentionCase(N, B, T, 6, D, 2),
    rmsnorm: () => rmsnormCase(N, B * T, d),
    rope: () => ropeCase(N, B, T, H, D),
    swiglu: () => swigluCase(N, B * T * F),
    'cross-entropy': () => crossEntropyCase(N, B * T, V),
    adamw: () => adamwCase(N, 11_000_000),
    embedding: () => embeddingCase(N, B * T, V, d),
  };
  const only = o.only ? new Set(o.only.split(',')) : undefined;
  const results: { name: string; detail: string; fusedMs: number; unfusedMs: number; speedup: number }[] = [];
  console.log(`threads ${N.threads()}, best of ${repeat}, milliseconds; attention kernel ${N.attentionKernel()} (of ${N.attentionKernels().join(', ')})`);
  console.log('kernel'.padEnd(15) + 'fused'.padStart(10) + 'unfused'.padStart(10) + 'speed-up'.padStart(10) + '  shape');
  for (const [key, make] of Object.entries(makers)) {
    if (only && !only.has(key) && !(key.startsWith('attention-') && only.has('attention'))) continue;
    const c = make();
    const fusedMs = bestMs(c.fused, repeat), unfusedMs = bestMs(c.unfused, repeat);
    results.push({ name: key, detail: c.detail, fusedMs: +fusedMs.toFixed(3), unfusedMs: +unfusedMs.toFixed(3), speedup: +(unfusedMs / fusedMs).toFixed(2) });
    console.log(key.padEnd(15) + fusedMs.toFixed(2).padStart(10) + unfusedMs.toFixed(2).padStart(10) + `${(unfusedMs / fusedMs).toFixed(2)}x`.padStart(10) + `  ${c.detail}`);
  }
  const memory = [256, 1024, 4096].map((t) => ({
    T: t,
    fusedFwdBytes: N.attentionScratchBytes(1, t, H, H, D, false),
    fusedBwdBytes: N.attentionScratchBytes(1, t, H, H, D, true),
    unfusedBytes: UnfusedAttention.scratchBytes(1, t, H),
  }));
  console.log(`\nattention scratch memory, batch 1, ${H} heads of ${D} (fused: a few tiles per thread, inputs read in place; unfused: [B,H,T,T] buffers)`);
  console.log('T'.padStart(6) + 'fused fwd'.padStart(14) + 'fused bwd'.padStart(14) + 'unfused'.padStart(16));
  const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;
  for (const m of memory) console.log(String(m.T).padStart(6) + mib(m.fusedFwdBytes).padStart(14) + mib(m.fusedBwdBytes).padStart(14) + mib(m.unfusedBytes).padStart(16));
  if (o.json) console.log(JSON.stringify({ threads: N.threads(), repeat, attentionKernel: N.attentionKernel(), kernels: results, attentionMemory: memory }));
  return 0;
}
