/**
 * Sampler cost: CPU % of one core the sampler uses at the default 5 s interval (and at 1 s for
 * reference), measured with process.cpuUsage() over BENCH_SECONDS (default 60) per interval.
 * Children the sampler spawns (`df`, the shell systeminformation runs for network counters)
 * are not in process.cpuUsage(); on Linux we add them from /proc/self/stat (cutime + cstime).
 * An idle run with the same timers but no sampling is measured first and subtracted.
 *
 *   node bench/monitoring/dist/main.js            # 60 s per interval
 *   BENCH_SECONDS=20 node bench/monitoring/dist/main.js
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sampler } from '@switchyard/monitor';

const seconds = Number(process.env.BENCH_SECONDS ?? 60);

function childrenCpuMs(): number {
  try {
    const s = readFileSync('/proc/self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) * 10; // cutime + cstime, USER_HZ = 100
  } catch {
    return 0;
  }
}

async function measure(intervalMs: number, sample: boolean): Promise<{ selfPct: number; childPct: number; rounds: number; samples: number }> {
  const sampler = sample ? new Sampler() : undefined;
  const c0 = process.cpuUsage();
  const k0 = childrenCpuMs();
  const t0 = performance.now();
  let rounds = 0;
  let samples = 0;
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    if (sampler) {
      samples += (await sampler.collect()).length;
      rounds++;
    }
    await sleep(intervalMs);
  }
  sampler?.close();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return {
    selfPct: ((c.user + c.system) / 1000 / wall) * 100,
    childPct: ((childrenCpuMs() - k0) / wall) * 100,
    rounds,
    samples,
  };
}

const fmt = (n: number) => n.toFixed(3);
console.log(`# sampler cost, ${seconds} s per run, node ${process.version}`);
// Warm-up: load systeminformation's lazy parts and JIT the paths once, outside the measurement.
{
  const w = new Sampler({ diskIntervalMs: 0 });
  await w.collect();
  await sleep(200);
  await w.collect();
  w.close();
}
const idle = await measure(5000, false);
console.log(`idle baseline (timer only)       self ${fmt(idle.selfPct)} % of one core`);
for (const interval of [5000, 1000]) {
  const r = await measure(interval, true);
  const net = r.selfPct - idle.selfPct;
  console.log(
    `interval ${String(interval).padStart(4)} ms: self ${fmt(r.selfPct)} % (minus idle ${fmt(net)} %), ` +
      `children ${fmt(r.childPct)} %, total ${fmt(net + r.childPct)} % of one core; ` +
      `${r.rounds} rounds, ${(r.samples / Math.max(1, r.rounds)).toFixed(1)} samples/round`,
  );
}
