import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TIMER_DELAY_MS, timerAfter, timerAt, type TimerClock } from './timers.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

/**
 * A clock whose time moves only when the spec says; records every delay asked for. `now` is the
 * monotonic time (what timers run by); the wall clock is it plus an offset `stepWall` moves, as an
 * NTP step or a resume moves the wall clock and not the monotonic one.
 */
function fakeClock(start = 0) {
  let now = start;
  let wallOffset = 0;
  let seq = 0;
  const pending = new Map<number, { at: number; fn: () => void }>();
  const delays: number[] = [];
  const clock: TimerClock = {
    now: () => now + wallOffset,
    monotonicNow: () => now,
    setTimeout(fn, ms) {
      delays.push(ms);
      const id = ++seq;
      pending.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout(handle) {
      pending.delete(handle as number);
    },
  };
  /** Move the clock to `to`, running timers in order as their time comes; the first one `early` ms before its time. */
  const advance = (to: number, early = 0) => {
    for (;;) {
      const next = [...pending.entries()].sort((a, b) => a[1].at - b[1].at)[0];
      if (!next || next[1].at > to) break;
      pending.delete(next[0]);
      now = Math.max(now, next[1].at - early);
      early = 0;
      next[1].fn();
    }
    now = to;
  };
  const stepWall = (byMs: number) => {
    wallOffset += byMs;
  };
  return { clock, advance, delays, pending, now: () => now, stepWall };
}

describe('timerAt', () => {
  it('waits 30 days in chunks no timer clamps, and runs once at the deadline', () => {
    const c = fakeClock(1_000);
    const ran: number[] = [];
    timerAt(1_000 + 30 * DAY, () => ran.push(c.now()), c.clock);
    c.advance(1_000 + 30 * DAY - 1);
    assert.deepEqual(ran, []);
    c.advance(1_000 + 40 * DAY);
    assert.deepEqual(ran, [1_000 + 30 * DAY]);
    assert.ok(
      c.delays.every((d) => d >= 0 && d <= MAX_TIMER_DELAY_MS),
      `every delay fits a timer: ${c.delays.join(',')}`,
    );
    assert.ok(c.delays.length <= 3, `a handful of timers, not a loop: ${c.delays.length}`);
    assert.equal(c.pending.size, 0);
  });

  it('the longest deadline the contract allows past 2^31-1 ms: still a few timers', () => {
    const c = fakeClock();
    let ran = 0;
    timerAt(2 ** 40, () => ran++, c.clock);
    c.advance(2 ** 40);
    assert.equal(ran, 1);
    assert.ok(c.delays.length <= 2 ** 40 / MAX_TIMER_DELAY_MS + 2, String(c.delays.length));
  });

  it('a timer that fires early by the clock waits the rest (at least 1 ms), then runs', () => {
    const c = fakeClock();
    let ran = 0;
    timerAt(5_000, () => ran++, c.clock);
    c.advance(5_000, 1);
    assert.equal(ran, 1);
    assert.ok(c.delays.slice(1).every((d) => d >= 1));
  });

  it('a deadline already past runs on the next turn, not inside the caller', () => {
    const c = fakeClock(10_000);
    let ran = 0;
    timerAt(5_000, () => ran++, c.clock);
    assert.equal(ran, 0);
    c.advance(10_000);
    assert.equal(ran, 1);
  });

  it('cancel stops it for good, between chunks too', () => {
    const c = fakeClock();
    let ran = 0;
    const t = timerAt(30 * DAY, () => ran++, c.clock);
    c.advance(25 * DAY);
    t.cancel();
    t.cancel();
    c.advance(60 * DAY);
    assert.equal(ran, 0);
    assert.equal(c.pending.size, 0, 'no timer left armed');
  });

  it('a step back of the wall clock does not delay it: it runs when its delay has passed', () => {
    const c = fakeClock(1_000);
    const ran: number[] = [];
    timerAt(c.clock.now() + 10_000, () => ran.push(c.now()), c.clock);
    c.advance(4_000);
    c.stepWall(-2 * HOUR);
    c.advance(1_000 + 10_000 + 5);
    assert.deepEqual(ran, [11_000], 'ran 10 s after it was armed, not 2 h later');
    assert.equal(c.pending.size, 0);
  });

  it('a step back before the first chunk ends, on a delay longer than one timer, still costs nothing', () => {
    const c = fakeClock();
    const ran: number[] = [];
    timerAfter(30 * DAY, () => ran.push(c.now()), c.clock);
    c.stepWall(-7 * DAY);
    c.advance(30 * DAY);
    assert.deepEqual(ran, [30 * DAY]);
    assert.ok(c.delays.every((d) => d >= 0 && d <= MAX_TIMER_DELAY_MS));
  });

  it('a step forward of the wall clock does not bring it forward (an alert `for` is not cut short)', () => {
    const c = fakeClock();
    const ran: number[] = [];
    const t = timerAfter(60_000, () => ran.push(c.now()), c.clock);
    c.stepWall(2 * HOUR);
    c.advance(59_999);
    assert.deepEqual(ran, []);
    c.advance(60_000);
    assert.deepEqual(ran, [60_000]);
    assert.equal(t.due, 60_000, 'the wall time it was asked for, as it read when armed');
  });
});
