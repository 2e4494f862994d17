/**
 * Sampler cost: CPU % of one core the sampler uses at the default 5 s interval (and at 1 s for
 * reference), measured with process.cpuUsage() over BENCH_SECONDS (default 60) per interval.
 * Children the sampler spawns (`df`, the shell systeminformation runs for network counters)
 * are not in process.cpuUsage(); on Linux we add them from /proc/self/stat (cutime + cstime).
 * An idle run with the same timer but no sampling is measured first and subtracted; the
 * event-loop delay histogram (part of the sampler) is also measured on its own.
 *
 *   node bench/monitoring/dist/main.js            # 60 s per interval
 *   BENCH_SECONDS=20 node bench/monitoring/dist/main.js
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Sampler, type SamplerOptions } from '@switchyard/monitor';

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

type Mode = { kind: 'idle' } | { kind: 'eld'; resolutionMs: number } | { kind: 'sampler'; options: SamplerOptions };

async function measure(
  intervalMs: number,
  mode: Mode,
): Promise<{ selfPct: number; childPct: number; rounds: number; samples: number }> {
  const sampler = mode.kind === 'sampler' ? new Sampler(mode.options) : undefined;
  const eld = mode.kind === 'eld' ? monitorEventLoopDelay({ resolution: mode.resolutionMs }) : undefined;
  eld?.enable();
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
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const childMs = childrenCpuMs() - k0;
  sampler?.close();
  eld?.disable();
  return { selfPct: ((c.user + c.system) / 1000 / wall) * 100, childPct: (childMs / wall) * 100, rounds, samples };
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
const idle = await measure(5000, { kind: 'idle' });
console.log(`idle baseline (a 5 s timer, no sampling): self ${fmt(idle.selfPct)} % of one core`);
for (const resolutionMs of [20, 50]) {
  const e = await measure(5000, { kind: 'eld', resolutionMs });
  console.log(
    `event-loop delay histogram alone, resolution ${resolutionMs} ms: ${fmt(e.selfPct - idle.selfPct)} % of one core (over idle)`,
  );
}
const runs: [string, number, SamplerOptions][] = [
  ['defaults, 5 s interval (network 5 s, disk 60 s, ELD 20 ms)', 5000, {}],
  ['1 s interval, network 1 s, disk 60 s (reference)', 1000, { networkIntervalMs: 1000 }],
];
for (const [label, interval, options] of runs) {
  const r = await measure(interval, { kind: 'sampler', options });
  const net = r.selfPct - idle.selfPct;
  console.log(
    `${label}: self ${fmt(net)} % over idle + children ${fmt(r.childPct)} % = ${fmt(net + r.childPct)} % of one core; ` +
      `${r.rounds} rounds, ${(r.samples / Math.max(1, r.rounds)).toFixed(1)} samples/round`,
  );
}
