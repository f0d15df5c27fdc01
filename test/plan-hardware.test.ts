// Hardware catalog: every chip of reference/chips.md with source and confidence, overrides, user chips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CATALOG, catalogChip, chipFromJson, MEMORY_HEADROOM, overrideChip, parseOverrides, resolveChip } from '../src/plan/hardware.js';
import { clusterFromJson } from '../src/plan/cluster.js';

test('catalog covers the reference chips, each with a source and a confidence', () => {
  const ids = CATALOG.map((c) => c.id);
  for (const id of ['ascend-910', 'ascend-910b', 'ascend-910c', 'cambricon-mlu370-x8', 'cambricon-mlu590', 'hygon-k100-ai', 'mthreads-s4000',
    'metax-c500', 'biren-br100', 'kunlunxin-p800', 'a100-sxm-80gb', 'h100-sxm', 'h800-sxm', 'h20', 'h200-sxm', 'mi300x']) {
    assert.ok(ids.includes(id), `missing ${id}`);
  }
  for (const c of CATALOG) {
    assert.ok(c.source.length > 5, `${c.id} has no source`);
    assert.ok(['vendor', 'paper', 'reported', 'low', 'unknown'].includes(c.confidence));
  }
  assert.equal(catalogChip('a100-sxm-80gb').peakTflops, 312);
  assert.equal(catalogChip('h100').peakTflops, 989.5);
  assert.equal(catalogChip('ascend-910b').usableMemoryGiB, 55);
  assert.match(catalogChip('ascend-910b').notes!, /do not say which peak/);
});

test('unknown chip names the catalog and how to describe a chip', () => {
  assert.throws(() => catalogChip('ascend-911'), /unknown chip 'ascend-911'.*ascend-910b.*JSON file/s);
});

test('Kunlunxin has unknown fields; planning asks for exactly those', () => {
  const k = catalogChip('kunlunxin-p800');
  assert.equal(k.peakTflops, null);
  assert.throws(() => resolveChip(k), /no figure for peakTflops, memoryGiB.*--chip-set peakTflops=/s);
  const filled = overrideChip(k, parseOverrides('peakTflops=345,memoryGiB=96,memoryBandwidthTBs=2.7,chipsPerNode=8,intraNodeGBs=200,interNodeGBs=25'));
  const r = resolveChip(filled);
  assert.equal(r.peakTflops, 345);
  assert.ok(Math.abs(r.usableMemoryGiB - 96 * (1 - MEMORY_HEADROOM)) < 0.01); // headroom on every chip, not only Ascend
  assert.match(r.source, /user override of peakTflops/);
});

test('every chip keeps memory headroom: usable < memory unless the user sets usableMemoryGiB', () => {
  for (const c of CATALOG.filter((x) => x.memoryGiB !== null && x.peakTflops !== null && x.intraNodeGBs !== null)) {
    const r = resolveChip(c);
    assert.ok(r.usableMemoryGiB < r.memoryGiB, `${c.id}: ${r.usableMemoryGiB} of ${r.memoryGiB}`);
  }
  assert.equal(resolveChip(chipFromJson({ base: 'h100-sxm', usableMemoryGiB: 80 })).usableMemoryGiB, 80);
});

test('every field is overridable, from flags or JSON with a base', () => {
  const c = chipFromJson({ base: 'ascend-910b', peakTflops: 376, usableMemoryGiB: 60, intraNodeGBs: 392 });
  assert.equal(c.peakTflops, 376);
  assert.equal(c.intraNodeGBs, 392);
  assert.ok(!c.assumed!.includes('intraNodeGBs'), 'an overridden field is no longer an assumption');
  assert.equal(c.memoryGiB, 64);
  assert.throws(() => chipFromJson({ base: 'h100', peakTflop: 1 }), /unknown chip field 'peakTflop'/);
  assert.throws(() => overrideChip(c, { memoryGiB: -3 }), /memoryGiB must be a positive number/);
  // the planner-io hardware object of a known chip picks up the catalog's other fields
  const io = chipFromJson({ name: 'A100-SXM4-80GB', peakTflops: 312, memoryGiB: 80, memoryBandwidthTBs: 2.04, chipsPerNode: 8, intraNodeGBs: 300, interNodeGBs: 25 });
  assert.equal(io.tdpW, 400);
});

test('clusters from JSON carry reliability and storage figures', () => {
  const cl = clusterFromJson({ chip: 'ascend-910b', chips: 8192, chipOverrides: { peakTflops: 376 }, failuresPerChipYear: 0.05, storageWriteGBs: 400 });
  assert.equal(cl.chips, 8192);
  assert.equal(cl.chip.peakTflops, 376);
  assert.equal(cl.failuresPerChipYear, 0.05);
  assert.equal(cl.restartMinutes, 15);
  assert.throws(() => clusterFromJson({ chip: 'h100', chips: 8, pue: 1.2 }), /unknown field 'pue'/);
});
