import { performance } from 'node:perf_hooks';

/**
 * The longest delay setTimeout takes. Node runs a longer one after 1 ms (with a
 * TimeoutOverflowWarning), so a caller re-arming until a far deadline would spin.
 */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

/** What a timer needs from the outside world; a fake one in specs. */
export interface TimerClock {
  /** The wall clock (epoch ms): what a `due` is given in. NTP steps and suspends move it. */
  now(): number;
  /**
   * A monotonic reading (ms from an arbitrary origin): what a delay is measured by. Steps of the
   * wall clock leave it alone, as they leave setTimeout alone.
   */
  monotonicNow(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: TimerClock = {
  now: () => Date.now(),
  monotonicNow: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** A pending timer: `cancel` is idempotent, `due` the epoch ms it was asked to run at. */
export interface Timer {
  readonly due: number;
  cancel(): void;
}

/**
 * Run `fn` once `delayMs` from now by the monotonic clock (on the next turn when it is 0 or less).
 * A step of the wall clock neither delays it (a step back of two hours would otherwise hold every
 * loop for two hours) nor brings it forward. Waits in chunks of at most MAX_TIMER_DELAY_MS; a chunk
 * that ends early by the monotonic clock (timers round) waits the rest, at least 1 ms, so nothing
 * re-arms in a tight loop.
 */
export function timerAfter(delayMs: number, fn: () => void, clock: TimerClock = systemClock): Timer {
  return arm(clock.now() + delayMs, delayMs, fn, clock);
}

/**
 * Run `fn` once at epoch ms `due`: after the delay from now to `due`, measured on the monotonic
 * clock (see timerAfter), so a later step of the wall clock does not move it. `due` is kept as given.
 */
export function timerAt(due: number, fn: () => void, clock: TimerClock = systemClock): Timer {
  return arm(due, due - clock.now(), fn, clock);
}

function arm(due: number, delayMs: number, fn: () => void, clock: TimerClock): Timer {
  const deadline = clock.monotonicNow() + Math.max(0, delayMs);
  let handle: unknown;
  let canceled = false;
  const wait = (ms: number): void => {
    handle = clock.setTimeout(
      () => {
        if (!canceled) check();
      },
      Math.min(ms, MAX_TIMER_DELAY_MS),
    );
  };
  const check = (): void => {
    const left = deadline - clock.monotonicNow();
    if (left <= 0) {
      handle = undefined;
      fn();
      return;
    }
    wait(Math.max(1, Math.ceil(left)));
  };
  // Always through a timer, even when due: a caller arming inside a commit gets `fn` after it.
  wait(Math.max(0, Math.ceil(delayMs)));
  return {
    due,
    cancel() {
      canceled = true;
      if (handle !== undefined) clock.clearTimeout(handle);
      handle = undefined;
    },
  };
}
