// One optimizer step: `accum` micro-batches of forward + backward (gradients accumulate in .grad,
// every temporary freed by tidy), one AdamW update at the step's learning rate with the gradients
// scaled by 1/accum and clipped, the MoE routing biases moved toward balance using the expert loads
// of all the step's micro-batches, and the gradients cleared. Between micro-batches it yields to the
// event loop, so a Ctrl-C is seen within one micro-batch: `shouldStop` then abandons the step
// (gradients cleared, weights and optimizer untouched) and it returns null.
import type { TokenLoader } from '../data/loader.js';
import type { Transformer } from '../nn/transformer.js';
import type { AdamW } from '../optim/adamw.js';
import { backward } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { tidy } from '../tensor/scope.js';
import { addLoads } from '../nn/moe.js';

export interface StepResult {
  /** mean cross-entropy over the step's micro-batches */
  loss: number;
  /** mean MoE balancing loss (0 for dense models and bias balancing) */
  aux: number;
  /** global gradient norm before clipping */
  gradNorm: number;
  /** the update was skipped: the loss or the gradient norm was not finite (only with skipNonFinite) */
  skipped?: boolean;
}

export interface StepOptions {
  /** a non-finite loss or gradient norm skips the update (weights and moments untouched) */
  skipNonFinite?: boolean;
  /** fault injection: the step's loss is NaN */
  poisonLoss?: boolean;
}

/**
 * One micro-batch: forward and backward of the loader's next batch (gradients accumulate in .grad,
 * temporaries freed), its expert loads added to `loads`. `around` runs right after backward, inside
 * the scope (data parallelism flushes its gradient buckets there). Returns the batch's mean
 * cross-entropy and MoE balancing loss.
 */
export async function microBatch(
  model: Transformer,
  loader: TokenLoader,
  loads: Map<number, number[]>,
  backwardOpts: Parameters<typeof backward>[2] = {},
  around?: () => void,
): Promise<{ ce: number; aux: number }> {
  const be = model.backend;
  const b = loader.next();
  const [ce, aux] = tidy(() => {
    const ids = T.tensor(be, b.input, [loader.batch, loader.seqLen], 'i32');
    const r = model.loss(ids, T.tensor(be, b.target, [b.target.length], 'i32'));
    backward(r.loss, undefined, backwardOpts);
    around?.();
    return [r.ce, r.aux];
  });
  // the two scalars are read after the step's work is enqueued (async devices return them later)
  const out = { ce: await ce.item(), aux: aux ? await aux.item() : 0 };
  ce.dispose();
  aux?.dispose();
  addLoads(loads, model.lastLoads);
  return out;
}

export async function trainStep(
  model: Transformer,
  opt: AdamW,
  loader: TokenLoader,
  accum: number,
  lr: number,
  shouldStop: () => boolean = () => false,
  opts: StepOptions = {},
): Promise<StepResult | null> {
  let ceSum = 0, auxSum = 0;
  const loads = new Map<number, number[]>();
  for (let micro = 0; micro < accum; micro++) {
    if (micro > 0) {
      await new Promise((r) => setImmediate(r)); // lets a signal handler run
      if (shouldStop()) {
        model.params.zeroGrad();
        return null;
      }
    }
    const r = await microBatch(model, loader, loads);
    ceSum += r.ce;
    auxSum += r.aux;
  }
  if (opts.poisonLoss) ceSum = NaN;
  const loss = ceSum / accum;
  if (opts.skipNonFinite && !Number.isFinite(loss)) {
    model.params.zeroGrad();
    return { loss, aux: auxSum / accum, gradNorm: NaN, skipped: true };
  }
  const gradNorm = await opt.update(lr, 1 / accum, opts.skipNonFinite);
  if (opts.skipNonFinite && !Number.isFinite(gradNorm)) {
    model.params.zeroGrad();
    return { loss, aux: auxSum / accum, gradNorm, skipped: true };
  }
  for (const [layer, l] of loads) model.lastLoads.set(layer, l);
  model.updateRouterBias();
  model.params.zeroGrad();
  return { loss, aux: auxSum / accum, gradNorm };
}
