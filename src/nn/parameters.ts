// Model parameters: an ordered map of named leaf tensors with seeded initialisation. Every
// parameter draws from its own Philox range (seed, running offset), so initial weights are the same
// on every backend and rank for a given seed and model config.
import type { Backend } from '../backend/contract.js';
import * as T from '../tensor/ops.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export type Init = { kind: 'normal'; std: number } | { kind: 'ones' } | { kind: 'zeros' };

export class ParameterStore {
  readonly tensors = new Map<string, Tensor>();
  /** parameters excluded from weight decay (norms, biases) */
  readonly noDecay = new Set<string>();
  private offset = 0;

  constructor(
    readonly backend: Backend,
    readonly seed: number,
  ) {}

  create(name: string, shape: number[], init: Init, opts: { decay?: boolean } = {}): Tensor {
    if (this.tensors.has(name)) throw new Error(`parameter '${name}' created twice`);
    const n = shape.reduce((a, b) => a * b, 1);
    let t: Tensor;
    if (init.kind === 'normal') {
      t = T.random(this.backend, shape, { seed: this.seed, offset: this.offset, std: init.std });
    } else t = T.full(this.backend, shape, init.kind === 'ones' ? 1 : 0);
    this.offset += n + (n % 2); // normals come in pairs: keep ranges disjoint
    keep(t);
    t.requiresGrad = true;
    t.name = name;
    this.tensors.set(name, t);
    if (opts.decay === false) this.noDecay.add(name);
    return t;
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`no parameter named '${name}'`);
    return t;
  }

  count(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.numel;
    return n;
  }

  zeroGrad(): void {
    for (const t of this.tensors.values()) {
      t.grad?.dispose();
      t.grad = null;
    }
  }

  dispose(): void {
    this.zeroGrad();
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}
