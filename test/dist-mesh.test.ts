// Process mesh arithmetic (no MPI): Megatron-Core's published rank groups, rank → coordinates, and
// the structural properties every group must have for any layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MESH_GROUPS, groupPosition, meshCoords, meshGroups, resolveMesh } from '../src/dist/mesh-layout.js';
import { ProcessMesh } from '../src/dist/mesh.js';
import { LocalCommunicator } from '../src/dist/local.js';

test('16 ranks, tp 2, pp 4, dp 2: the groups in Megatron-Core parallel_state.initialize_model_parallel', () => {
  // From the docstring of megatron/core/parallel_state.py (default order tp-cp-ep-dp-pp, cp = ep = 1).
  const m = resolveMesh({ tp: 2, cp: 1, dp: 2, pp: 4, ep: 1 }, 16);
  assert.deepEqual(meshGroups(m, 'tp'), [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 13], [14, 15]]);
  assert.deepEqual(meshGroups(m, 'dp'), [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9, 11], [12, 14], [13, 15]]);
  assert.deepEqual(meshGroups(m, 'pp'), [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]]);
  assert.deepEqual(meshCoords(m, 13), { tp: 1, cp: 0, dp: 0, pp: 3, etp: 1, ep: 0, edp: 0 });
});

test('rank → coordinates, tp fastest then cp, dp, pp; experts etp-ep-edp-pp inside dp·cp', () => {
  const m = resolveMesh({ tp: 2, cp: 2, dp: 3, pp: 2, ep: 2 }, 24);
  assert.equal(m.edp, 3);
  const table = Array.from({ length: 24 }, (_, r) => meshCoords(m, r));
  table.forEach((c, r) => {
    assert.equal(c.tp + 2 * (c.cp + 2 * (c.dp + 3 * c.pp)), r, `dense coords of rank ${r}`);
    assert.equal(c.etp + 2 * (c.ep + 2 * (c.edp + 3 * c.pp)), r, `expert coords of rank ${r}`);
  });
  assert.deepEqual(table[7], { tp: 1, cp: 1, dp: 1, pp: 0, etp: 1, ep: 1, edp: 1 });
  assert.deepEqual(table[17], { tp: 1, cp: 0, dp: 1, pp: 1, etp: 1, ep: 0, edp: 1 });
  // tp 2, dp 4, ep 2, etp 1 (world 8): expert groups pair neighbours, edp strides by 2
  const e = resolveMesh({ tp: 2, cp: 1, dp: 4, pp: 1, ep: 2, etp: 1 }, 8);
  assert.deepEqual(meshGroups(e, 'ep'), [[0, 1], [2, 3], [4, 5], [6, 7]]);
  assert.deepEqual(meshGroups(e, 'edp'), [[0, 2, 4, 6], [1, 3, 5, 7]]);
  assert.deepEqual(meshGroups(e, 'dpCp'), [[0, 2, 4, 6], [1, 3, 5, 7]]);
});

test('every group partitions the world and varies only its own coordinates', () => {
  for (const layout of [
    { tp: 1, cp: 1, dp: 1, pp: 1, ep: 1 },
    { tp: 2, cp: 1, dp: 2, pp: 1, ep: 2 },
    { tp: 1, cp: 2, dp: 4, pp: 3, ep: 4 },
    { tp: 4, cp: 2, dp: 2, pp: 2, ep: 2, etp: 2 },
  ]) {
    const m = resolveMesh(layout, layout.tp * layout.cp * layout.dp * layout.pp);
    const spans: Record<string, string[]> = { tp: ['tp'], cp: ['cp'], dp: ['dp'], pp: ['pp'], dpCp: ['cp', 'dp'], mp: ['tp', 'pp'], etp: ['etp'], ep: ['ep'], edp: ['edp'] };
    for (const name of MESH_GROUPS) {
      const groups = meshGroups(m, name);
      const expectSize = spans[name]!.reduce((a, d) => a * (m as unknown as Record<string, number>)[d]!, 1);
      assert.deepEqual(groups.flat().sort((a, b) => a - b), [...Array(m.world).keys()], `${name} partitions the world`);
      for (const g of groups) {
        assert.equal(g.length, expectSize, `${name} group size`);
        const cs = g.map((r) => meshCoords(m, r) as unknown as Record<string, number>);
        for (const k of ['tp', 'cp', 'dp', 'pp', 'etp', 'ep', 'edp']) {
          const fixed = !spans[name]!.includes(k) && (name.startsWith('e') || name === 'etp' ? ['etp', 'ep', 'edp', 'pp'] : ['tp', 'cp', 'dp', 'pp']).includes(k);
          if (fixed) assert.equal(new Set(cs.map((c) => c[k])).size, 1, `${name} group ${g} keeps ${k} fixed`);
        }
        g.forEach((r, i) => assert.equal(groupPosition(m, name, r).key, i, `${name}: position of rank ${r}`));
      }
    }
  }
});

test('layouts that do not fit are refused with what would fit', () => {
  assert.throws(() => resolveMesh({ tp: 2, cp: 1, dp: 2, pp: 1, ep: 1 }, 8), /tp·cp·dp·pp = 2·1·2·1 = 4 ranks, but the job has 8.*--dp 4 would fit/);
  assert.throws(() => resolveMesh({ tp: 1, cp: 1, dp: 4, pp: 1, ep: 3 }, 4), /etp·ep = 1·3 does not divide; --ep 1\|2\|4 would fit/);
  assert.throws(() => resolveMesh({ tp: 0, cp: 1, dp: 1, pp: 1, ep: 1 }, 1), /--tp 0 must be a positive integer/);
});

test('ProcessMesh over a world of one: every group is a local communicator of size 1', async () => {
  const mesh = await ProcessMesh.create(new LocalCommunicator(), { tp: 1, cp: 1, dp: 1, pp: 1, ep: 1 });
  for (const c of [mesh.tp, mesh.cp, mesh.dp, mesh.pp, mesh.dpCp, mesh.mp, mesh.etp, mesh.ep, mesh.edp]) assert.equal(c.size, 1);
  assert.equal(mesh.dp.name, 'dp');
  await assert.rejects(ProcessMesh.create(new LocalCommunicator(), { tp: 1, cp: 1, dp: 2, pp: 1, ep: 1 }), /launch 2 ranks or change the layout/);
});
