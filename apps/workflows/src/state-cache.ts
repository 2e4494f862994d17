import { processMemoryBudget } from '@switchyard/platform';
import type { CachedState } from './engine-types.js';

/** A state not used for this long is dropped (an execution waiting for a signal or a timer for days holds nothing). */
export const STATE_IDLE_MS = 60_000;
/**
 * Share of the process's memory ceiling past which the cache is dropped (but for the states used
 * in the last RECENT_MS): the ceiling is the smallest of V8's heap limit and the container's
 * (MemoryBudget), since V8 sizes its heap from the host's memory, past what a container allows.
 */
export const MEMORY_PRESSURE_SHARE = 0.5;
/**
 * States used this recently stay under heap pressure: a command's state is remembered before its
 * events come back through the subscription, which skips them by it; without the state those
 * events would be handled a second time (a unit sent again).
 */
export const RECENT_MS = 10_000;

/**
 * The owner's cache of execution states (see CachedState): commands decide against it and the
 * saga skips events it already handled. A miss only costs a read of the stream, so the cache
 * gives way before memory does:
 * - bounded in count: past the bound it starts over;
 * - a state not used for STATE_IDLE_MS is dropped (`sweep`): one execution may hold tens of MB
 *   (its input, outputs and signals as parsed objects, many times their JSON's size when made of
 *   small values), and operators can leave any number of them waiting;
 * - when the process's memory passes MEMORY_PRESSURE_SHARE of its ceiling, every state not used
 *   in the last RECENT_MS is dropped (`sweep`).
 */
export class StateCache extends Map<string, CachedState> {
  private readonly usedAt = new Map<string, number>();

  constructor(
    private readonly bound = 20_000,
    private readonly idleMs = STATE_IDLE_MS,
    private readonly memoryShare: () => number = () => processMemoryBudget().read().share,
  ) {
    super();
  }

  remember(executionId: string, entry: CachedState, now = performance.now()): void {
    if (this.size > this.bound && !this.has(executionId)) this.clear();
    this.set(executionId, entry);
    this.usedAt.set(executionId, now);
  }

  override delete(executionId: string): boolean {
    this.usedAt.delete(executionId);
    return super.delete(executionId);
  }

  override clear(): void {
    this.usedAt.clear();
    super.clear();
  }

  /** Drop what was not used for `idleMs`, or under memory pressure for RECENT_MS. Returns what it dropped, and why. */
  sweep(now = performance.now()): { dropped: number; why: 'idle' | 'memory' } {
    const why = this.memoryShare() > MEMORY_PRESSURE_SHARE ? 'memory' : 'idle';
    const keep = why === 'memory' ? Math.min(RECENT_MS, this.idleMs) : this.idleMs;
    let dropped = 0;
    for (const [id, at] of this.usedAt) {
      if (now - at < keep) continue;
      this.delete(id);
      dropped++;
    }
    return { dropped, why };
  }
}
