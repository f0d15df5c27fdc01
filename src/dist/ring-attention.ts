// Ring attention (context parallelism): causal grouped-query attention of this rank's queries over the
// whole sequence, whose tokens are spread over the cp ranks in load-balanced chunks
// (context-parallel-layout.ts: rank i holds chunks i and 2·cp-1-i). The K/V chunks travel around the
// ring: at step s a rank holds the K/V of rank (i - s) mod cp, posts their send to the next rank and
// the receive of the following ones from the previous rank, then computes the attention of its
// queries over the blocks it holds while the transfer runs (MPI progresses on its own thread).
// Each (query chunk, key chunk) pair gives a partial result normalised within the block plus its
// log-sum-exp; partials are merged by the online-softmax rule
//   lse = log(e^lse1 + e^lse2),  o = e^(lse1-lse)·o1 + e^(lse2-lse)·o2.
// Pairs whose keys all lie after the queries are skipped, the diagonal pair gets the causal mask.
//
// Backward is a second ring (FlashAttention-2's backward per block, as in Ring Attention and
// Megatron-Core's CP): the forward saves only q, k, v, the merged output and its log-sum-exp; the
// backward passes the K/V chunks around again together with their dK/dV accumulators. At each step a
// rank adds its queries' contributions to the visiting chunks' dK/dV; an accumulator starts at the
// owner's next rank, visits the others and is sent home, where the owner's own part is added: cp−1
// hops of K/V and cp−1 of dK/dV, as Megatron-Core's CP. dQ stays local. Nothing of size seq² is kept
// between forward and backward (the score blocks are recomputed), at the cost of one more ring of K/V.
//
// Composed from the backend's ops (matmul, exp, max, sum, …) in f32, so it runs on every backend;
// the fused attention kernel has no log-sum-exp output to merge.
import { gradEnabled, noGrad, record } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { ShapeError } from '../tensor/errors.js';
import type { Communicator } from './communicator.js';
import { loadBalancedChunks } from './context-parallel-layout.js';

/** message tags: the 4 K/V chunk tensors, then their 4 dK/dV accumulators */
const TAG_KV = 100, TAG_DKV = 104;

interface Partial {
  /** [B, H, c, D], normalised over the block's keys */
  o: Tensor;
  /** [B, H, c, 1] */
  lse: Tensor;
}

/** Per-call constants. */
interface Geometry {
  B: number;
  H: number;
  Hkv: number;
  c: number;
  D: number;
  scale: number;
  /** [c, c]: 0 on and below the diagonal, -inf above */
  mask: Tensor;
}

/** Sends `send` to rank `next` and receives as many tensors of the same shapes from rank `prev`. */
function exchange(comm: Communicator, send: readonly Tensor[], next: number, prev: number, tag: number): { sent: readonly Tensor[]; done: Promise<Tensor[]> } {
  const got = send.map((t) => T.empty(t.backend, t.shape, t.dtype));
  const done = Promise.all([...send.map((t, i) => comm.send(t, next, tag + i)), ...got.map((t, i) => comm.recv(t, prev, tag + i))]).then(() => got);
  return { sent: send, done };
}

const free = (ts: readonly Tensor[]) => ts.forEach((t) => t.dispose());

/** x [B, T, h, D] → its two chunks in head-major layout [B, h, T/2, D]. */
function headChunks(x: Tensor): [Tensor, Tensor] {
  return tidy(() => {
    const h = T.permute(x, [0, 2, 1, 3]);
    const half = x.shape[1]! / 2;
    return [T.slice(h, 2, 0, half), T.slice(h, 2, half, 2 * half)] as [Tensor, Tensor];
  });
}

/** Two head-major chunks back to [B, T, h, D]. */
function joinChunks(a: Tensor, b: Tensor): Tensor {
  return tidy(() => T.permute(T.concat([a, b], 2), [0, 2, 1, 3]));
}

/** K/V heads repeated for their query groups: [B, Hkv, c, D] → [B, H, c, D] (query head h reads KV head ⌊h·Hkv/H⌋). */
function repeatHeads(x: Tensor, g: Geometry): Tensor {
  const { B, H, Hkv, c, D } = g;
  return H === Hkv ? x.share() : T.reshape(T.expand(T.reshape(x, [B, Hkv, 1, c, D]), [B, Hkv, H / Hkv, c, D]), [B, H, c, D]);
}

/** Scaled scores of a block, masked on the diagonal: [B, H, c, c]. */
function scores(q: Tensor, kr: Tensor, diag: boolean, g: Geometry): Tensor {
  const s = T.mulScalar(T.matmul(q, kr, { transB: true }), g.scale);
  return diag ? T.add(s, g.mask) : s;
}

function blockForward(q: Tensor, k: Tensor, v: Tensor, diag: boolean, g: Geometry): Partial {
  return tidy(() => {
    const s = scores(q, repeatHeads(k, g), diag, g);
    const m = T.max(s, -1, true);
    const p = T.exp(T.sub(s, m));
    const l = T.sum(p, -1, true);
    return { o: T.div(T.matmul(p, repeatHeads(v, g)), l), lse: T.add(m, T.log(l)) };
  });
}

/** The online-softmax merge of two partial results over disjoint keys (disposes both). */
function merge(a: Partial, b: Partial): Partial {
  const out = tidy(() => {
    const mx = T.maximum(a.lse, b.lse);
    const lse = T.add(mx, T.log(T.add(T.exp(T.sub(a.lse, mx)), T.exp(T.sub(b.lse, mx)))));
    const o = T.add(T.mul(a.o, T.exp(T.sub(a.lse, lse))), T.mul(b.o, T.exp(T.sub(b.lse, lse))));
    return { o, lse };
  });
  free([a.o, a.lse, b.o, b.lse]);
  return out;
}

/** Gradients of a block: adds into dq [B,H,c,D], dk and dv [B,Hkv,c,D] (FlashAttention-2 backward). */
function blockBackward(q: Tensor, k: Tensor, v: Tensor, dout: Tensor, lse: Tensor, delta: Tensor, diag: boolean, g: Geometry, dq: Tensor, dk: Tensor, dv: Tensor): void {
  const { B, H, Hkv, c, D, scale } = g;
  const groupSum = (x: Tensor) => (H === Hkv ? x.share() : T.sum(T.reshape(x, [B, Hkv, H / Hkv, c, D]), 2));
  tidy(() => {
    const kr = repeatHeads(k, g), vr = repeatHeads(v, g);
    const p = T.exp(T.sub(scores(q, kr, diag, g), lse));
    T.accumulateInto(dv, groupSum(T.matmul(p, dout, { transA: true })));
    const ds = T.mul(p, T.sub(T.matmul(dout, vr, { transB: true }), delta));
    T.accumulateInto(dq, T.mulScalar(T.matmul(ds, kr), scale));
    T.accumulateInto(dk, groupSum(T.mulScalar(T.matmul(ds, q, { transA: true }), scale)));
  });
}

/** The (query chunk, key chunk) pairs rank `rank` computes against the K/V of rank `owner`: indices into its two chunks each. */
function pairs(cp: number, rank: number, owner: number): { qi: number; kj: number; diag: boolean }[] {
  const mine = loadBalancedChunks(cp, rank), theirs = loadBalancedChunks(cp, owner);
  const out: { qi: number; kj: number; diag: boolean }[] = [];
  for (let qi = 0; qi < 2; qi++) for (let kj = 0; kj < 2; kj++) if (theirs[kj]! <= mine[qi]!) out.push({ qi, kj, diag: theirs[kj] === mine[qi] });
  return out;
}

/**
 * Causal attention of this rank's tokens over the whole sequence spread over `comm` (the cp group).
 * q [B, 2c, H, D], k and v [B, 2c, Hkv, D]: this rank's two chunks of every row, in the order of
 * loadBalancedChunks. Returns [B, 2c, H, D]. Differentiable (backward with backwardAsync).
 */
export async function ringAttention(q: Tensor, k: Tensor, v: Tensor, comm: Communicator): Promise<Tensor> {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw new ShapeError(`ringAttention: q, k, v must be [batch, seq, heads, headDim], got q [${q.shape.join(', ')}], k [${k.shape.join(', ')}]`);
  const [B, S, H, D] = q.shape as [number, number, number, number];
  const Hkv = k.shape[2]!;
  if (S % 2 || k.shape[1] !== S || v.shape[1] !== S || H % Hkv) throw new ShapeError(`ringAttention: q [${q.shape.join(', ')}], k [${k.shape.join(', ')}]: two equal chunks and whole query groups per KV head needed`);
  const N = comm.size, r = comm.rank, next = (r + 1) % N, prev = (r - 1 + N) % N;
  const c = S / 2;
  const maskData = new Float32Array(c * c);
  for (let i = 0; i < c; i++) for (let j = i + 1; j < c; j++) maskData[i * c + j] = -Infinity;
  const g: Geometry = { B, H, Hkv, c, D, scale: 1 / Math.sqrt(D), mask: T.tensor(q.backend, maskData, [c, c]) };

  const fwd = noGrad(() => [...headChunks(q), ...headChunks(k), ...headChunks(v)]);
  const qc = fwd.slice(0, 2);
  let kv = fwd.slice(2);
  const acc: (Partial | null)[] = [null, null];
  for (let s = 0; s < N; s++) {
    const ring = s < N - 1 ? exchange(comm, kv, next, prev, TAG_KV) : null;
    noGrad(() => {
      for (const { qi, kj, diag } of pairs(N, r, (r - s + N) % N)) {
        const part = blockForward(qc[qi]!, kv[kj]!, kv[2 + kj]!, diag, g);
        acc[qi] = acc[qi] ? merge(acc[qi]!, part) : part;
      }
    });
    if (ring) {
      const got = await ring.done;
      free(kv);
      kv = got;
    }
  }
  free([...qc, ...kv]);
  // every query chunk saw its diagonal block at step 0, so both partials exist
  const [a0, a1] = acc as [Partial, Partial];
  const [out, oh, lse] = noGrad(() => [joinChunks(a0.o, a1.o), T.concat([a0.o, a1.o], 2), T.concat([a0.lse, a1.lse], 2)]);
  free([a0.o, a0.lse, a1.o, a1.lse]);
  if (gradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad)) {
    record(out, `ringAttention(${comm.name})`, [q, k, v], [q, k, v, oh, lse, g.mask], (dout) => {
      const saved = out.node!.saved;
      return ringBackward(saved, dout, comm, { ...g, mask: saved[5]! });
    });
  }
  g.mask.dispose();
  oh.dispose();
  lse.dispose();
  return out;
}

/** The backward ring: gradients of q, k, v from the gradient of the output. */
async function ringBackward(saved: readonly Tensor[], dout: Tensor, comm: Communicator, g: Geometry): Promise<Tensor[]> {
  const [q, k, v, oh, lse] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
  const N = comm.size, r = comm.rank, next = (r + 1) % N, prev = (r - 1 + N) % N;
  const { B, H, Hkv, c, D } = g;
  const half = (x: Tensor): [Tensor, Tensor] => [T.slice(x, 2, 0, c), T.slice(x, 2, c, 2 * c)];
  const st = noGrad(() =>
    tidy(() => {
      const [d0, d1] = headChunks(dout);
      const [o0, o1] = half(oh);
      return {
        q: headChunks(q),
        dout: [d0, d1],
        lse: half(lse),
        // D = rowsum(dO ∘ O), FlashAttention-2's correction term
        delta: [T.sum(T.mul(d0, o0), -1, true), T.sum(T.mul(d1, o1), -1, true)],
        kv: [...headChunks(k), ...headChunks(v)],
        dq: [T.zeros(q.backend, [B, H, c, D]), T.zeros(q.backend, [B, H, c, D])],
      };
    }),
  );
  let kv = st.kv;
  // the dK/dV accumulator of the chunks a rank holds at step s ≥ 1 travels with them (s = 1 starts it)
  // and, after the last step, goes home to their owner, the next rank: cp−1 hops; each rank's own
  // chunks' step-0 part stays home (`mine`) and the accumulator of the others is added to it at the end
  let inbound: { sent: readonly Tensor[]; done: Promise<Tensor[]> } | null = null;
  let mine: Tensor[] = [];
  for (let s = 0; s < N; s++) {
    const ring = s < N - 1 ? exchange(comm, kv, next, prev, TAG_KV) : null;
    const part = noGrad(() => {
      const zeros = () => T.zeros(q.backend, [B, Hkv, c, D]);
      const d = [zeros(), zeros(), zeros(), zeros()]; // dK chunk 0, 1, dV chunk 0, 1
      for (const { qi, kj, diag } of pairs(N, r, (r - s + N) % N))
        blockBackward(st.q[qi]!, kv[kj]!, kv[2 + kj]!, st.dout[qi]!, st.lse[qi]!, st.delta[qi]!, diag, g, st.dq[qi]!, d[kj]!, d[2 + kj]!);
      return d;
    });
    if (s === 0) mine = part;
    else {
      if (inbound) {
        // the accumulator of these chunks, from the ranks they visited before
        const got = await inbound.done;
        free(inbound.sent);
        for (let i = 0; i < 4; i++) T.accumulateInto(part[i]!, got[i]!);
        free(got);
      }
      // passed on with the chunks (after the last step: home to the chunks' owner, the next rank)
      inbound = exchange(comm, part, next, prev, TAG_DKV);
    }
    if (ring) {
      const got = await ring.done;
      free(kv);
      kv = got;
    }
  }
  free(kv);
  const own = mine;
  if (inbound) {
    const got = await inbound.done;
    free(inbound.sent);
    for (let i = 0; i < 4; i++) T.accumulateInto(own[i]!, got[i]!);
    free(got);
  }
  const grads = noGrad(() => [joinChunks(st.dq[0]!, st.dq[1]!), joinChunks(own[0]!, own[1]!), joinChunks(own[2]!, own[3]!)]);
  free([...own, ...st.q, ...st.dout, ...st.lse, ...st.delta, ...st.dq]);
  return grads;
}
