// Test helper: N ranks in one process. Each rank is a Communicator whose collectives complete when
// every rank of the group has issued its matching call (the k-th call of each rank), like MPI's
// ordering rule; data are read when a call is issued and written when the last rank arrives.
// Lets the data-parallel and ZeRO logic run in `node --test` without mpirun.
import type { CommBuffer, CommReduceOp, Communicator } from '../src/dist/communicator.js';
import type { HostArray } from '../src/tensor/dtype.js';
import { Tensor } from '../src/tensor/tensor.js';

interface Call {
  op: string;
  data: Float64Array;
  finish: (result: Float64Array) => void;
  /** allToAllV: elements sent to each rank */
  counts?: readonly number[];
}

function readBuf(b: CommBuffer): HostArray {
  return b instanceof Tensor ? b.dataSync() : b;
}

function writeBuf(b: CommBuffer, values: Float64Array, from = 0): void {
  const host = readBuf(b);
  const out = new (host.constructor as { new (n: number): HostArray })(host.length);
  for (let i = 0; i < host.length; i++) (out as Float32Array)[i] = values[from + i]!;
  if (b instanceof Tensor) b.backend.write(b.buf, out);
  else (b as Float32Array).set(out as Float32Array);
}

export function loopbackGroup(size: number): Communicator[] {
  const queues: Call[][] = Array.from({ length: size }, () => []);
  const settle = (op: string, reduce: (calls: Call[]) => void) => {
    if (queues.every((q) => q.length > 0)) {
      const calls = queues.map((q) => q.shift()!);
      for (const c of calls) if (c.op !== op && c.op !== calls[0]!.op) throw new Error(`loopback: mismatched collectives ${calls.map((x) => x.op).join(', ')}`);
      reduce(calls);
    }
  };
  const sumOf = (calls: Call[], n: number, at: (c: Call, i: number) => number, op: CommReduceOp) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      // f32 pairwise order like a ring would not matter for these tests; sum in rank order in f32
      let acc = at(calls[0]!, i);
      for (let r = 1; r < calls.length; r++) {
        const x = at(calls[r]!, i);
        acc = op === 'sum' ? Math.fround(acc + x) : op === 'max' ? Math.max(acc, x) : Math.min(acc, x);
      }
      out[i] = acc;
    }
    return out;
  };
  // point to point: a message waits in (src, dst, tag)'s queue for its receive, or a receive for its message
  const mail = new Map<string, { data: Float64Array; delivered: () => void }[]>();
  const wanted = new Map<string, { buf: CommBuffer; received: () => void }[]>();
  const p2pKey = (src: number, dst: number, tag: number) => `${src}>${dst}#${tag}`;
  const ranks: Communicator[] = [];
  for (let rank = 0; rank < size; rank++) {
    const issue = (op: string, data: Float64Array, finish: (r: Float64Array) => void, reduce: (calls: Call[]) => void, counts?: readonly number[]) =>
      new Promise<void>((resolve) => {
        queues[rank]!.push({ op, data, counts, finish: (r) => { finish(r); resolve(); } });
        settle(op, reduce);
      });
    const c: Communicator = {
      kind: 'local',
      name: 'loopback',
      rank,
      size,
      worldRank: rank,
      allReduce: (buf, op = 'sum') =>
        issue('allReduce', Float64Array.from(readBuf(buf) as Float32Array), (r) => writeBuf(buf, r), (calls) => {
          const res = sumOf(calls, calls[0]!.data.length, (k, i) => k.data[i]!, op);
          for (const k of calls) k.finish(res);
        }),
      reduceScatter: (input, output, op = 'sum') =>
        issue('reduceScatter', Float64Array.from(readBuf(input) as Float32Array), (r) => writeBuf(output, r), (calls) => {
          const n = calls[0]!.data.length / size;
          calls.forEach((k, r) => k.finish(sumOf(calls, n, (x, i) => x.data[r * n + i]!, op)));
        }),
      allGather: (input, output) =>
        issue('allGather', Float64Array.from(readBuf(input) as Float32Array), (r) => writeBuf(output, r), (calls) => {
          const all = new Float64Array(calls.reduce((s, k) => s + k.data.length, 0));
          let at = 0;
          for (const k of calls) {
            all.set(k.data, at);
            at += k.data.length;
          }
          for (const k of calls) k.finish(all);
        }),
      broadcast: (buf, root) =>
        issue('broadcast', Float64Array.from(readBuf(buf) as Float32Array), (r) => writeBuf(buf, r), (calls) => {
          for (const k of calls) k.finish(calls[root]!.data);
        }),
      barrier: () => issue('barrier', new Float64Array(0), () => {}, (calls) => calls.forEach((k) => k.finish(new Float64Array(0)))),
      send: (buf, dst, tag = 0) =>
        new Promise<void>((delivered) => {
          const k = p2pKey(rank, dst, tag);
          const data = Float64Array.from(readBuf(buf) as Float32Array);
          const w = wanted.get(k)?.shift();
          if (w) {
            writeBuf(w.buf, data);
            w.received();
            delivered();
          } else mail.set(k, [...(mail.get(k) ?? []), { data, delivered }]);
        }),
      recv: (buf, src, tag = 0) =>
        new Promise<void>((received) => {
          const k = p2pKey(src, rank, tag);
          const m = mail.get(k)?.shift();
          if (m) {
            writeBuf(buf, m.data);
            m.delivered();
            received();
          } else wanted.set(k, [...(wanted.get(k) ?? []), { buf, received }]);
        }),
      allToAllV: (input, sendCounts, output, recvCounts) =>
        issue('allToAllV', Float64Array.from(readBuf(input) as Float32Array), (r) => writeBuf(output, r), (calls) => {
          // rank r receives, in rank order, the block each rank q addressed to r
          calls.forEach((k, r) => {
            const parts = calls.map((q) => {
              const at = q.counts!.slice(0, r).reduce((a, b) => a + b, 0);
              return q.data.subarray(at, at + q.counts![r]!);
            });
            const all = new Float64Array(parts.reduce((a, p) => a + p.length, 0));
            parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
            k.finish(all);
          });
        }, sendCounts).then(() => {
          if (recvCounts.reduce((a, b) => a + b, 0) !== (readBuf(output) as Float32Array).length) throw new Error('loopback: allToAllV recvCounts do not match the output');
        }),
      split: () => Promise.reject(new Error('loopback: split not implemented')),
      setStep: () => {},
      abort: (m: string) => {
        throw new Error(m);
      },
    };
    ranks.push(c);
  }
  return ranks;
}
