// Reverse-mode autograd on a tape. Each differentiable op appends a node (its inputs, the tensors it
// saved, and a backward function). `backward(loss)` walks the tape in reverse, accumulates gradients
// into leaves' `.grad` (so micro-batches accumulate), and frees every saved tensor and intermediate
// gradient as soon as it is consumed; the tape is empty afterwards. A grad-ready hook (data-parallel
// gradient bucketing) is told the moment each leaf's gradient for this backward is final.
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

/**
 * Called during backward when a leaf's `.grad` holds everything this backward adds to it: after the
 * last tape node (in backward order) that has the leaf as an input. Leaves the backward never
 * reaches are not reported. A leaf's gradient must not change after it was reported.
 */
export type GradReadyHook = (leaf: Tensor) => void;

/** The hook of the backward in progress; nested backwards (activation recomputation) report to it too. */
let gradReady: { hook: GradReadyHook; reported: Set<Tensor> } | null = null;

/** Leaves of the tape by the index of the node that is their last use in backward order (lowest index). */
function finalUses(nodes: readonly GradNode[]): Map<number, Tensor[]> {
  const seen = new Set<Tensor>();
  const out = new Map<number, Tensor[]>();
  for (let i = 0; i < nodes.length; i++) {
    for (const x of nodes[i]!.inputs) {
      if (!x.requiresGrad || x.node || seen.has(x)) continue;
      seen.add(x);
      const list = out.get(i);
      if (list) list.push(x);
      else out.set(i, [x]);
    }
  }
  return out;
}

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

export interface BackwardOptions {
  /** told when each leaf's gradient is final (see GradReadyHook) */
  onGradReady?: GradReadyHook;
}

/**
 * Backpropagates from `loss` (a scalar, or any tensor with an explicit `grad` of the same shape).
 * Leaves (requiresGrad, no node) receive `.grad` (accumulated if already set).
 */
export function backward(loss: Tensor, grad?: Tensor, opts: BackwardOptions = {}): void {
  const ops = gradOps!;
  if (!loss.requiresGrad) throw new Error('backward(): the loss does not require grad (no parameter took part, or it ran under noGrad)');
  if (opts.onGradReady && gradReady) throw new Error('backward(): a grad-ready hook was passed to a nested backward; pass it to the outermost one');
  const grads = new Map<Tensor, Tensor>();
  const seed = grad ? grad.share(grad.shape, false) : ops.onesLike(loss);
  grads.set(loss, seed);
  const nodes = tape;
  tape = [];
  const enabledBefore = enabled;
  enabled = false;
  const outer = opts.onGradReady ? (gradReady = { hook: opts.onGradReady, reported: new Set() }) : null;
  const ready = gradReady;
  const finals = ready ? finalUses(nodes) : null;
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
            if (ready?.reported.has(x)) throw new Error(`backward(): leaf ${x.name ?? '(unnamed)'} received a gradient after its grad-ready hook ran`);
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
      const done = finals?.get(i);
      if (done)
        for (const leaf of done) {
          ready!.reported.add(leaf);
          ready!.hook(leaf);
        }
    }
  } finally {
    if (outer) gradReady = null;
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
