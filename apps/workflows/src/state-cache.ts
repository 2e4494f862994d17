import type { CachedState } from './engine-types.js';

/**
 * The owner's cache of execution states (see CachedState): commands decide against it and the
 * saga skips events it already handled. Bounded, not an LRU: past the bound it starts over, and
 * a miss only costs a read of the stream.
 */
export class StateCache extends Map<string, CachedState> {
  constructor(private readonly bound = 20_000) {
    super();
  }

  remember(executionId: string, entry: CachedState): void {
    if (this.size > this.bound && !this.has(executionId)) this.clear();
    this.set(executionId, entry);
  }
}
