// The tokens of a tensor-parallel group's replicated activations split over its ranks, as
// differentiable ops (Megatron's scatter_to / gather_from the sequence region): an MoE layer under
// tensor parallelism without --sp runs on each rank's N/tp tokens (its experts are whole, not
// tp shards), so its input is split and its output all-gathered back.
//   splitToGroup     forward: this rank's block of rows (dim 0)   backward: all-gather the gradient
//   gatherSplitBack  forward: all-gather the blocks (dim 0)        backward: this rank's block of the gradient
// Both sides of the group compute the same replicated values, so the gradient reaching a replicated
// tensor is the whole one on every rank: the split's backward gathers it from the blocks, the
// gather's backward keeps the rank's block of it.
import { gradEnabled, noGrad, record } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';

function rowBlock(x: Tensor, comm: Communicator): Tensor {
  const n = x.shape[0]! / comm.size;
  return noGrad(() => T.slice(x, 0, comm.rank * n, (comm.rank + 1) * n));
}

/** This rank's block of x's rows (dim 0 split in group-size equal parts); backward all-gathers the blocks' gradients. */
export function splitToGroup(x: Tensor, comm: Communicator): Tensor {
  if (x.rank < 1 || x.shape[0]! % comm.size !== 0) throw new RangeError(`splitToGroup on '${comm.name}': first dimension of [${x.shape.join(', ')}] must divide by the group size ${comm.size}`);
  const out = rowBlock(x, comm);
  if (gradEnabled() && x.requiresGrad)
    record(out, `split(${comm.name})`, [x], [], async (g) => {
      const gx = T.empty(x.backend, x.shape, x.dtype);
      await comm.allGather(g, gx);
      return [gx];
    });
  return out;
}

/** The group's x concatenated along dim 0 in rank order; backward keeps this rank's block of the gradient. */
export async function gatherSplitBack(x: Tensor, comm: Communicator): Promise<Tensor> {
  const out = T.empty(x.backend, [x.shape[0]! * comm.size, ...x.shape.slice(1)], x.dtype);
  await comm.allGather(x, out);
  if (gradEnabled() && x.requiresGrad) record(out, `gatherSplit(${comm.name})`, [x], [], (g) => [rowBlock(g, comm)]);
  return out;
}
