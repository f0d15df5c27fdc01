// Gradcheck of every differentiable op of the conformance cases against central finite
// differences in float64, on the reference backend with its fused routines and without them (the
// compositions of primitives a new chip falls back to). Also checks nothing leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { OP_CASES, caseData } from '../src/backend/conformance/cases.js';
import { gradcheck } from '../src/tensor/gradcheck.js';

for (const fused of [true, false]) {
  const be = new ReferenceBackend({ fused });
  for (const c of OP_CASES) {
    if (c.differentiable === false) continue;
    test(`gradcheck ${c.name} (${fused ? 'fused' : 'composed'})`, () => {
      const live = be.memory().liveBuffers;
      const r = gradcheck(be, c.f, c.inputs.map((inp) => ({ data: caseData(inp), shape: inp.shape })));
      assert.ok(r.maxError < 1e-6, `max error ${r.maxError.toExponential(2)} at ${r.worst}`);
      assert.equal(be.memory().liveBuffers, live, 'no buffer may outlive the check');
    });
  }
}
