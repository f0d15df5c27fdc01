// Summing gradients over the data-parallel replicas of a model-parallel rank (the dp group of the
// mesh: the ranks holding the same pipeline stage and tensor-parallel shard). Used where ZeRO's
// bucketed reduction of data-parallel.ts does not apply (pipeline and tensor parallel steps, which
// reduce once the whole schedule has run). A parameter may have a gradient on one replica and none
// on another (an expert no token of that replica chose): a max-reduction of has-a-gradient flags
// comes first, so every replica issues the same all-reduces, and a parameter no replica touched stays
// without a gradient (AdamW leaves it alone, as one process would).
import * as T from '../tensor/ops.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';

/** Σ over `dp` of every parameter's gradient, in place (collective over dp, same parameter order on every rank). */
export async function reduceGradsOverReplicas(params: ReadonlyMap<string, Tensor>, dp: Communicator): Promise<void> {
  if (dp.size === 1) return;
  const list = [...params.values()];
  const present = Int32Array.from(list, (p) => (p.grad ? 1 : 0));
  await dp.allReduce(present, 'max');
  const flights: Promise<void>[] = [];
  list.forEach((p, i) => {
    if (!present[i]) return;
    p.grad ??= keep(T.zerosLike(p));
    flights.push(dp.allReduce(p.grad, 'sum'));
  });
  await Promise.all(flights);
}
