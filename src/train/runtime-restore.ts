// Loading a checkpoint (whole tensors, from any layout it was saved under) into this rank's parallel
// runtime: each wrapper keeps its own part — data parallelism its replica (and ZeRO chunks), pipeline
// stages their chunks' parameters cut to their tensor-parallel shards, tensor parallelism its shards,
// expert parallelism its experts — or the whole model on one process. One function, used both when a
// run resumes and when a loss spike rolls back, so the two cannot disagree about a layout.
import type { Transformer } from '../nn/transformer.js';
import type { Checkpoint } from './checkpoint.js';
import type { ParallelRuntime } from './parallel-runtime.js';
import { restoreModel, restoreOptimizer } from './train-state.js';

export function restoreRuntime(rt: ParallelRuntime, model: Transformer, ck: Pick<Checkpoint, 'tensors' | 'optimizer' | 'dir'>): void {
  const { dp, expertPar, pp, tensorPar, opt } = rt;
  if (dp) dp.restore(ck.tensors, ck.optimizer, ck.dir);
  else if (expertPar) expertPar.restore(opt!, ck.tensors, ck.optimizer, ck.dir);
  else if (pp) pp.restore(ck.tensors, ck.optimizer, ck.dir);
  else {
    restoreModel(model, tensorPar ? tensorPar.cutTensors(ck.tensors) : ck.tensors, ck.dir);
    restoreOptimizer(opt!, model, tensorPar ? tensorPar.cutOptimizerState(ck.optimizer) : ck.optimizer, ck.dir);
  }
}
