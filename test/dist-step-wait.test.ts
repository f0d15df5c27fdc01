// The per-step wait clock (src/dist/step-wait.ts): idle event-loop time since the step started plus
// the time spent inside the communicator's blocking collectives, on injected time sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Communicator } from '../src/dist/communicator.js';
import { StepWaitClock } from '../src/dist/step-wait.js';

test('waited = idle since start + time inside blocking collectives; other calls and earlier steps do not count', () => {
  let now = 0, idle = 0;
  const calls: string[] = [];
  const comm = {
    reduceScatterSync: () => { calls.push('rs'); now += 30; },
    allGatherSync: () => { calls.push('ag'); now += 5; },
    allReduce: async () => { now += 1000; },
  } as unknown as Communicator;
  const clock = new StepWaitClock({ now: () => now, idleMs: () => idle }).watch(comm);
  idle = 400; // before the step: not counted
  clock.start();
  idle += 120; // awaiting a transfer
  comm.reduceScatterSync!(new Float32Array(2), new Float32Array(1));
  comm.allGatherSync!(new Float32Array(1), new Float32Array(2));
  void comm.allReduce(new Float32Array(1)); // not a blocking call: its time is not added
  assert.deepEqual(calls, ['rs', 'ag']);
  assert.equal(clock.waitedS(), (120 + 30 + 5) / 1000);
  clock.start();
  assert.equal(clock.waitedS(), 0);
});

test('a communicator without blocking collectives is left as it is', () => {
  const comm = { allReduce: async () => {} } as unknown as Communicator;
  new StepWaitClock().watch(comm);
  assert.equal(comm.reduceScatterSync, undefined);
});
