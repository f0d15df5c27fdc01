// CPU time of the native attention kernel on one thread: forward and backward of one reference layer
// (B 8, T 256, 6 heads, D 64, causal; or B,T,Hq,Hkv,D from --shape), best of REPEAT, per kernel
// build this CPU runs (avx512 / avx2 / portable) or those named. CPU time of one thread is what a
// shared machine disturbs least (wall time there is several times longer and varies run to run); the
// GFLOP/s count only the causal half of Q K^T and P V (forward: 2 products, backward: 5).
// Run: node dist/bench/attention-cpu-time.js [REPEAT] [KERNEL,...] [--shape B,T,Hq,Hkv,D]
import { loadNative } from '../src/backend/cpu/native.js';

const args = process.argv.slice(2);
const shapeAt = args.indexOf('--shape');
const [B, T, Hq, Hkv, D] = shapeAt >= 0 ? args.splice(shapeAt, 2)[1]!.split(',').map(Number) as [number, number, number, number, number] : [8, 256, 6, 6, 64];
const repeat = Number(args[0] ?? 10);
const N = loadNative();
N.setThreads(1);
const kernels = args[1] ? args[1].split(',') : N.attentionKernels();
const rand = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.9);
const q = rand(B * T * Hq * D), k = rand(B * T * Hkv * D).reverse(), v = rand(B * T * Hkv * D), dout = q.slice().reverse();
const out = new Float32Array(q.length), lse = new Float32Array(B * Hq * T), dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(k.length);
const scale = 1 / Math.sqrt(D), causalFlops = 2 * B * Hq * D * (T * (T + 1)) / 2;
const cpuMs = (f: () => void) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e3;
};
console.log(`1 thread, best of ${repeat}, CPU ms; B=${B} T=${T} Hq=${Hq} Hkv=${Hkv} D=${D} causal`);
for (const kernel of kernels) {
  N.attentionKernel(kernel);
  let fwd = Infinity, bwd = Infinity;
  for (let r = 0; r <= repeat; r++) {
    const f = cpuMs(() => N.attentionFwd(q, k, v, B, T, Hq, Hkv, D, scale, true, out, lse));
    const b = cpuMs(() => N.attentionBwd(q, k, v, out, lse, dout, B, T, Hq, Hkv, D, scale, true, dq, dk, dv));
    if (r > 0) [fwd, bwd] = [Math.min(fwd, f), Math.min(bwd, b)];
  }
  console.log(`${kernel.padEnd(9)} forward ${fwd.toFixed(2)} ms (${(2 * causalFlops / fwd / 1e6).toFixed(1)} GFLOP/s), backward ${bwd.toFixed(2)} ms (${(5 * causalFlops / bwd / 1e6).toFixed(1)} GFLOP/s)`);
}
N.attentionKernel(N.attentionKernels()[0]!);
