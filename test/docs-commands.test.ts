// The documentation's commands run as written: every fenced block tagged ```sh in README.md and
// docs/*.md is run with bash, in order, each file in a fresh temporary folder (bin/, docs/, bench/
// and scripts/ are links to the repository's; runs/, data/ and the like are created there). Blocks
// tagged ```console are shown, not run (long runs, servers, mpirun, GPUs). A failing block is named
// by file and line, with its text and the end of its output; no block may print a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
/** Longest a ```sh block may take: the convention is seconds (small presets, few steps). */
const BLOCK_TIMEOUT_S = 240;

interface ShellBlock {
  file: string;
  /** 1-based line of the opening fence */
  line: number;
  text: string;
}

/** The ```sh blocks of a Markdown text, in order. */
function shellBlocks(file: string, markdown: string): ShellBlock[] {
  const out: ShellBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    if (open[1] === 'sh') out.push({ file, line: start + 1, text: body.join('\n') });
  }
  return out;
}

const files = ['README.md', ...readdirSync(join(REPO, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

test('shellBlocks finds ```sh blocks only, with their lines', () => {
  const md = 'text\n```sh\necho a\necho b\n```\n```console\nnot run\n```\n```\nplain\n```\n```sh\necho c\n```\n';
  assert.deepEqual(shellBlocks('x.md', md), [
    { file: 'x.md', line: 2, text: 'echo a\necho b' },
    { file: 'x.md', line: 12, text: 'echo c' },
  ]);
});

for (const file of files) {
  const blocks = shellBlocks(file, readFileSync(join(REPO, file), 'utf8'));
  if (!blocks.length) continue;
  test(`${file}: its ${blocks.length} sh block(s) run as written, in order`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'zili-docs-'));
    try {
      for (const link of ['bin', 'docs', 'bench', 'scripts']) symlinkSync(join(REPO, link), join(dir, link));
      for (const b of blocks) {
        await t.test(`${file}:${b.line}`, () => {
          const r = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', b.text], { cwd: dir, encoding: 'utf8', timeout: BLOCK_TIMEOUT_S * 1000 });
          const tail = (s: string) => s.slice(-3000);
          const where = `${file} line ${b.line}, the block:\n${b.text}\n--- stdout (end) ---\n${tail(r.stdout)}\n--- stderr (end) ---\n${tail(r.stderr)}`;
          if (r.error || r.signal)
            assert.fail(`${where}\ndid not finish in ${BLOCK_TIMEOUT_S} s (${r.error?.message ?? r.signal}): keep sh blocks cheap (seconds) or tag the block console`);
          assert.equal(r.status, 0, `${where}\nexited with ${r.status}: fix the command or the docs (a block that cannot run here is tagged console)`);
          assert.doesNotMatch(r.stderr, /^ {4}at /m, `${where}\nprinted a stack trace`);
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
