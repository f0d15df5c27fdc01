// Whether a model's weights are all finite: skipping an update only helps while they are (a NaN from
// one bad batch); once an update has put a NaN or Inf into them every later step is lost, and the run
// must stop. One device reduction and one host read.
import type { Transformer } from '../../nn/transformer.js';
import * as T from '../../tensor/ops.js';
import { noGrad } from '../../tensor/autograd.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';

export async function weightsFinite(model: Transformer): Promise<boolean> {
  const total = noGrad(() =>
    tidy(() => {
      let acc: Tensor | null = null;
      for (const p of model.params.tensors.values()) {
        const s = T.sum(T.square(p));
        acc = acc ? T.add(acc, s) : s;
      }
      return acc;
    }),
  );
  if (!total) return true;
  const ss = await total.item();
  total.dispose();
  return Number.isFinite(ss);
}
