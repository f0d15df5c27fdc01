// Reverse-mode autograd on a tape. Each differentiable op appends a node (its inputs, the tensors it
// saved, and a backward function). `backward(loss)` walks the tape in reverse, accumulates gradients
// into leaves' `.grad` (so micro-batches accumulate), and frees every saved tensor and intermediate
// gradient as soon as it is consumed; the tape is empty afterwards.
import type { Tensor } from './tensor.js';
import { keep } from './scope.js';

export interface GradNode {
  op: string;
  inputs: Tensor[];
  /** handles the backward needs; released after the node runs or when the tape is cleared */
  saved: Tensor[];
  /** gradient of the output → gradients of the inputs (null where an input needs none) */
  backward(grad: Tensor): (Tensor | null)[];
  output: Tensor;
}

let tape: GradNode[] = [];
let enabled = true;

export function gradEnabled(): boolean {
  return enabled;
}

/** Runs fn with gradient recording off (evaluation, generation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = enabled;
  enabled = false;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  const prev = enabled;
  enabled = false;
  try {
    return await fn();
  } finally {
    enabled = prev;
  }
}

export function needsGrad(inputs: readonly Tensor[]): boolean {
  return enabled && inputs.some((t) => t.requiresGrad);
}

/** Records an op on the tape; `saved` are new untracked handles the node owns. */
export function record(output: Tensor, op: string, inputs: Tensor[], saved: Tensor[], backward: (g: Tensor) => (Tensor | null)[]): void {
  const node: GradNode = { op, inputs, saved: saved.map((t) => t.share(t.shape, false)), backward, output };
  output.requiresGrad = true;
  output.node = node;
  tape.push(node);
}

export function tapeLength(): number {
  return tape.length;
}

/** Drops the tape without running it (e.g. after an evaluation that recorded by mistake). */
export function clearTape(): void {
  for (const n of tape) for (const s of n.saved) s.dispose();
  for (const n of tape) n.output.node = null;
  tape = [];
}

export type GradHook = (ops: GradOps) => void;
/** The few ops backward itself needs, injected by ops.ts to avoid an import cycle. */
export interface GradOps {
  add(a: Tensor, b: Tensor): Tensor;
  onesLike(t: Tensor): Tensor;
  accumulateInto(target: Tensor, g: Tensor): void;
}
let gradOps: GradOps | null = null;
export function installGradOps(ops: GradOps): void {
  gradOps = ops;
}

/**
 * Backpropagates from `loss` (a scalar, or any tensor with an explicit `grad` of the same shape).
 * Leaves (requiresGrad, no node) receive `.grad` (accumulated if already set).
 */
export function backward(loss: Tensor, grad?: Tensor): void {
  const ops = gradOps!;
  if (!loss.requiresGrad) throw new Error('backward(): the loss does not require grad (no parameter took part, or it ran under noGrad)');
  const grads = new Map<Tensor, Tensor>();
  const seed = grad ? grad.share(grad.shape, false) : ops.onesLike(loss);
  grads.set(loss, seed);
  const nodes = tape;
  tape = [];
  const enabledBefore = enabled;
  enabled = false;
  try {
    for (let i = nodes.length - 1; i >= 0; i--) {
      const node = nodes[i]!;
      const g = grads.get(node.output);
      if (g) {
        grads.delete(node.output);
        const gin = node.backward(g);
        g.dispose();
        for (let j = 0; j < node.inputs.length; j++) {
          const x = node.inputs[j]!;
          const gx = gin[j];
          if (!gx) continue;
          if (!x.requiresGrad) {
            gx.dispose();
            continue;
          }
          if (!x.node) {
            if (x.grad) {
              ops.accumulateInto(x.grad, gx);
              gx.dispose();
            } else x.grad = keep(gx);
            continue;
          }
          const prev = grads.get(x);
          if (prev) {
            grads.set(x, ops.add(prev, gx));
            prev.dispose();
            gx.dispose();
          } else grads.set(x, gx);
        }
      }
      for (const s of node.saved) s.dispose();
      node.output.node = null;
    }
  } finally {
    enabled = enabledBefore;
    for (const g of grads.values()) g.dispose();
  }
}

/** Runs fn with gradient recording on (activation recomputation re-records inside backward). */
export function withGrad<T>(fn: () => T): T {
  const prev = enabled;
  enabled = true;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}
