import { NOOP_TASK_TYPE, noopInput } from '@switchyard/contracts';
import { AppError } from '@switchyard/platform';
import type { AgentName, TaskDefinition } from '../types.js';

/**
 * `noop`: FOR BENCHMARKS AND TESTS ONLY. It does no work over the business data; it waits
 * `sleep_ms` (honouring the abort signal), optionally fails, and echoes `echo`. Agents serve it
 * only when started with `noop: true`, so it never shows up in a production capability card
 * unless asked for. It lets the delegation bench measure the pure overhead of
 * gateway -> dispatcher -> agent -> result, and lets tests hold an agent busy for a known time.
 */
export { NOOP_TASK_TYPE, noopInput };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted)
      return reject(new AppError('timeout', 'task aborted by caller', { reason: String(signal.reason ?? '') }));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new AppError('timeout', 'task aborted by caller', { reason: String(signal.reason ?? '') }));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The noop definition bound to one agent (each agent that enables it serves it under its own name). */
export function noopTask(agent: string): TaskDefinition<typeof noopInput, { echo: unknown; slept_ms: number }> {
  return {
    taskType: NOOP_TASK_TYPE,
    agent: agent as AgentName,
    description: 'Benchmark/test only: waits sleep_ms and echoes `echo`; does no business work',
    input: noopInput,
    handle: async (input, ctx) => {
      if (input.sleep_ms > 0) await sleep(input.sleep_ms, ctx.signal);
      if (input.fail === 'retryable') throw new AppError('unavailable', 'noop asked to fail (retryable)');
      if (input.fail === 'fatal') throw new AppError('validation', 'noop asked to fail (fatal)', {}, false);
      if (input.fail === 'throw') throw new TypeError('noop asked to throw');
      return { echo: input.echo ?? null, slept_ms: input.sleep_ms };
    },
  };
}
