// Validation loss: mean next-token cross-entropy over the first `batches` batches of the
// validation split, read in order (no shuffle) from the start each time, so successive evaluations
// of a run measure the same tokens and compare.
import type { TokenLoader } from '../data/loader.js';
import type { Transformer } from '../nn/transformer.js';
import { noGrad, noGradAsync } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { tidy, tidyAsync } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** Builds a fresh loader at sample 0 of the validation split. */
export type ValLoaderFactory = () => TokenLoader;

/** Mean over `batches` validation batches of `ce` (an asynchronous forward's mean cross-entropy, e.g. one that communicates), without gradients. */
export async function validationLossAsync(openVal: ValLoaderFactory, batches: number, ce: (b: { input: Int32Array; target: Int32Array }, loader: TokenLoader) => Promise<Tensor>): Promise<number> {
  const loader = openVal();
  try {
    let sum = 0;
    for (let i = 0; i < batches; i++) {
      const b = loader.next();
      const loss = await noGradAsync(() => tidyAsync(() => ce(b, loader)));
      sum += await loss.item();
      loss.dispose();
    }
    return sum / batches;
  } finally {
    loader.close();
  }
}

export async function validationLoss(model: Transformer, openVal: ValLoaderFactory, batches: number): Promise<number> {
  const loader = openVal();
  try {
    const be = model.backend;
    let sum = 0;
    for (let i = 0; i < batches; i++) {
      const b = loader.next();
      const ce = noGrad(() =>
        tidy(() => {
          const ids = T.tensor(be, b.input, [loader.batch, loader.seqLen], 'i32');
          return model.loss(ids, T.tensor(be, b.target, [b.target.length], 'i32')).ce;
        }),
      );
      sum += await ce.item();
      ce.dispose();
    }
    return sum / batches;
  } finally {
    loader.close();
  }
}
