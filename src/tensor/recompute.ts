// Activation recomputation (gradient checkpointing): run a block without recording its
// intermediates, keep only its input, and re-run it during backward to get the gradients. Trades
// one extra forward of the block for not storing its activations.
import { backward, gradEnabled, noGrad, record, withGrad } from './autograd.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

export function recompute(fn: (x: Tensor) => Tensor, x: Tensor): Tensor {
  if (!gradEnabled()) return fn(x);
  const out = noGrad(() => tidy(() => fn(x)));
  record(out, 'recompute', [x], [x], (g) => {
    const saved = out.node!.saved[0]!;
    return tidy(() => {
      const xin = saved.share(saved.shape, false);
      xin.requiresGrad = true;
      withGrad(() => {
        const y = fn(xin);
        backward(y, g);
      });
      const gx = xin.grad;
      xin.grad = null;
      xin.dispose();
      return [gx];
    });
  });
  return out;
}
