// The chat template of a run: how a conversation becomes the text a model continues. Stored as
// chat_template.json beside tokenizer.json in the run folder; zili renders it directly, and the
// Hugging Face export writes the equivalent Jinja template into tokenizer_config.json, so
// `apply_chat_template` there gives exactly the same text (and tokens).
//
// The default is ChatML: every message is `<|im_start|>{role}\n{content}<|im_end|>\n` and the reply
// starts after `<|im_start|>assistant\n`. `<|im_start|>` and `<|im_end|>` are special tokens when the
// tokenizer has them (train one with `zili tokenizer train --special '<|im_start|>,<|im_end|>'`);
// otherwise they are encoded as ordinary text. A reply ends at `<|im_end|>` or `<|endoftext|>`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic-fs.js';

export const CHAT_TEMPLATE_FILE = 'chat_template.json';

export interface ChatTemplate {
  /** one message; `{role}` and `{content}` are replaced */
  message: string;
  /** appended after the messages to start the assistant's reply */
  generationPrompt: string;
  /** text that ends a reply (besides <|endoftext|>) */
  stop: string[];
}

export interface ChatMessage {
  role: string;
  content: string;
}

export const DEFAULT_CHAT_TEMPLATE: ChatTemplate = {
  message: '<|im_start|>{role}\n{content}<|im_end|>\n',
  generationPrompt: '<|im_start|>assistant\n',
  stop: ['<|im_end|>'],
};

export class ChatTemplateError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'ChatTemplateError';
  }
}

/** The conversation as the text the model continues. */
export function renderChat(t: ChatTemplate, messages: readonly ChatMessage[], addGenerationPrompt = true): string {
  let out = '';
  for (const m of messages) out += t.message.replace(/\{role\}|\{content\}/g, (k) => (k === '{role}' ? m.role : m.content));
  return addGenerationPrompt ? out + t.generationPrompt : out;
}

function jinjaString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
}

/** The same template in Jinja (Hugging Face tokenizer_config.json `chat_template`). */
export function toJinja(t: ChatTemplate): string {
  const parts = t.message.split(/(\{role\}|\{content\})/).filter((p) => p !== '');
  const expr = parts.map((p) => (p === '{role}' ? "message['role']" : p === '{content}' ? "message['content']" : jinjaString(p))).join(' + ');
  return `{% for message in messages %}{{ ${expr} }}{% endfor %}{% if add_generation_prompt %}{{ ${jinjaString(t.generationPrompt)} }}{% endif %}`;
}

/** Parses the template of a Hugging Face folder when zili wrote it (toJinja's form); null otherwise. */
export function fromJinja(jinja: string, stop: string[]): ChatTemplate | null {
  const m = /^\{% for message in messages %\}\{\{ (.*) \}\}\{% endfor %\}\{% if add_generation_prompt %\}\{\{ ('(?:[^'\\]|\\.)*') \}\}\{% endif %\}$/s.exec(jinja);
  if (!m) return null;
  const unquote = (q: string) => q.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  const message = m[1]!
    .split(' + ')
    .map((p) => (p === "message['role']" ? '{role}' : p === "message['content']" ? '{content}' : unquote(p)))
    .join('');
  const t = { message, generationPrompt: unquote(m[2]!), stop };
  return toJinja(t) === jinja ? t : null;
}

/** Validates a parsed template; `where` names its file in errors. */
export function validateChatTemplate(x: unknown, where: string): ChatTemplate {
  const t = x as Partial<ChatTemplate> | null;
  const bad = (why: string) => new ChatTemplateError(`${where}: ${why} (expected {"message": "...{role}...{content}...", "generationPrompt": "...", "stop": ["..."]})`);
  if (!t || typeof t !== 'object') throw bad('not a JSON object');
  if (typeof t.message !== 'string' || !t.message.includes('{content}')) throw bad('"message" must be a string containing {content}');
  if (typeof t.generationPrompt !== 'string') throw bad('"generationPrompt" must be a string');
  if (!Array.isArray(t.stop) || t.stop.some((s) => typeof s !== 'string' || s === '')) throw bad('"stop" must be a list of non-empty strings');
  return { message: t.message, generationPrompt: t.generationPrompt, stop: [...t.stop] };
}

/** The chat template stored in a folder, or the default when none is stored there. */
export function loadChatTemplate(dir: string): { template: ChatTemplate; file: string | null } {
  const file = path.join(dir, CHAT_TEMPLATE_FILE);
  if (!fs.existsSync(file)) return { template: DEFAULT_CHAT_TEMPLATE, file: null };
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ChatTemplateError(`${file} is not valid JSON (${(e as Error).message}); fix it or delete it to use the default ChatML template`);
  }
  return { template: validateChatTemplate(json, file), file };
}

/** Writes a template into a run folder (atomically). */
export function saveChatTemplate(dir: string, t: ChatTemplate): string {
  const file = path.join(dir, CHAT_TEMPLATE_FILE);
  writeFileAtomic(file, JSON.stringify(t, null, 2) + '\n');
  return file;
}

/** Stores the default template in a run folder that has none yet (zili train calls this). */
export function ensureChatTemplate(dir: string): void {
  if (!fs.existsSync(path.join(dir, CHAT_TEMPLATE_FILE))) saveChatTemplate(dir, DEFAULT_CHAT_TEMPLATE);
}
