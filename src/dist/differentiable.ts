// Collectives as differentiable ops, for model-parallel layers (Megatron's mappings): each forward
// awaits its collective and records a node whose backward issues the adjoint collective, so graphs
// holding them run with `backwardAsync` (src/tensor/autograd.ts). The communicator's ordering rule
// holds in backward too: every rank of the group runs the same graph, so it issues the adjoint
// collectives in the same (reverse) order.
//   reduceFromGroup  forward: sum over the group       backward: identity          (row-parallel output)
//   copyToGroup      forward: identity                 backward: sum over the group (column-parallel input)
//   gatherFromGroup  forward: all-gather along dim 0   backward: reduce-scatter    (sequence parallel)
//   scatterToGroup   forward: reduce-scatter dim 0     backward: all-gather
//   gatherRegathered gatherFromGroup whose output is freed after its consumers' forward and
//                    all-gathered again before their backward (sequence parallel, Megatron's way)
import { gradEnabled, record } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';

function copyOf(x: Tensor): Tensor {
  const out = T.empty(x.backend, x.shape, x.dtype);
  T.assign(out, x);
  return out;
}

const track = (x: Tensor) => gradEnabled() && x.requiresGrad;

/** Σ over the group of x (a new tensor); its gradient passes through unchanged. */
export async function reduceFromGroup(x: Tensor, comm: Communicator): Promise<Tensor> {
  const out = copyOf(x);
  await comm.allReduce(out, 'sum');
  if (track(x)) record(out, `allReduce(${comm.name})`, [x], [], (g) => [g.share(g.shape)]);
  return out;
}

/** x itself (a new handle); in backward its gradient is summed over the group. */
export async function copyToGroup(x: Tensor, comm: Communicator): Promise<Tensor> {
  const out = x.share(x.shape);
  if (track(x))
    record(out, `copyTo(${comm.name})`, [x], [], async (g) => {
      const gx = copyOf(g);
      await comm.allReduce(gx, 'sum');
      return [gx];
    });
  return out;
}

function firstDimScaled(x: Tensor, factor: number, what: string): number[] {
  if (x.rank < 1) throw new RangeError(`${what}: needs a tensor with a first dimension, got a scalar`);
  return [x.shape[0]! * factor, ...x.shape.slice(1)];
}

/** The group's x concatenated along dim 0 in rank order; backward reduce-scatters the gradient. */
export async function gatherFromGroup(x: Tensor, comm: Communicator): Promise<Tensor> {
  const out = T.empty(x.backend, firstDimScaled(x, comm.size, `gatherFromGroup on '${comm.name}'`), x.dtype);
  await comm.allGather(x, out);
  if (track(x))
    record(out, `allGather(${comm.name})`, [x], [], async (g) => {
      const gx = T.empty(x.backend, x.shape, x.dtype);
      await comm.reduceScatter(g, gx, 'sum');
      return [gx];
    });
  return out;
}

/**
 * consume(gatherFromGroup(x)) as Megatron's sequence parallelism runs a column-parallel layer: the
 * gathered input (group size × x) is not kept for backward. Once `consume` ran forward, the gathered
 * buffer is freed (the graph's handles on it stay, without memory) and only this rank's block x is
 * saved; when backward reaches consume's output, x is all-gathered again into a fresh buffer before
 * consume's backward reads it. Without it every micro-batch in flight would hold the whole
 * sequence's input of each column-parallel layer.
 */
export async function gatherRegathered(x: Tensor, comm: Communicator, consume: (full: Tensor) => Tensor): Promise<Tensor> {
  const full = await gatherFromGroup(x, comm);
  const y = consume(full);
  if (!track(x) || !y.requiresGrad) return y;
  const out = y.share(y.shape);
  record(out, `regather(${comm.name})`, [y], [x, full], async (g) => {
    const [block, whole] = node.saved as [Tensor, Tensor];
    whole.storage.refill();
    await comm.allGather(block, whole);
    return [g.share(g.shape)];
  });
  const node = out.node!;
  full.storage.evict();
  return out;
}

/** This rank's block (dim 0 split in size equal parts) of Σ over the group of x; backward all-gathers. */
export async function scatterToGroup(x: Tensor, comm: Communicator): Promise<Tensor> {
  const what = `scatterToGroup on '${comm.name}'`;
  if (x.rank < 1 || x.shape[0]! % comm.size !== 0) throw new RangeError(`${what}: first dimension of [${x.shape.join(', ')}] must divide by the group size ${comm.size}`);
  const out = T.empty(x.backend, [x.shape[0]! / comm.size, ...x.shape.slice(1)], x.dtype);
  await comm.reduceScatter(x, out, 'sum');
  if (track(x))
    record(out, `reduceScatter(${comm.name})`, [x], [], async (g) => {
      const gx = T.empty(x.backend, x.shape, x.dtype);
      await comm.allGather(g, gx);
      return [gx];
    });
  return out;
}
