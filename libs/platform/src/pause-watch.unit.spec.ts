import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PauseWatch } from './pause-watch.js';

describe('PauseWatch', () => {
  const clock = () => {
    let t = 0;
    return { now: () => t, at: (ms: number) => (t = ms) };
  };

  it('says 0 while the ticks come on time, even a little late under load', () => {
    const c = clock();
    const w = new PauseWatch({ tickMs: 100, thresholdMs: 1_000, now: c.now });
    for (let t = 100; t <= 1_000; t += 100) {
      c.at(t);
      w.tick();
    }
    c.at(1_500); // 400 ms late: a busy loop, not a pause
    w.tick();
    assert.equal(w.pausedFor(), 0);
  });

  it('a late tick ends a pause of its lateness, which counts for the window after it, then no more', () => {
    const c = clock();
    const w = new PauseWatch({ tickMs: 100, thresholdMs: 1_000, windowMs: 1_000, now: c.now });
    c.at(100);
    w.tick();
    c.at(30_200); // stopped for 30 s
    w.tick();
    assert.equal(w.pausedFor(), 30_000);
    for (let t = 30_300; t <= 31_100; t += 100) {
      c.at(t);
      w.tick();
    }
    assert.equal(w.pausedFor(), 30_000, 'a request read within the window still sees it');
    c.at(31_300);
    w.tick();
    assert.equal(w.pausedFor(), 0, 'after the window: not waking any more');
  });

  it('I/O that runs before the late tick (woken inside its poll) sees the pause as it still runs', () => {
    const c = clock();
    const w = new PauseWatch({ tickMs: 100, thresholdMs: 1_000, now: c.now });
    c.at(100);
    w.tick();
    c.at(8_150); // woken; the tick has not run yet
    assert.equal(w.pausedFor(), 7_950);
  });
});
