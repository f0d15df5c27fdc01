// `zili info [--preset NAME] [--json]`: the model presets with their shapes and exact parameter
// counts (total and active per token), as the engine allocates them. `--hardware`: the CPU, its
// measured peaks and the GEMM engines the cpu backend chose (info-hardware.ts).
import { formatHelp, parseArgs } from './args.js';
import { preset, presetNames } from '../nn/presets.js';
import { countParams } from '../nn/param-count.js';
import type { ModelConfig } from '../nn/config.js';

const FLAGS = {
  preset: { kind: 'string', help: 'show one preset in detail' },
  json: { kind: 'bool', help: 'print JSON' },
  hardware: { kind: 'bool', help: 'show the CPU, its measured peaks and the GEMM engines chosen by measurement' },
  retune: { kind: 'bool', help: 'with --hardware: measure the GEMM engines again (the choice applies from the next run)' },
  help: { kind: 'bool', help: 'show this help' },
} as const;

function human(n: number): string {
  if (n >= 1e12) return `${(n / 1e12).toFixed(3)}T`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(0)}K`;
}

function shape(c: ModelConfig): string {
  const moe = c.moe ? `, MoE ${c.moe.experts} experts × ${c.moe.expertFfnHidden} top-${c.moe.topK}${c.moe.sharedExperts ? ` + ${c.moe.sharedExperts} shared` : ''} (first ${c.moe.denseLayers} dense)` : '';
  return `${c.layers} layers, d_model ${c.dModel}, ${c.heads} heads / ${c.kvHeads} kv, ${c.ffnKind} ${c.ffnHidden}, vocab ${c.vocab}, seq ${c.seqLen}${c.tiedEmbeddings ? ', tied' : ''}${moe}`;
}

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'info');
  if (a.help) {
    console.log(formatHelp('info', FLAGS));
    return 0;
  }
  if (a.hardware) {
    const { hardwareReport } = await import('./info-hardware.js');
    const r = hardwareReport({ retune: !!a.retune });
    console.log(a.json ? JSON.stringify(r.json) : r.text);
    return 0;
  }
  const names = a.preset ? [a.preset] : presetNames();
  const rows = names.map((n) => {
    const config = preset(n);
    return { name: n, config, params: countParams(config) };
  });
  if (a.json) {
    console.log(JSON.stringify(rows.map((r) => ({ name: r.name, config: r.config, params: r.params }))));
    return 0;
  }
  for (const r of rows) {
    console.log(`${r.name.padEnd(9)} ${human(r.params.total).padStart(8)} total ${human(r.params.active).padStart(8)} active   ${shape(r.config)}`);
    if (a.preset) {
      const p = r.params;
      console.log(`  exact: ${p.total.toLocaleString('en-US')} parameters, ${p.active.toLocaleString('en-US')} active per token`);
      console.log(`  embedding ${p.embedding.toLocaleString('en-US')}, attention ${p.attention.toLocaleString('en-US')}, dense FFN ${p.ffnDense.toLocaleString('en-US')}, experts ${p.experts.toLocaleString('en-US')}, router ${p.router.toLocaleString('en-US')}, norms ${p.norms.toLocaleString('en-US')}`);
    }
  }
  return 0;
}
