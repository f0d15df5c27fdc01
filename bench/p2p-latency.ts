// Point-to-point latency as a pipeline stage sees it: from rank 0's send of an activation-sized
// message (after which it computes, as a stage does) to the moment rank 1's JavaScript, idle and
// waiting for it (after `expedite()`), has it. Run with 2 ranks:
//   npx tsc -p . && mpirun --allow-run-as-root --bind-to core --map-by core -np 2 node dist/bench/p2p-latency.js [rounds]
// Rank 1 posts its receive 30 ms before rank 0 sends (as the executor posts one compute ahead), so
// the communicator's polling thread has backed off by then. Both ranks run on one machine, so
// performance.timeOrigin + performance.now() is one clock. Prints the median and range per size.
import { performance } from 'node:perf_hooks';
import { openWorld } from '../src/dist/world.js';

const ROUNDS = Number(process.argv[2] ?? 16);
const w = await openWorld();
if (w.size !== 2) throw new Error(`p2p-latency: run with 2 ranks (got ${w.size})`);
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rows: string[] = [];
for (const bytes of [32 * 1024, 192 * 1024, 1024 * 1024]) {
  const buf = new Float32Array(bytes / 4);
  const stamp = new Int32Array(3); // send time, ms since the epoch: [ms / 1e9, ms % 1e9, ns]
  const lat: number[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    await w.barrier();
    if (w.rank === 0) {
      await sleep(60);
      const t = now();
      const sent = w.send(buf, 1, k);
      const busy = now() + 20;
      while (now() < busy); // the next compute
      await sent;
      stamp[0] = Math.floor(t / 1e9);
      stamp[1] = Math.floor(t) % 1e9;
      stamp[2] = Math.round((t - Math.floor(t)) * 1e6);
      await w.send(stamp, 1, 1000 + k);
    } else {
      const got = w.recv(buf, 0, k);
      await sleep(30);
      w.expedite?.();
      await got;
      const t = now();
      await w.recv(stamp, 0, 1000 + k);
      lat.push(t - (stamp[0]! * 1e9 + stamp[1]! + stamp[2]! / 1e6));
    }
  }
  lat.sort((a, b) => a - b);
  if (w.rank === 1) rows.push(`| ${bytes / 1024} KiB | ${lat[lat.length >> 1]!.toFixed(2)} | ${lat[0]!.toFixed(2)}-${lat[lat.length - 1]!.toFixed(2)} |`);
}
if (w.rank === 1) console.log(['| message | median ms | range ms |', '|---|---|---|', ...rows].join('\n'));
await w.finalize();
