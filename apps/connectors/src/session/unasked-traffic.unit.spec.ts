import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SERVER_REQUESTS_PER_SECOND, MAX_STRAY_MESSAGES_PER_SECOND, UnaskedTraffic } from './unasked-traffic.js';

describe('UnaskedTraffic', () => {
  const clocked = () => {
    const clock = { now: 0 };
    const trips: string[] = [];
    const t = new UnaskedTraffic(
      (r) => trips.push(r),
      () => clock.now,
    );
    return { clock, trips, t };
  };

  it('answers up to the budget in any one second, trips once past it naming the methods, then refuses all', () => {
    const { trips, t } = clocked();
    for (let i = 0; i < MAX_SERVER_REQUESTS_PER_SECOND; i++)
      assert.equal(t.request(i % 2 ? 'roots/list' : 'sampling/createMessage'), true);
    assert.equal(t.request('elicitation/create'), false);
    assert.equal(t.request('ping'), false);
    assert.equal(trips.length, 1);
    assert.equal(
      trips[0],
      'the server sent 21 requests in 1 s, more than 20 (the connectors offer none but ping): sampling/createMessage 10, roots/list 10, elicitation/create 1',
    );
    assert.equal(t.tripped, trips[0]);
  });

  it('a steady rate under the budget never trips', () => {
    const { clock, trips, t } = clocked();
    for (let i = 0; i < 1_000; i++) {
      clock.now = i * 60; // about 16 a second
      assert.equal(t.request('roots/list'), true);
    }
    assert.deepEqual(trips, []);
  });

  it('stray messages have their own, larger budget; method names are cut and cleaned', () => {
    const { trips, t } = clocked();
    for (let i = 0; i < MAX_STRAY_MESSAGES_PER_SECOND; i++) assert.equal(t.stray('a response to no request'), true);
    assert.equal(t.stray(`\u001b[2J${'x'.repeat(100)}`), false);
    assert.match(trips[0]!, /101 messages in 1 s .*: a response to no request 100, \?\[2Jx{56}\.\.\. 1$/);
  });
});
