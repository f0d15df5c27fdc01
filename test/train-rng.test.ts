// Tests of the Philox4x32-10 RNG: Random123 known-answer vectors, purity in (seed, offset), state round trip, distributions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, type RngState, philox4x32, philoxNormal, philoxUniform, philoxWords } from '../src/train/rng-state.js';

const hex = (a: Uint32Array) => Array.from(a, (x) => x.toString(16).padStart(8, '0')).join(' ');

test('philox4x32-10 matches the Random123 known-answer vectors', () => {
  assert.equal(hex(philox4x32(0, 0, 0, 0, 0, 0)), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  const f = 0xffffffff;
  assert.equal(hex(philox4x32(f, f, f, f, f, f)), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  assert.equal(
    hex(philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0)),
    'd16cfe09 94fdcceb 5001e420 24126ea1',
  );
});

test('philoxWords: word j is lane j%4 of block j/4 with key = seed', () => {
  const w = philoxWords(0, 0, 8);
  assert.equal(hex(w.subarray(0, 4)), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  assert.deepEqual(Array.from(w.subarray(4)), Array.from(philox4x32(1, 0, 0, 0, 0, 0)));
  // seeds above 2^32 use the key's high word; streams use counter word 2
  assert.deepEqual(Array.from(philoxWords(2 ** 32 + 5, 0, 4)), Array.from(philox4x32(0, 0, 0, 0, 5, 1)));
  assert.deepEqual(Array.from(philoxWords(9, 4, 4, 3)), Array.from(philox4x32(1, 0, 3, 0, 9, 0)));
});

test('uniform and normal are pure functions of (seed, offset): any slice equals the same part of a longer draw', () => {
  const all = philoxUniform(1234, 0, 103);
  assert.deepEqual(philoxUniform(1234, 37, 29), all.slice(37, 66));
  const nAll = philoxNormal(1234, 0, 103);
  assert.deepEqual(philoxNormal(1234, 37, 29), nAll.slice(37, 66));
  assert.deepEqual(philoxNormal(1234, 4, 1), nAll.slice(4, 5));
  assert.notDeepEqual(philoxUniform(1235, 0, 8), all.slice(0, 8));
  assert.notDeepEqual(philoxUniform(1234, 0, 8, 1), all.slice(0, 8));
  // uniform values are the top 24 bits of each word
  assert.equal(philoxUniform(0, 0, 1)[0], (0x6627e8d5 >>> 8) / 2 ** 24);
});

test('Rng draws are deterministic, resume exactly from their JSON state, and look right', () => {
  const a = new Rng(42);
  a.uniform(5);
  a.normal(3);
  const state: unknown = JSON.parse(JSON.stringify(a.state()));
  assert.deepEqual(state, { algorithm: 'philox4x32-10', seed: 42, stream: 0, offset: 10 });
  const next = a.normal(1000);
  const b = Rng.fromState(state as RngState);
  assert.deepEqual(b.normal(1000), next);
  assert.deepEqual(a.uniform(7), b.uniform(7));

  const u = new Rng(7).uniform(20000);
  let mean = 0;
  for (const x of u) {
    assert.ok(x >= 0 && x < 1);
    mean += x / u.length;
  }
  assert.ok(Math.abs(mean - 0.5) < 0.01, `uniform mean ${mean}`);
  const z = new Rng(7).normal(20000);
  let m1 = 0;
  let m2 = 0;
  for (const x of z) {
    assert.ok(Number.isFinite(x));
    m1 += x / z.length;
    m2 += (x * x) / z.length;
  }
  assert.ok(Math.abs(m1) < 0.03 && Math.abs(m2 - 1) < 0.05, `normal mean ${m1} var ${m2}`);
  const r = new Rng(3);
  for (let i = 0; i < 200; i++) {
    const k = r.int(6);
    assert.ok(Number.isInteger(k) && k >= 0 && k < 6);
  }
  assert.throws(() => Rng.fromState({ algorithm: 'mt19937' } as never), /philox4x32-10/);
});
