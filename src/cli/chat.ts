// `zili chat`: a conversation with a checkpoint in the terminal. Each line you type is a user
// message; the reply streams as it is generated and joins the conversation, which is rendered with
// the run's chat template every turn (so the model sees the whole history, up to its context).
// `/reset` forgets the conversation, `/exit` (or end of input) quits. Works on a pipe too.
import * as readline from 'node:readline';
import { formatHelp, parseArgs, UsageError, type FlagSpecs } from './args.js';
import { getBackend } from '../backend/registry.js';
import { Utf8Stream } from '../infer/generate.js';
import { validateSampling } from '../infer/sample.js';
import { type ChatMessage, renderChat } from '../serve/chat-template.js';
import { Engine, type FinishReason } from '../serve/engine.js';
import { bytesPerPosition } from '../infer/batch-decode.js';
import { loadForInference } from '../serve/load-model.js';
import { StopText } from '../serve/stop-text.js';

const FLAGS = {
  checkpoint: { kind: 'string', help: "a run's --out folder (its newest checkpoint) or one step-NNNNNNNN folder" },
  system: { kind: 'string', help: 'a system message that starts every conversation' },
  'max-tokens': { kind: 'int', help: 'new tokens per reply at most', default: 256 },
  temperature: { kind: 'number', help: 'sampling temperature (0: greedy)', default: 0.7 },
  'top-p': { kind: 'number', help: 'nucleus sampling threshold (1: all)', default: 0.95 },
  seed: { kind: 'int', help: 'sampling seed', default: 0 },
  tokenizer: { kind: 'string', help: 'tokenizer.json (default: the one in the run folder)' },
  backend: { kind: 'string', help: 'compute backend', default: 'cpu' },
  help: { kind: 'bool', help: 'show this help' },
} satisfies FlagSpecs;

export async function run(argv: string[]): Promise<number> {
  const a = parseArgs(argv, FLAGS, 'chat');
  if (a.help) {
    console.log(formatHelp('chat', FLAGS, '--checkpoint DIR [options]') + '\n\nin the chat: /reset forgets the conversation, /exit quits');
    return 0;
  }
  if (a._.length) throw new UsageError(`unexpected argument '${a._[0]}' (options start with --)`);
  if (!a.checkpoint) throw new UsageError('name the checkpoint with --checkpoint DIR (a run folder or a step folder)');
  const sampling = { temperature: a.temperature!, topP: a['top-p']! };
  try {
    validateSampling(sampling);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (a['max-tokens']! < 1) throw new UsageError(`--max-tokens must be >= 1, got ${a['max-tokens']}`);

  const m = loadForInference(a.checkpoint, await getBackend(a.backend!), { tokenizer: a.tokenizer });
  const ctx = m.model.config.seqLen;
  const engine = new Engine(m.model, { maxBatch: 1, kvBudgetBytes: ctx * bytesPerPosition(m.model), maxQueue: 1 });
  const fresh = (): ChatMessage[] => (a.system ? [{ role: 'system', content: a.system }] : []);
  let history = fresh();
  let turn = 0;
  const tty = process.stdin.isTTY === true;
  process.stderr.write(`chat: model '${m.model.config.name}' (step ${m.checkpoint.step}), context ${ctx} tokens. /reset forgets, /exit quits.\n`);

  const reply = (): Promise<string> =>
    new Promise((resolve) => {
      // keep the newest messages that fit, leaving room for the reply
      let prompt = m.tokenizer.encode(renderChat(m.template, history));
      while (prompt.length + 1 > ctx - Math.min(a['max-tokens']!, ctx / 2) && history.length > 1) {
        history = history.slice(1);
        prompt = m.tokenizer.encode(renderChat(m.template, history));
      }
      const maxTokens = Math.max(1, Math.min(a['max-tokens']!, ctx - prompt.length));
      const utf8 = new Utf8Stream();
      const stop = new StopText(m.template.stop);
      let text = '';
      const out = (s: string) => {
        text += s;
        process.stdout.write(s);
      };
      const h = engine.submit({
        prompt: prompt.slice(-(ctx - 1)),
        maxTokens,
        sampling,
        seed: a.seed! + turn++,
        stopIds: m.chatStopIds,
        onToken: (id) => {
          out(stop.push(utf8.push(m.tokenizer.tokenBytes(id))));
          if (stop.stopped) h.cancel('stop');
        },
        onFinish: (reason: FinishReason, error?: string) => {
          if (reason === 'error') process.stderr.write(`\nchat: generation failed: ${error}\n`);
          else if (!stop.stopped) out(stop.push(utf8.end()) + stop.end());
          process.stdout.write('\n');
          resolve(text);
        },
      });
    });

  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: tty, prompt: tty ? '> ' : '' });
  rl.prompt();
  for await (const line of rl) {
    const text = line.trim();
    if (text === '/exit' || text === '/quit') break;
    if (text === '/reset') {
      history = fresh();
      process.stdout.write('(conversation reset)\n');
    } else if (text !== '') {
      history.push({ role: 'user', content: line });
      const answer = await reply();
      history.push({ role: 'assistant', content: answer });
    }
    rl.prompt();
  }
  rl.close();
  m.model.dispose();
  return 0;
}
