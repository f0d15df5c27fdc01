// Reverse-mode autograd over live graphs. Each differentiable op records a node (its inputs, the
// tensors it saved, a backward function) reachable from its output. `backward(loss)` walks only the
// nodes reachable from `loss`, in reverse recording order, accumulates gradients into leaves' `.grad`
// (so micro-batches accumulate), and frees each saved tensor and intermediate gradient as soon as it
// is consumed; graphs of other live outputs (a pipeline's other micro-batches in flight) are left
// untouched. A stage of a pipeline seeds the gradient of its output (`backward(out, grad)`) and reads
// the gradient of its input from a leaf (`stageInput`). A node's backward may return a Promise (a
// collective in backward, see src/dist/differentiable.ts): such graphs run with `backwardAsync`.
// A grad-ready hook (data-parallel gradient bucketing) is told the moment each leaf's gradient for
// this backward is final; a pre-backward hook (`beforeBackward`, ZeRO-3 gathering a block's weights)
// runs the moment backward reaches a marked tensor, before the ops that produced it.
import type { Tensor } from './tensor.js';
import { keep } from './scope.js';

export interface GradNode {
  op: string;
  inputs: Tensor[];
  /** handles the backward needs; released after the node runs or when the graph is freed */
  saved: Tensor[];
  /** gradient of the output → gradients of the inputs (null where an input needs none); a Promise only under backwardAsync */
  backward(grad: Tensor): (Tensor | null)[] | Promise<(Tensor | null)[]>;
  output: Tensor;
  /** recording order: a node runs in backward after every node recorded later that uses its output */
  seq: number;
}

/** Nodes recorded and not yet consumed by a backward nor cleared, in recording order. */
const live = new Set<GradNode>();
let nextSeq = 0;
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

/** Records an op; `saved` are new untracked handles the node owns. */
export function record(output: Tensor, op: string, inputs: Tensor[], saved: Tensor[], backward: GradNode['backward']): void {
  const node: GradNode = { op, inputs, saved: saved.map((t) => t.share(t.shape, false)), backward, output, seq: nextSeq++ };
  output.requiresGrad = true;
  output.node = node;
  live.add(node);
}

/** Live nodes over every graph (0 once every graph was run or cleared). */
export function tapeLength(): number {
  return live.size;
}

/** The ops of the live nodes (for leak messages in tests). */
export function liveOps(): string[] {
  return [...live].map((n) => n.op);
}

function freeNode(n: GradNode): void {
  for (const s of n.saved) s.dispose();
  n.output.node = null;
  live.delete(n);
}

/** Drops every live graph without running it (e.g. after an evaluation that recorded by mistake). */
export function clearTape(): void {
  for (const n of [...live]) freeNode(n);
}

/** Drops the graph reachable from `output` without running it (a micro-batch abandoned mid-pipeline). */
export function freeGraph(output: Tensor): void {
  for (const n of reachable(output)) freeNode(n);
}

/**
 * A stage's input in a pipeline: a leaf on the activation `t` (received from the previous stage)
 * whose `.grad` collects the gradient that the stage's backward sends back. `t` must not be the
 * output of a recorded op (use `detach` first).
 */
export function stageInput(t: Tensor): Tensor {
  if (t.node) throw new Error(`stageInput(): tensor #${t.id} is the output of a recorded op; detach it first`);
  t.requiresGrad = true;
  return t;
}

/** A new handle on t's values that is no op's output and needs no gradient (the boundary of a stage). */
export function detach(t: Tensor): Tensor {
  return t.share(t.shape);
}

/**
 * Called during backward when a leaf's `.grad` holds everything this backward adds to it: after the
 * last node (in backward order) that has the leaf as an input. Leaves the backward never reaches are
 * not reported. A leaf's gradient must not change after it was reported.
 */
export type GradReadyHook = (leaf: Tensor) => void;

/** The hook of the backward in progress; nested backwards (activation recomputation) report to it too. */
let gradReady: { hook: GradReadyHook; reported: Set<Tensor> } | null = null;

/** The nodes reachable from `output`, in recording order. */
function reachable(output: Tensor): GradNode[] {
  const seen = new Set<GradNode>();
  const stack: GradNode[] = output.node ? [output.node] : [];
  while (stack.length) {
    const n = stack.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    for (const x of n.inputs) if (x.node && !seen.has(x.node)) stack.push(x.node);
  }
  return [...seen].sort((a, b) => a.seq - b.seq);
}

/** Leaves of the graph by the index of the node that is their last use in backward order (lowest index). */
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

type NodeGrads = (Tensor | null)[] | Promise<(Tensor | null)[]>;

/**
 * One backward as a generator: it yields each node's backward result and expects the resolved
 * gradients back, so the same walk runs synchronously (`backward`) or awaiting collectives
 * (`backwardAsync`).
 */
function* walk(loss: Tensor, grad: Tensor | undefined, opts: BackwardOptions): Generator<NodeGrads, void, (Tensor | null)[]> {
  const ops = gradOps!;
  if (!loss.requiresGrad) throw new Error('backward(): the loss does not require grad (no parameter took part, or it ran under noGrad)');
  if (grad && (grad.shape.length !== loss.shape.length || grad.shape.some((d, i) => d !== loss.shape[i])))
    throw new Error(`backward(): the seed gradient [${grad.shape.join(', ')}] does not match the output [${loss.shape.join(', ')}]`);
  if (!loss.node) throw new Error('backward(): the output is a leaf (nothing was recorded from it, or its graph was already run: one backward per graph)');
  if (opts.onGradReady && gradReady) throw new Error('backward(): a grad-ready hook was passed to a nested backward; pass it to the outermost one');
  const grads = new Map<Tensor, Tensor>();
  const nodes = reachable(loss);
  grads.set(loss, grad ? grad.share(grad.shape, false) : ops.onesLike(loss));
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
        const res = node.backward(g);
        // other work may record while an asynchronous backward waits (another rank's stage in a test)
        enabled = enabledBefore;
        const gin = yield res;
        enabled = false;
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
            if (ready?.reported.has(x)) throw new Error(`backward(): leaf ${x.name || '(unnamed)'} received a gradient after its grad-ready hook ran`);
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
      freeNode(node);
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
    // a backward that failed midway leaves no half-run graph behind
    for (const n of nodes) if (live.has(n)) freeNode(n);
  }
}

/**
 * Backpropagates from `loss` (a scalar, or any tensor with an explicit `grad` of the same shape:
 * the seed a pipeline stage receives for its output) through the graph reachable from it, then frees
 * that graph. Leaves (requiresGrad, no node) receive `.grad` (accumulated if already set).
 */
export function backward(loss: Tensor, grad?: Tensor, opts: BackwardOptions = {}): void {
  const it = walk(loss, grad, opts);
  let r = it.next();
  while (!r.done) {
    const gin = r.value;
    if (gin instanceof Promise) {
      gin.catch(() => undefined);
      it.throw(new Error('backward(): the graph holds a collective (its backward is asynchronous); use backwardAsync'));
    }
    r = it.next(gin as (Tensor | null)[]);
  }
}

/** backward for graphs whose nodes communicate in backward (differentiable collectives). */
export async function backwardAsync(loss: Tensor, grad?: Tensor, opts: BackwardOptions = {}): Promise<void> {
  const it = walk(loss, grad, opts);
  let r = it.next();
  while (!r.done) r = it.next(await r.value);
}

/**
 * A pre-backward hook: a new handle on x whose gradient passes through unchanged, calling `fn` the
 * moment backward reaches it, i.e. before anything recorded before it (the ops that produced x) runs
 * its backward. ZeRO-3 gathers a block's weights there. Without recording, just a new handle.
 */
export function beforeBackward(x: Tensor, fn: () => void): Tensor {
  const y = x.share(x.shape);
  if (!needsGrad([x])) return y;
  record(y, 'beforeBackward', [x], [], (g) => {
    fn();
    return [g.share(g.shape)];
  });
  return y;
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
