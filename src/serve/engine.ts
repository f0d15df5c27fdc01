// The continuous-batching engine behind `zili serve`: requests wait in a bounded queue, join the
// running batch at the next step when a KV-cache slot is free (the prompts that join together are
// prefilled in one forward and copied into their slots), and every step decodes one token for all active sequences in one batched
// forward (src/infer/batch-decode.ts). The KV cache is allocated once: as many full-context slots
// as the memory budget holds, at most maxBatch. A finished or cancelled sequence leaves the batch
// before the next step and its slot is freed.
import { bytesPerPosition, DecodeSlots, decodeStep, feedBatch } from '../infer/batch-decode.js';
import type { KvCache } from '../infer/kv-cache.js';
import { type SamplingOptions, sampleToken } from '../infer/sample.js';
import type { Transformer } from '../nn/transformer.js';
import { Rng } from '../train/rng-state.js';

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface SequenceRequest {
  prompt: readonly number[];
  maxTokens: number;
  sampling: SamplingOptions;
  seed: number;
  /** tokens that end the sequence (not emitted), e.g. <|endoftext|> */
  stopIds: ReadonlySet<number>;
  /** each new token, as soon as it is chosen */
  onToken: (id: number) => void;
  /** called once: why the sequence ended (error: the message) */
  onFinish: (reason: FinishReason, error?: string) => void;
}

export interface EngineOptions {
  /** sequences decoded together at most */
  maxBatch: number;
  /** bytes of KV cache to allocate: slots of a full context each (at most maxBatch of them) */
  kvBudgetBytes: number;
  /** requests waiting for a slot at most; beyond, submit throws QueueFullError */
  maxQueue: number;
}

export class QueueFullError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super('the server is at capacity: too many requests are waiting; retry later');
    this.name = 'QueueFullError';
  }
}

export class EngineStoppedError extends Error {
  constructor() {
    super('the server is shutting down and takes no new requests');
    this.name = 'EngineStoppedError';
  }
}

export interface EngineStats {
  active: number;
  queued: number;
  /** bytes of KV cache holding the running sequences' positions */
  kvBytesUsed: number;
  /** bytes of KV cache allocated */
  kvBytesBudget: number;
  /** sequences that can run together (KV-cache slots) */
  slots: number;
  /** tokens generated since start */
  tokensGenerated: number;
  /** prompt tokens prefilled since start */
  promptTokens: number;
  /** decoding steps run since start */
  steps: number;
  /** generated tokens per second over the last few seconds */
  tokensPerSecond: number;
}

class Sequence {
  /** its slot in the decoding batch (-1: not running) */
  slot = -1;
  generated = 0;
  last = -1;
  done = false;
  readonly rng: Rng;
  readonly started = performance.now();
  constructor(readonly req: SequenceRequest, readonly maxLen: number) {
    this.rng = new Rng(req.seed, 2);
  }
}

/** The running sequence's controls. */
export interface SequenceHandle {
  /** ends the sequence now (the client went away, or a stop string was seen); frees its slot */
  cancel(reason?: 'cancelled' | 'stop'): void;
}

const RATE_WINDOW_MS = 5000;
/** padded prompt tokens prefilled in one forward at most */
const PREFILL_TOKENS = 4096;

export class Engine {
  private readonly waiting: Sequence[] = [];
  private active: Sequence[] = [];
  private readonly kv: DecodeSlots;
  private running = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private tokens = 0;
  private promptTokens = 0;
  private steps = 0;
  private readonly recent: { t: number; n: number }[] = [];
  /** mean seconds per finished request, for Retry-After */
  private meanSeconds = 1;

  constructor(
    readonly model: Transformer,
    readonly opts: EngineOptions,
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) throw new RangeError(`maxBatch must be a whole number >= 1, got ${opts.maxBatch}`);
    if (!Number.isInteger(opts.maxQueue) || opts.maxQueue < 0) throw new RangeError(`maxQueue must be a whole number >= 0, got ${opts.maxQueue}`);
    const ctx = model.config.seqLen;
    const slotBytes = ctx * bytesPerPosition(model);
    const slots = Math.min(opts.maxBatch, Math.floor(opts.kvBudgetBytes / slotBytes));
    if (slots < 1) throw new RangeError(`the KV-cache budget of ${mib(opts.kvBudgetBytes)} cannot hold one sequence of the model's context (${ctx} positions: ${mib(slotBytes)})`);
    this.kv = new DecodeSlots(model, slots, ctx);
  }

  /** Frees the KV cache (after drain). */
  dispose(): void {
    this.kv.dispose();
  }

  /** Queues a request; it joins the batch at the next step that has room. */
  submit(req: SequenceRequest): SequenceHandle {
    if (this.stopped) throw new EngineStoppedError();
    const ctx = this.model.config.seqLen;
    if (req.prompt.length === 0 || req.prompt.length + req.maxTokens > ctx)
      throw new RangeError(`the prompt (${req.prompt.length} tokens) plus ${req.maxTokens} new tokens do not fit the model's context of ${ctx}`);
    // requests still waiting once the free slots are taken are the queue
    const free = Math.max(0, this.kv.slots - this.active.length);
    if (this.waiting.length - free >= this.opts.maxQueue)
      throw new QueueFullError(Math.max(1, Math.ceil(((this.waiting.length + 1) * this.meanSeconds) / this.kv.slots)));
    const s = new Sequence(req, req.prompt.length + req.maxTokens);
    this.waiting.push(s);
    this.kick();
    return { cancel: (reason = 'cancelled') => this.cancel(s, reason) };
  }

  stats(): EngineStats {
    const now = performance.now();
    while (this.recent.length && now - this.recent[0]!.t > RATE_WINDOW_MS) this.recent.shift();
    const n = this.recent.reduce((a, r) => a + r.n, 0);
    let positions = 0;
    for (const s of this.active) if (s.slot >= 0) positions += this.kv.lengths[s.slot]!;
    return {
      active: this.active.length,
      queued: this.waiting.length,
      kvBytesUsed: positions * bytesPerPosition(this.model),
      kvBytesBudget: this.kv.slots * this.kv.maxLen * bytesPerPosition(this.model),
      slots: this.kv.slots,
      tokensGenerated: this.tokens,
      promptTokens: this.promptTokens,
      steps: this.steps,
      tokensPerSecond: n / (RATE_WINDOW_MS / 1000),
    };
  }

  /** Takes no new requests and resolves once every queued and active one has finished. */
  drain(): Promise<void> {
    this.stopped = true;
    if (!this.running && this.waiting.length === 0 && this.active.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private cancel(s: Sequence, reason: 'cancelled' | 'stop'): void {
    if (s.done) return;
    const i = this.waiting.indexOf(s);
    if (i >= 0) this.waiting.splice(i, 1);
    this.end(s, reason);
  }

  private end(s: Sequence, reason: FinishReason, error?: string): void {
    if (s.done) return;
    s.done = true;
    this.meanSeconds = 0.8 * this.meanSeconds + 0.2 * ((performance.now() - s.started) / 1000);
    s.req.onFinish(reason, error);
  }


  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.waiting.length || this.active.length) {
        await this.admit();
        this.sweep();
        if (this.active.length) await this.step();
        this.sweep();
        // let the event loop take new requests and notice disconnects between steps
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      if (this.waiting.length || this.active.length) this.kick();
      else for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Moves waiting requests into free slots of the batch and prefills them together (one forward
   * over their right-padded prompts, at most PREFILL_TOKENS padded tokens at a time).
   */
  private async admit(): Promise<void> {
    while (this.waiting.length && this.active.length < this.kv.slots) {
      const group: Sequence[] = [];
      let longest = 0;
      while (this.waiting.length && this.active.length + group.length < this.kv.slots) {
        const s = this.waiting[0]!;
        if (s.done) {
          this.waiting.shift();
          continue;
        }
        const n = Math.max(longest, s.req.prompt.length);
        if (group.length > 0 && n * (group.length + 1) > PREFILL_TOKENS) break;
        longest = n;
        group.push(this.waiting.shift()!);
      }
      if (group.length === 0) return;
      for (const s of group) {
        s.slot = this.active.length;
        this.active.push(s);
      }
      let cache: KvCache | null = null;
      try {
        const r = await feedBatch(this.model, group.map((s) => s.req.prompt));
        cache = r.cache;
        group.forEach((s, b) => {
          this.kv.load(s.slot, r.cache, b, s.req.prompt.length);
          this.promptTokens += s.req.prompt.length;
          if (!s.done) this.emit(s, r.logits[b]!);
        });
      } catch (e) {
        for (const s of group) this.end(s, 'error', (e as Error).message);
      } finally {
        cache?.dispose();
      }
    }
  }

  /** One batched decoding step over every active sequence. */
  private async step(): Promise<void> {
    const seqs = this.active;
    let logits: Float32Array;
    try {
      logits = await decodeStep(this.model, this.kv, seqs.map((s) => s.last));
    } catch (e) {
      for (const s of seqs) this.end(s, 'error', (e as Error).message);
      return;
    }
    this.steps++;
    const V = this.model.config.vocab;
    seqs.forEach((s, b) => {
      if (!s.done) this.emit(s, logits.subarray(b * V, (b + 1) * V));
    });
  }

  /** Samples the next token of s from its logits and hands it out (or ends s). */
  private emit(s: Sequence, logits: Float32Array): void {
    const id = sampleToken(logits, s.req.sampling, s.rng);
    if (s.req.stopIds.has(id)) return this.end(s, 'stop');
    s.generated++;
    s.last = id;
    this.tokens++;
    this.recent.push({ t: performance.now(), n: 1 });
    if (this.recent.length > 100_000) this.recent.splice(0, 50_000);
    try {
      s.req.onToken(id);
    } catch (e) {
      return this.end(s, 'error', (e as Error).message);
    }
    if (!s.done && (s.generated >= s.req.maxTokens || s.req.prompt.length + s.generated >= s.maxLen)) this.end(s, 'length');
  }

  /** Frees the slots of finished sequences, moving the last running ones into them (slots 0..B-1 stay the batch). */
  private sweep(): void {
    if (!this.active.some((s) => s.done)) return;
    const kept = this.active.filter((s) => !s.done);
    kept.forEach((s, i) => {
      if (s.slot !== i) this.kv.move(s.slot, i);
      s.slot = i;
    });
    for (let i = kept.length; i < this.active.length; i++) this.kv.lengths[i] = 0;
    for (const s of this.active) if (s.done) s.slot = -1;
    this.active = kept;
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
