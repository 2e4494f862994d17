import type { Logger } from '@switchyard/platform';
import type { CommandMetadata, UnitState, WorkflowExecutionState } from '@switchyard/domain';
import type { WorkflowEngineOptions } from './engine-types.js';
import { StateCache } from './state-cache.js';

export const ACTOR = 'system:orchestrator';

/**
 * What the engine's parts (saga, step dispatch, timers, recovery) share: the options, the logger,
 * the partitions this process drives, the owner's state cache, the counters and the background
 * work `stop` waits for. The engine builds one and hands it to each part.
 */
export class EngineRuntime {
  /** Partitions this process drives: taken up by recovery, dropped when their lease is lost. */
  readonly owned = new Set<number>();
  /**
   * Owned partitions whose executions were recovered since they were acquired: only their timers
   * fire. A timeout armed before a crash must not fire before recovery has re-sent its unit (and
   * restarted its clock), or the downtime would be charged to the step.
   */
  readonly ready = new Set<number>();
  readonly cache = new StateCache();
  /** Background work (dispatches, recoveries, stop requests) that the engine's stop waits for. */
  readonly work = new Set<Promise<unknown>>();
  readonly counts = { eventsHandled: 0, dispatches: 0, timersFired: 0, recoveries: 0, resends: 0 };
  /** Set by the engine's stop: loops and retries end, nothing new is sent. */
  stopped = false;

  constructor(
    readonly o: WorkflowEngineOptions,
    readonly log: Logger,
    /** Number of partitions executions are hashed into. */
    readonly partitions: number,
  ) {}

  /** The engine's wall clock (ms since the epoch): what its commands are stamped with and its timers are due by. */
  now(): number {
    return this.o.wallClock ? this.o.wallClock() : Date.now();
  }

  meta(correlationId: string): CommandMetadata {
    return { timestamp: new Date(this.now()).toISOString(), actor: ACTOR, correlationId };
  }

  track<T>(p: Promise<T>): void {
    const q = p.catch((err) => this.log.error({ err }, 'background work failed'));
    this.work.add(q);
    void q.finally(() => this.work.delete(q));
  }
}

export function unitIn(
  state: WorkflowExecutionState,
  ref: { stepId: string; itemIndex?: number },
): UnitState | undefined {
  if (state.status === 'not_started') return undefined;
  return state.steps[ref.stepId]?.units[ref.itemIndex ?? 0];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
