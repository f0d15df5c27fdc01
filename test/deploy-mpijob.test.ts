// deploy/kubernetes/zili-mpijob.yaml against the MPIJob v2beta1 schema (test/mpijob-schema.ts, from
// the CRD's openAPI fields and the operator's admission rules), its rank arithmetic (mpirun -np =
// Worker replicas × slotsPerWorker = zili's layout), and the checker's own teeth on broken copies.
// The YAML is read by Debian's python3-yaml (installed by scripts/setup); skips with the reason without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../src/util/paths.js';
import { validateMPIJob } from './mpijob-schema.js';

const MANIFEST = join(repoRoot(), 'deploy', 'kubernetes', 'zili-mpijob.yaml');
const PY = '/usr/bin/python3';
const load = spawnSync(PY, ['-c', 'import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', MANIFEST], { encoding: 'utf8' });
const skip = load.status !== 0 ? `cannot read YAML with ${PY} (scripts/setup installs python3-yaml): ${(load.stderr || String(load.error)).trim().split('\n').pop()}` : false;
if (skip) console.log(`# skipping the MPIJob checks: ${skip}`);

interface Job {
  spec: { slotsPerWorker: number; mpiReplicaSpecs: Record<string, { replicas: number; template: { spec: { containers: { command: string[]; args: string[]; resources?: unknown }[] } } }>; runPolicy: Record<string, unknown> };
  [k: string]: unknown;
}
const job = (): Job => (JSON.parse(load.stdout) as Job[])[0]!;

test('the MPIJob manifest is a valid kubeflow.org/v2beta1 MPIJob', { skip }, () => {
  assert.equal((JSON.parse(load.stdout) as unknown[]).length, 1, 'one document');
  assert.deepEqual(validateMPIJob(job()), []);
});

test('the launcher starts Worker replicas × slotsPerWorker ranks and zili trains on exactly that many', { skip }, () => {
  const j = job();
  const launcher = j.spec.mpiReplicaSpecs['Launcher']!.template.spec.containers[0]!;
  const argv = [...launcher.command, ...launcher.args];
  assert.equal(argv[0], 'mpirun');
  const np = Number(argv[argv.indexOf('-np') + 1]);
  assert.equal(np, j.spec.mpiReplicaSpecs['Worker']!.replicas * j.spec.slotsPerWorker, 'mpirun -np vs the worker slots');
  const zili = argv.slice(argv.findIndex((a) => a.endsWith('bin/zili')));
  assert.equal(zili[1], 'train');
  const degree = (flag: string) => (zili.includes(flag) ? Number(zili[zili.indexOf(flag) + 1]) : 1);
  assert.equal(degree('--tp') * degree('--cp') * degree('--dp') * degree('--pp'), np, 'tp·cp·dp·pp of the zili command vs mpirun -np');
});

test('the checker rejects what the API server or the operator would reject', { skip }, () => {
  const broken = (edit: (j: Job) => void) => {
    const j = job();
    edit(j);
    return validateMPIJob(j).join('\n');
  };
  assert.match(broken((j) => ((j.spec as Record<string, unknown>)['slotsPerWorkers'] = 2)), /spec\.slotsPerWorkers: unknown field/);
  assert.match(broken((j) => ((j.spec.mpiReplicaSpecs['Worker'] as unknown as Record<string, unknown>).replicas = '2')), /Worker\.replicas: expected an integer, got the string '2'/);
  assert.match(broken((j) => (j.spec.runPolicy['cleanPodPolicy'] = 'Sometimes')), /cleanPodPolicy: 'Sometimes' is not one of None, Running, All/);
  assert.match(broken((j) => (j.spec.mpiReplicaSpecs['Launcher']!.replicas = 2)), /Launcher\.replicas: must be 1/);
  assert.match(broken((j) => (j.spec.mpiReplicaSpecs['Worker']!.template.spec.containers = [])), /Worker\.template\.spec\.containers: needs at least 1/);
  assert.match(broken((j) => (j.spec.mpiReplicaSpecs['Worker']!.template.spec.containers[0]!.resources = { limits: { memory: '16GB' } })), /limits\.memory: '16GB' is not a Kubernetes quantity/);
  assert.match(broken((j) => delete (j as Record<string, unknown>)['kind']), /^kind: required/m);
  assert.match(broken((j) => delete (j.spec as Record<string, unknown>)['mpiReplicaSpecs']), /spec\.mpiReplicaSpecs: required/);
});
