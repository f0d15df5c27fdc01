// One list of op names: native/ops.def (from which zili.h's enums and addon.cc's name tables are
// built) must name the same unary, binary and reduce ops in the same order as src/backend/contract.ts,
// and the loaded addon must export exactly those codes. A reordering on either side fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BINARY_OPS, REDUCE_OPS, UNARY_OPS } from '../src/backend/contract.js';
import { repoRoot } from '../src/util/paths.js';
import { loadNative, nativeAvailable } from '../src/backend/cpu/native.js';

const def = readFileSync(join(repoRoot(), 'native', 'ops.def'), 'utf8');
function defList(macro: string): string[] {
  const m = new RegExp(`#define ${macro}\\(M\\)((?:[^\\n]*\\\\\\n)*[^\\n]*)`).exec(def);
  assert.ok(m, `native/ops.def defines ${macro}`);
  return [...m[1]!.matchAll(/M\(\s*\w+\s*,\s*"(\w+)"\s*\)/g)].map((x) => x[1]!);
}
const LISTS = [
  ['ZILI_UNARY_OPS', UNARY_OPS, 'UNARY'],
  ['ZILI_BINARY_OPS', BINARY_OPS, 'BINARY'],
  ['ZILI_REDUCE_OPS', REDUCE_OPS, 'REDUCE'],
] as const;

test('native/ops.def lists the ops of contract.ts in the same order', () => {
  for (const [macro, ts] of LISTS) assert.deepEqual(defList(macro), [...ts], `${macro} vs contract.ts`);
});

test('the addon exports each op with its position in contract.ts as its code', { skip: !nativeAvailable() && 'native addon not built' }, () => {
  const N = loadNative() as unknown as Record<string, Record<string, number>>;
  for (const [, ts, table] of LISTS) assert.deepEqual(N[table], Object.fromEntries(ts.map((name, i) => [name, i])), table);
});
