// Entry point of the GEMM tuner's child process: `node gemm-probe-main.js '<ProbeRequest JSON>'`
// prints one JSON line (ProbeResult). The parent sets OPENBLAS_CORETYPE and ZILI_GEMM_TUNE=off.
import { loadNative } from './native.js';
import { type ProbeRequest, probe } from './gemm-probe.js';

const req = JSON.parse(process.argv[2] ?? '{}') as ProbeRequest;
process.stdout.write(JSON.stringify(probe(loadNative(), req)) + '\n');
