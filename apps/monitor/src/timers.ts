/**
 * The longest delay setTimeout takes. Node runs a longer one after 1 ms (with a
 * TimeoutOverflowWarning), so a caller re-arming until a far deadline would spin.
 */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

/** What a timer needs from the outside world; a fake one in specs. */
export interface TimerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: TimerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A pending timer: `cancel` is idempotent, `due` the epoch ms it runs at. */
export interface Timer {
  readonly due: number;
  cancel(): void;
}

/**
 * Run `fn` once at epoch ms `due` (at once when it is past), waiting in chunks of at most
 * MAX_TIMER_DELAY_MS. A chunk that ends early by the clock (timers and Date.now() may differ by a
 * millisecond) waits the rest; each wait is at least 1 ms, so nothing re-arms in a tight loop.
 */
export function timerAt(due: number, fn: () => void, clock: TimerClock = systemClock): Timer {
  let handle: unknown;
  let canceled = false;
  const wait = (ms: number): void => {
    handle = clock.setTimeout(
      () => {
        if (!canceled) arm();
      },
      Math.min(ms, MAX_TIMER_DELAY_MS),
    );
  };
  const arm = (): void => {
    const left = due - clock.now();
    if (left <= 0) {
      handle = undefined;
      fn();
      return;
    }
    wait(Math.max(1, Math.ceil(left)));
  };
  // Always through a timer, even when due: a caller arming inside a commit gets `fn` after it.
  wait(Math.max(0, Math.ceil(due - clock.now())));
  return {
    due,
    cancel() {
      canceled = true;
      if (handle !== undefined) clock.clearTimeout(handle);
      handle = undefined;
    },
  };
}
