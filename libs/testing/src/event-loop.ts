import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * The longest event-loop block (ms) while `run` works, sampled at a coarse 20 ms resolution.
 * On a shared, loaded machine the OS can deschedule the whole process for a while, which the
 * histogram counts as a block too; a block the request itself causes is the same on every try.
 * So `run` is tried up to `attempts` (5) times (each a fresh request) and the smallest of the
 * maxima is returned, with every try's result: a real block cannot hide, preemption can.
 */
export async function longestEventLoopBlock<T>(
  run: () => Promise<T>,
  opts: { attempts?: number; belowMs?: number } = {},
): Promise<{ maxMs: number; results: [T, ...T[]]; tries: number[] }> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const results: T[] = [];
  const tries: number[] = [];
  for (let i = 0; i < attempts; i++) {
    const h = monitorEventLoopDelay({ resolution: 20 });
    h.enable();
    try {
      results.push(await run());
      await new Promise((r) => setTimeout(r, 50)); // a block at the very end is sampled too
    } finally {
      h.disable();
    }
    const ms = h.max / 1e6;
    tries.push(ms);
    if (opts.belowMs !== undefined && ms < opts.belowMs) break;
  }
  // At least one attempt ran (attempts >= 1), so results has a first element.
  return { maxMs: Math.min(...tries), results: results as [T, ...T[]], tries };
}
