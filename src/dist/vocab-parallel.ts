// Vocabulary-parallel embedding and cross-entropy (Megatron's VocabParallelEmbedding and
// vocab_parallel_cross_entropy): each tp rank holds the rows [lo, lo + V/tp) of the vocabulary, so
// neither the [V, d] table nor the [tokens, V] logits exist whole on any rank.
//   embedding: each rank looks up the ids it holds (the others give zero rows); the ranks' partial
//              rows are summed (all-reduce, or reduce-scatter over the tokens with sequence parallel)
//   cross-entropy: loss = log Σ_v exp(l_v − m) − (l_target − m), with the row max m all-reduced (max)
//              and the two sums all-reduced (sum) through differentiable collectives.
import * as T from '../tensor/ops.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Communicator } from './communicator.js';
import { reduceFromGroup, scatterToGroup } from './differentiable.js';

/** ids (host, global vocabulary) → this rank's table rows, with the ids it does not hold → row 0 and mask 0. */
function localIds(ids: Int32Array, lo: number, rows: number): { local: Int32Array; mask: Float32Array } {
  const local = new Int32Array(ids.length), mask = new Float32Array(ids.length);
  ids.forEach((id, i) => {
    if (id >= lo && id < lo + rows) {
      local[i] = id - lo;
      mask[i] = 1;
    }
  });
  return { local, mask };
}

/**
 * Token embeddings [N, d] of ids (host, N = batch·seq) from this rank's vocabulary shard `table`
 * [V/tp, d]; with sequenceParallel this rank's block of N/tp tokens.
 */
export async function vocabParallelEmbedding(table: Tensor, ids: Int32Array, comm: Communicator, sequenceParallel: boolean): Promise<Tensor> {
  const rows = table.shape[0]!;
  const { local, mask } = localIds(ids, comm.rank * rows, rows);
  const emb = T.embedding(table, T.tensor(table.backend, local, [ids.length], 'i32'));
  const partial = T.mul(emb, T.tensor(table.backend, mask, [ids.length, 1]));
  return sequenceParallel ? scatterToGroup(partial, comm) : reduceFromGroup(partial, comm);
}

/** Mean cross-entropy of this rank's logits [N, V/tp] against global targets (host; < 0 ignored), equal on every rank. */
export async function vocabParallelCrossEntropy(logits: Tensor, targets: Int32Array, comm: Communicator): Promise<Tensor> {
  const [N, Vl] = logits.shape as [number, number];
  const be = logits.backend;
  const m = noGrad(() => T.max(logits, 1, true));
  await comm.allReduce(m, 'max');
  const z = T.sub(logits, m);
  const sumExp = await reduceFromGroup(T.sum(T.exp(z), 1, true), comm);
  const cls = T.tensor(be, Float32Array.from({ length: Vl }, (_, i) => comm.rank * Vl + i), [1, Vl]);
  const onehot = T.eq(cls, T.tensor(be, Float32Array.from(targets), [N, 1]));
  const picked = await reduceFromGroup(T.sum(T.mul(z, onehot), 1, true), comm);
  const valid = Float32Array.from(targets, (t) => (t >= 0 ? 1 : 0));
  const count = Math.max(1, valid.reduce((a, b) => a + b, 0));
  const rowLoss = T.mul(T.sub(T.log(sumExp), picked), T.tensor(be, valid, [N, 1]));
  return T.mulScalar(T.sum(rowLoss), 1 / count);
}
