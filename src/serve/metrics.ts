// /metrics in the Prometheus text exposition format: request counts by endpoint and status, the
// batch and the queue, KV-cache use against its budget, token counters and the recent token rate.
import type { EngineStats } from './engine.js';

export class RequestCounter {
  private readonly counts = new Map<string, number>();

  add(endpoint: string, status: number): void {
    const k = `${endpoint}\0${status}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  entries(): { endpoint: string; status: number; count: number }[] {
    return [...this.counts].map(([k, count]) => {
      const [endpoint, status] = k.split('\0') as [string, string];
      return { endpoint, status: Number(status), count };
    });
  }
}

function metric(out: string[], name: string, type: 'counter' | 'gauge', help: string, samples: [string, number][]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, v] of samples) out.push(`${name}${labels} ${Number.isFinite(v) ? v : 0}`);
}

export function prometheusText(s: EngineStats, requests: RequestCounter): string {
  const out: string[] = [];
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  metric(out, 'zili_requests_total', 'counter', 'HTTP requests answered, by endpoint and status code',
    requests.entries().map((e) => [`{endpoint="${esc(e.endpoint)}",status="${e.status}"}`, e.count]));
  metric(out, 'zili_requests_running', 'gauge', 'sequences in the decoding batch', [['', s.active]]);
  metric(out, 'zili_queue_length', 'gauge', 'requests waiting for a batch slot', [['', s.queued]]);
  metric(out, 'zili_kv_cache_bytes', 'gauge', 'bytes of KV cache reserved by running sequences', [['', s.kvBytesUsed]]);
  metric(out, 'zili_kv_cache_budget_bytes', 'gauge', 'KV-cache budget in bytes', [['', s.kvBytesBudget]]);
  metric(out, 'zili_kv_cache_usage_ratio', 'gauge', 'reserved KV cache / budget', [['', s.kvBytesUsed / s.kvBytesBudget]]);
  metric(out, 'zili_prompt_tokens_total', 'counter', 'prompt tokens prefilled', [['', s.promptTokens]]);
  metric(out, 'zili_generation_tokens_total', 'counter', 'tokens generated', [['', s.tokensGenerated]]);
  metric(out, 'zili_decode_steps_total', 'counter', 'batched decoding steps', [['', s.steps]]);
  metric(out, 'zili_generation_tokens_per_second', 'gauge', 'tokens generated per second over the last 5 s', [['', s.tokensPerSecond]]);
  return out.join('\n') + '\n';
}
