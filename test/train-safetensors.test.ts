// Tests of the safetensors reader/writer: hand-built golden bytes, round trips of every dtype, and clear errors on corrupt files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { type NamedTensors, decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../src/train/safetensors.js';

const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'zili-st-'));

test('golden bytes: length prefix, JSON header padded with spaces to 8 bytes, little-endian data', () => {
  const bytes = encodeSafetensors({
    b: { dtype: 'i32', shape: [1], data: new Int32Array([7]) },
    a: { dtype: 'f32', shape: [2], data: new Float32Array([1, -2]) },
  });
  const json = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}';
  assert.equal(json.length, 108);
  const expected = [
    ...[112, 0, 0, 0, 0, 0, 0, 0],
    ...ascii(json), ...ascii('    '),
    ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0], // 1.0f, -2.0f
    ...[0x07, 0x00, 0x00, 0x00],
  ];
  assert.deepEqual(Array.from(bytes), expected);

  const withMeta = encodeSafetensors({ x: { dtype: 'bf16', shape: [1, 2], data: new Uint16Array([0x3f80, 0xc000]) } }, { k: 'v' });
  const json2 = '{"__metadata__":{"k":"v"},"x":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]}}';
  assert.deepEqual(Array.from(withMeta), [88, 0, 0, 0, 0, 0, 0, 0, ...ascii(json2), ...ascii('      '), 0x80, 0x3f, 0x00, 0xc0]);
  assert.equal(withMeta.length % 8, 4); // data starts at 96, a multiple of 8
});

test('decoding a hand-built file written by another tool (unpadded, tensors out of name order)', () => {
  const json = '{"z":{"dtype":"I32","shape":[],"data_offsets":[0,4]},"a":{"dtype":"U16","shape":[2],"data_offsets":[4,8]}}';
  const head = new Uint8Array(8);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  const file = new Uint8Array([...head, ...ascii(json), 0xff, 0xff, 0xff, 0xff, 1, 0, 2, 0]);
  const { tensors, metadata } = decodeSafetensors(file);
  assert.deepEqual(metadata, {});
  assert.deepEqual(tensors.z, { dtype: 'i32', shape: [], data: new Int32Array([-1]) });
  assert.deepEqual(tensors.a, { dtype: 'u16', shape: [2], data: new Uint16Array([1, 2]) });
});

test('file round trip of every dtype; size and sha256 returned match the file', () => {
  const dir = tmpDir();
  const t: NamedTensors = {
    'layers.0.attn.wq': { dtype: 'f32', shape: [2, 3], data: new Float32Array([1.5, -0, Math.PI, 1e-30, -7, 65504]) },
    emb: { dtype: 'bf16', shape: [3], data: new Uint16Array([0x3f80, 0x7fc0, 0x0001]) },
    half: { dtype: 'f16', shape: [1], data: new Uint16Array([0x3c00]) },
    ids: { dtype: 'i32', shape: [2, 2], data: new Int32Array([-1, 2 ** 31 - 1, 0, 5]) },
    big: { dtype: 'i64', shape: [1], data: new BigInt64Array([-(2n ** 40n)]) },
    f64: { dtype: 'f64', shape: [1], data: new Float64Array([1 / 3]) },
    mask: { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) },
    empty: { dtype: 'f32', shape: [0, 4], data: new Float32Array(0) },
  };
  const file = path.join(dir, 'm.safetensors');
  const rec = writeSafetensors(file, t, { metadata: { step: '12' } });
  const raw = new Uint8Array(fs.readFileSync(file));
  assert.equal(rec.bytes, raw.length);
  assert.equal(rec.sha256, createHash('sha256').update(raw).digest('hex'));
  assert.deepEqual(Array.from(encodeSafetensors(t, { step: '12' })), Array.from(raw));
  const back = readSafetensors(file);
  assert.deepEqual(back.metadata, { step: '12' });
  assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(t).sort());
  for (const [k, v] of Object.entries(t)) assert.deepEqual(back.tensors[k], v, k);
  fs.rmSync(dir, { recursive: true });
});

test('writing rejects inconsistent tensors', () => {
  assert.throws(() => encodeSafetensors({ w: { dtype: 'f32', shape: [2, 2], data: new Float32Array(3) } }), /shape \[2,2\] holds 4 elements but data has 3/);
  assert.throws(() => encodeSafetensors({ w: { dtype: 'bf16', shape: [1], data: new Float32Array(1) } }), /needs a Uint16Array/);
});

test('corrupt files give errors that name the file and the problem', () => {
  const dir = tmpDir();
  const good = encodeSafetensors({
    a: { dtype: 'f32', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
    b: { dtype: 'i32', shape: [2], data: new Int32Array([5, 6]) },
  });
  const headerLen = Number(new DataView(good.buffer).getBigUint64(0, true));
  const json = new TextDecoder().decode(good.subarray(8, 8 + headerLen));
  const put = (name: string, bytes: Uint8Array) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, bytes);
    return f;
  };
  const withHeader = (h: string, data = good.subarray(8 + headerLen)) => {
    const hb = new TextEncoder().encode(h);
    const out = new Uint8Array(8 + hb.length + data.length);
    new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
    out.set(hb, 8);
    out.set(data, 8 + hb.length);
    return out;
  };
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated-data', good.subarray(0, good.length - 3), /run past the end of the data .*truncated/],
    ['truncated-header', good.subarray(0, 20), /header length \d+ runs past the end of the 20-byte file/],
    ['tiny', good.subarray(0, 5), /5 bytes is too short/],
    ['huge-header', (() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 2n ** 60n, true); return b; })(), /above the 100000000-byte limit/],
    ['bad-json', withHeader('{"a": [1, 2'), /header is not valid JSON/],
    ['not-object', withHeader('[1,2,3]   '), /not a JSON object/],
    ['bad-dtype', withHeader(json.replace('"F32"', '"Q4"')), /tensor 'a' has unknown dtype "Q4"/],
    ['out-of-range', withHeader(json.replace('[16,24]', '[16,2400]')), /tensor 'b' .* needs 8 bytes but data_offsets \[16, 2400\]/],
    ['gap', withHeader(json.replace('"shape":[4],"data_offsets":[0,16]', '"shape":[3],"data_offsets":[4,16]')), /starts at byte 4 but the previous tensor ends at 0/],
    ['trailing', new Uint8Array([...good, 0, 0, 0, 0]), /tensors cover 24 bytes but the file holds 28/],
  ];
  for (const [name, bytes, re] of cases) {
    const f = put(`${name}.safetensors`, bytes);
    assert.throws(() => readSafetensors(f), (e: Error & { userFacing?: boolean }) => {
      assert.match(e.message, re, name);
      assert.ok(e.message.includes(f), `${name}: message names the file: ${e.message}`);
      assert.equal(e.userFacing, true);
      return true;
    });
  }
  assert.throws(() => readSafetensors(path.join(dir, 'missing.safetensors')), /cannot open safetensors file .*missing\.safetensors/);
  fs.rmSync(dir, { recursive: true });
});
