// Memory scopes: every tensor created inside `tidy(fn)` is disposed when fn returns, except the
// tensors it returns and those passed to `keep()`. Training steps run in a scope, so temporaries
// are freed deterministically instead of waiting for the garbage collector.
import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

export function track(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

/** Removes t from the enclosing scopes so it outlives them (the caller now owns it). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

function collect(x: unknown, out: Set<Tensor>, depth = 0): void {
  if (x === null || typeof x !== 'object' || depth > 4) return;
  if ((x as { storage?: unknown }).storage !== undefined && (x as Tensor).shape !== undefined) {
    out.add(x as Tensor);
    return;
  }
  if (Array.isArray(x)) for (const v of x) collect(v, out, depth + 1);
  else if (x instanceof Map) for (const v of x.values()) collect(v, out, depth + 1);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out, depth + 1);
}

function close(scope: Set<Tensor>, result: unknown): void {
  const kept = new Set<Tensor>();
  collect(result, kept);
  for (const t of scope) if (!kept.has(t)) t.dispose();
  // returned tensors belong to the enclosing scope now
  const parent = stack[stack.length - 1];
  if (parent) for (const t of kept) if (scope.has(t)) parent.add(t);
}

export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    close(scope, undefined);
    throw e;
  }
  stack.pop();
  close(scope, result);
  return result;
}

/** tidy for async functions. Only one async scope may be open at a time per stack level. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope = new Set<Tensor>();
  stack.push(scope);
  const depth = stack.length;
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    if (stack.length === depth) stack.pop();
    close(scope, undefined);
    throw e;
  }
  if (stack[stack.length - 1] !== scope) throw new Error('tidyAsync: scopes were interleaved (two async scopes ran concurrently)');
  stack.pop();
  close(scope, result);
  return result;
}
