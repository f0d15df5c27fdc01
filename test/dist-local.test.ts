// The local communicator (a world of one), argument checks shared by every communicator, and buffer
// staging for asynchronous backends: results land on the device, and calls reach the transport in
// issue order even when an earlier call must first stage its buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DeviceBuffer } from '../src/backend/contract.js';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { LocalCommunicator } from '../src/dist/local.js';
import { openWorld, launchedWorldSize } from '../src/dist/world.js';
import type { HostCommArray } from '../src/dist/base.js';
import type { CommReduceOp } from '../src/dist/communicator.js';
import { type DType, type HostArray, hostArray } from '../src/tensor/dtype.js';
import * as T from '../src/tensor/ops.js';

/** A device whose memory the host cannot touch: reads resolve later, like webgpu's mapAsync. */
function asyncDevice(): Backend & { reads: number; writes: number } {
  const mem = new Map<DeviceBuffer, HostArray>();
  const be = {
    name: 'async-test', dtypes: ['f32', 'bf16', 'i32'] as DType[], asynchronous: true, fused: {}, reads: 0, writes: 0,
    alloc(dtype: DType, numel: number): DeviceBuffer {
      const b = { backend: 'async-test', dtype, numel, bytes: numel * 4 };
      mem.set(b, hostArray(dtype, numel));
      return b;
    },
    free(b: DeviceBuffer) { mem.delete(b); },
    write(b: DeviceBuffer, data: HostArray) { be.writes++; mem.get(b)!.set(data as never); },
    async read(b: DeviceBuffer): Promise<HostArray> {
      be.reads++;
      await new Promise((r) => setTimeout(r, 20));
      return mem.get(b)!.slice();
    },
  };
  return be as unknown as Backend & { reads: number; writes: number };
}

test('local world: collectives are the identity or a copy; a send to oneself reaches the matching recv', async () => {
  const w = await openWorld({ env: {} });
  assert.equal(w.kind, 'local');
  assert.equal(w.size, 1);
  const a = Float32Array.from([1, 2, 3]);
  await w.allReduce(a, 'max');
  assert.deepEqual([...a], [1, 2, 3]);
  const out = new Float32Array(3);
  await w.reduceScatter(a, out);
  assert.deepEqual([...out], [1, 2, 3]);
  const g = new Int32Array(2);
  await w.allGather(Int32Array.from([5, 6]), g);
  assert.deepEqual([...g], [5, 6]);
  const r1 = new Float32Array(2), r2 = new Float32Array(2);
  const recv1 = w.recv(r1, 0, 3); // recv posted before the send
  await Promise.all([w.send(Float32Array.from([7, 8]), 0, 3), recv1]);
  await Promise.all([w.send(Float32Array.from([9, 10]), 0, 4), w.recv(r2, 0, 4)]);
  assert.deepEqual([...r1, ...r2], [7, 8, 9, 10]);
  const v = new Float32Array(4);
  await w.allToAllV(Float32Array.from([1, 2, 3]), [2], v, [2]);
  assert.deepEqual([...v], [1, 2, 0, 0]);
  assert.equal(await w.split(-1, 0, 'none'), null);
  assert.equal((await w.split(0, 0, 'dp'))?.name, 'dp');
  await w.barrier();
  await w.finalize();
});

test('argument errors name the call, the communicator and the fix', () => {
  const w = new LocalCommunicator('dp');
  assert.throws(() => w.reduceScatter(new Float32Array(4), new Float32Array(3)), /reduceScatter on communicator 'dp' \(rank 0 of 1\): input has 4 elements, expected size·output = 1·3/);
  assert.throws(() => w.allGather(new Float32Array(2), new Int32Array(2)), /input is f32 but output is i32/);
  assert.throws(() => w.send(new Float32Array(1), 1), /destination rank 1 is outside 0\.\.0/);
  assert.throws(() => w.allReduce(new Float64Array(1)), /f64 buffers cannot be communicated; cast to f32/);
  assert.throws(() => w.allReduce(new Float32Array(1), 'avg' as CommReduceOp), /unknown reduction 'avg'; use sum, max or min/);
  assert.throws(() => w.allToAllV(new Float32Array(1), [2], new Float32Array(2), [2]), /sendCounts add up to 2 elements but input holds only 1/);
  assert.throws(() => w.recv(new Float32Array(1), 0, 40000), /tag 40000 must be an integer in 0\.\.32767/);
});

test('tensors: host backends are used in place, asynchronous devices are staged through read/write', async () => {
  const w = new LocalCommunicator();
  const ref = new ReferenceBackend();
  const host = T.tensor(ref, [1, 2, 3, 4]);
  const before = (host.buf as unknown as { data: Float32Array }).data;
  await w.reduceScatter(Float32Array.from([5, 6, 7, 8]), host);
  assert.equal((host.buf as unknown as { data: Float32Array }).data, before, 'same typed array');
  assert.deepEqual([...host.dataSync()], [5, 6, 7, 8]);

  const dev = asyncDevice();
  const out = T.tensor(dev, [0, 0, 0, 0]);
  const writes = dev.writes;
  await w.allGather(T.tensor(dev, [9, 8, 7, 6]), out);
  assert.deepEqual([...(await out.data())], [9, 8, 7, 6], 'gathered values written back to the device');
  assert.equal(dev.writes - writes, 2, 'one write for the input tensor, one write-back of the output');
});

test('a call reaches the transport only after the previous one, even when that one is still staging', async () => {
  const order: string[] = [];
  class Recording extends LocalCommunicator {
    protected override async hostAllReduce(buf: HostCommArray): Promise<void> {
      order.push(`allReduce ${buf.length}`);
    }
    protected override async transportBarrier(): Promise<void> {
      order.push('barrier');
    }
  }
  const w = new Recording();
  const dev = asyncDevice();
  const staged = T.tensor(dev, [1, 2, 3]);
  await Promise.all([w.allReduce(staged), w.allReduce(new Float32Array(5)), w.barrier()]);
  assert.deepEqual(order, ['allReduce 3', 'allReduce 5', 'barrier']);
});

test('the world size comes from the launcher; more than one rank needs MPI', async () => {
  assert.equal(launchedWorldSize({}), 1);
  assert.equal(launchedWorldSize({ OMPI_COMM_WORLD_SIZE: '4' }), 4);
  assert.equal(launchedWorldSize({ SLURM_STEP_NUM_TASKS: '2' }), 2);
  await assert.rejects(openWorld({ env: { OMPI_COMM_WORLD_SIZE: '2' }, transport: 'local' }), /the launcher started 2 ranks but the local communicator serves one process/);
  await assert.rejects(openWorld({ env: { ZILI_COMM_TIMEOUT_S: 'x', OMPI_COMM_WORLD_SIZE: '2' } }), /ZILI_COMM_TIMEOUT_S=x is not a positive number of seconds/);
});

test('a real asynchronous backend (webgpu): results of a call land in the device buffer', async (t) => {
  let gpu: Backend;
  try {
    const { getBackend } = await import('../src/backend/registry.js');
    gpu = await getBackend('webgpu');
  } catch (e) {
    return t.skip(`no WebGPU adapter (${(e as Error).message.slice(0, 100)})`);
  }
  assert.equal(gpu.asynchronous, true);
  const w = new LocalCommunicator();
  const out = T.tensor(gpu, [0, 0, 0, 0, 0]);
  await w.reduceScatter(T.tensor(gpu, [1.5, -2, 3, 4, 5]), out);
  assert.deepEqual([...(await out.data())], [1.5, -2, 3, 4, 5]);
  const r = T.tensor(gpu, [0, 0]);
  await Promise.all([w.send(T.tensor(gpu, [7, 8]), 0, 1), w.recv(r, 0, 1)]);
  assert.deepEqual([...(await r.data())], [7, 8]);
});

test('blocking calls: a copy on one rank; refused on staged buffers and behind a call not yet started', async () => {
  const w = new LocalCommunicator();
  const out = new Float32Array(3);
  w.reduceScatterSync(Float32Array.of(1, 2, 3), out);
  assert.deepEqual([...out], [1, 2, 3]);
  const g = new Int32Array(2);
  w.allGatherSync(Int32Array.of(7, 8), g);
  assert.deepEqual([...g], [7, 8]);
  const dev = asyncDevice();
  const t = T.tensor(dev, Float32Array.of(1, 2), [2]);
  assert.throws(() => w.allGatherSync(t, new Float32Array(2)), /allGatherSync on communicator 'world' \(rank 0 of 1\): blocking calls need host buffers/);
  // a staged (device) buffer waits for its read before it starts: a blocking call must not overtake it
  const pending = w.allReduce(t);
  assert.throws(() => w.reduceScatterSync(out, new Float32Array(3)), /1 earlier call\(s\) on this communicator have not started yet/);
  assert.throws(() => w.waitSync(pending), /not a collective of this communicator started at its call/);
  await pending;
  // a host call starts at the call: complete at once on one rank
  const started = w.barrier();
  assert.equal(w.completed(started), true);
  w.waitSync(started);
  await started;
  w.reduceScatterSync(Float32Array.of(4, 5, 6), out);
  assert.deepEqual([...out], [4, 5, 6]);
});
