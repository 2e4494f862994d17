/**
 * Queue order with aging. A task's effective priority is its base rank plus one level for every
 * `agingMs` it has waited, so a `low` task that waited long enough overtakes a fresh `normal`
 * (and eventually anything): nothing starves. Pure: `now` is passed in.
 */
import type { TaskPriority } from './types.js';

export const priorityRank: Readonly<Record<TaskPriority, number>> = { critical: 3, high: 2, normal: 1, low: 0 };

/** Default: one level per 30 s of waiting (a low task beats a fresh critical after ~90 s). */
export const DEFAULT_AGING_MS = 30_000;

export function effectivePriority(
  priority: TaskPriority,
  waitingSinceMs: number,
  nowMs: number,
  agingMs = DEFAULT_AGING_MS,
): number {
  const waited = Math.max(0, nowMs - waitingSinceMs);
  return priorityRank[priority] + (agingMs > 0 ? waited / agingMs : 0);
}

export interface QueuedRef {
  readonly task_id: string;
  readonly priority: TaskPriority;
  /** When the task first entered the queue (submission): a retried task keeps its age. */
  readonly waiting_since_ms: number;
}

/** Highest effective priority first; ties go to the older task, then the task id (stable). */
export function orderQueue<T extends QueuedRef>(queue: readonly T[], nowMs: number, agingMs = DEFAULT_AGING_MS): T[] {
  return [...queue].sort(
    (a, b) =>
      effectivePriority(b.priority, b.waiting_since_ms, nowMs, agingMs) -
        effectivePriority(a.priority, a.waiting_since_ms, nowMs, agingMs) ||
      a.waiting_since_ms - b.waiting_since_ms ||
      (a.task_id < b.task_id ? -1 : a.task_id > b.task_id ? 1 : 0),
  );
}
