import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decideHealth,
  evolveHealth,
  initialServiceHealth,
  type HealthCommand,
  type HealthEvent,
  type HealthPolicy,
  type RecordProbeResult,
} from './health.js';

const policy: HealthPolicy = { degradedResponseMs: 1000, downAfterMs: 10_000 };
const probe = (ok: boolean, responseMs: number, at: number, p = policy): RecordProbeResult => ({
  type: 'RecordProbeResult',
  data: { service: 'db', result: { ok, responseMs, ...(ok ? {} : { error: 'refused' }) }, policy: p },
  metadata: { at },
});
function run(cmds: RecordProbeResult[]) {
  let state = initialServiceHealth;
  const events: HealthEvent[] = [];
  for (const c of cmds) {
    const out = decideHealth(c, state);
    events.push(...out);
    state = out.reduce(evolveHealth, state);
  }
  return { state, types: events.map((e) => e.type), events };
}

describe('service health', () => {
  it('first good probe: up (recovered from unknown)', () => {
    const { types, events } = run([probe(true, 5, 0)]);
    assert.deepEqual(types, ['ServiceRecovered']);
    assert.equal(events[0]!.data.previous, 'unknown');
  });
  it('events only on change', () => {
    assert.deepEqual(run([probe(true, 5, 0), probe(true, 6, 1), probe(true, 7, 2)]).types, ['ServiceRecovered']);
  });
  it('slow answers degrade, fast ones recover', () => {
    assert.deepEqual(run([probe(true, 5, 0), probe(true, 1500, 1), probe(true, 2000, 2), probe(true, 10, 3)]).types, [
      'ServiceRecovered',
      'ServiceDegraded',
      'ServiceRecovered',
    ]);
  });
  it('failures degrade, then go down after downAfterMs, once', () => {
    const r = run([
      probe(true, 5, 0),
      probe(false, 0, 1000),
      probe(false, 0, 5000),
      probe(false, 0, 11_000),
      probe(false, 0, 20_000),
    ]);
    assert.deepEqual(r.types, ['ServiceRecovered', 'ServiceDegraded', 'ServiceWentDown']);
    assert.equal(r.state.status, 'down');
    assert.equal((r.events[2] as Extract<HealthEvent, { type: 'ServiceWentDown' }>).data.failingSince, 1000);
  });
  it('a success between failures restarts the down clock', () => {
    const r = run([
      probe(true, 5, 0),
      probe(false, 0, 1000),
      probe(true, 5, 5000),
      probe(false, 0, 9000),
      probe(false, 0, 12_000),
    ]);
    assert.equal(r.state.status, 'degraded');
  });
  it('slow then failing changes the reason', () => {
    assert.deepEqual(run([probe(true, 5000, 0), probe(false, 0, 1)]).types, ['ServiceDegraded', 'ServiceDegraded']);
  });
  it('downAfterMs 0: the first failure is down; a good probe recovers', () => {
    const p0 = { ...policy, downAfterMs: 0 };
    assert.deepEqual(run([probe(true, 1, 0, p0), probe(false, 0, 1, p0), probe(true, 1, 2, p0)]).types, [
      'ServiceRecovered',
      'ServiceWentDown',
      'ServiceRecovered',
    ]);
  });
  it('a failure dates from when its probe was sent: a timed-out probe is down at once when it waited past downAfterMs', () => {
    const timedOut = (sentAt: number, at: number): RecordProbeResult => ({
      ...probe(false, at - sentAt, at),
      data: { ...probe(false, at - sentAt, at).data, sentAt },
    });
    const r = run([probe(true, 5, 0), timedOut(1_000, 16_000), timedOut(16_000, 31_000)]);
    assert.deepEqual(r.types, ['ServiceRecovered', 'ServiceWentDown']);
    const down = r.events[1] as Extract<HealthEvent, { type: 'ServiceWentDown' }>;
    assert.equal(down.data.failingSince, 1_000, 'since the first failed probe went out');
    assert.equal(down.metadata.at, 16_000, 'decided when its timeout ended');
  });
  it('a quick failure under downAfterMs degrades, failing since it was sent; a send time after the outcome is not believed', () => {
    const at = (sentAt: number, t: number): RecordProbeResult => ({
      ...probe(false, 3, t),
      data: { ...probe(false, 3, t).data, sentAt },
    });
    const r = run([probe(true, 5, 0), at(4_997, 5_000), at(9_997, 10_000), at(14_997, 15_000)]);
    assert.deepEqual(r.types, ['ServiceRecovered', 'ServiceDegraded', 'ServiceWentDown']);
    assert.equal((r.events[2] as Extract<HealthEvent, { type: 'ServiceWentDown' }>).data.failingSince, 4_997);
    const late = run([probe(true, 5, 0), at(9_000, 5_000)]);
    assert.equal((late.events[1] as Extract<HealthEvent, { type: 'ServiceDegraded' }>).data.failingSince, 5_000);
  });
  it("the probe's kind rides on the events (the services read model is rebuilt from them)", () => {
    const cmd: RecordProbeResult = {
      type: 'RecordProbeResult',
      data: { service: 'mcp:fetch', kind: 'mcp', result: { ok: true, responseMs: 3 }, policy },
      metadata: { at: 7 },
    };
    assert.deepEqual(decideHealth(cmd, initialServiceHealth), [
      {
        type: 'ServiceRecovered',
        data: { service: 'mcp:fetch', kind: 'mcp', previous: 'unknown', responseMs: 3, error: null },
        metadata: { at: 7 },
      },
    ]);
  });
});

describe('service health across a monitor restart and a retirement', () => {
  const gap = (from: number, to: number): HealthCommand => ({
    type: 'MarkUnmonitored',
    data: { service: 'db', from, to, countsAs: 'down' },
    metadata: { at: to },
  });
  it('given up, when the monitor was not running, then ServiceUnmonitored and the next good probe is a new verdict', () => {
    let state = run([probe(true, 5, 0)]).state;
    const evs = decideHealth(gap(100, 300), state);
    assert.deepEqual(
      evs.map((e) => [e.type, e.data]),
      [['ServiceUnmonitored', { service: 'db', previous: 'up', from: 100, to: 300, countsAs: 'down' }]],
    );
    state = evs.reduce(evolveHealth, state);
    assert.equal(state.status, 'unknown');
    const next = decideHealth(probe(true, 5, 305), state);
    assert.deepEqual(
      next.map((e) => [e.type, e.data.previous, e.metadata.at]),
      [['ServiceRecovered', 'unknown', 305]],
    );
  });
  it('given never probed (or already without evidence), when a gap is marked, then nothing happens', () => {
    assert.deepEqual(decideHealth(gap(100, 300), initialServiceHealth), []);
  });
  it('given down, when retired, then ServiceRetired with its last probe', () => {
    const { state } = run([probe(false, 1, 0), probe(false, 1, 20_000)]);
    assert.equal(state.status, 'down');
    const evs = decideHealth(
      { type: 'RetireService', data: { service: 'db', lastProbeAt: 20_000, reason: 'gone' }, metadata: { at: 90_000 } },
      state,
    );
    assert.deepEqual(
      evs.map((e) => [e.type, e.data]),
      [['ServiceRetired', { service: 'db', previous: 'down', lastProbeAt: 20_000, reason: 'gone' }]],
    );
    assert.equal(evs.reduce(evolveHealth, state).status, 'unknown');
  });
  it('given listed but unconfigured, then ServiceUnconfigured once per reason; a gap claims nothing; its first probe decides', () => {
    const mark = (reason: string, at: number): HealthCommand => ({
      type: 'MarkUnconfigured',
      data: { service: 'mcp:github', kind: 'mcp', reason },
      metadata: { at },
    });
    const first = decideHealth(mark('token not set', 100), initialServiceHealth);
    assert.deepEqual(
      first.map((e) => [e.type, e.data]),
      [['ServiceUnconfigured', { service: 'mcp:github', kind: 'mcp', previous: 'unknown', reason: 'token not set' }]],
    );
    const state = first.reduce(evolveHealth, initialServiceHealth);
    assert.deepEqual(state, { status: 'unconfigured', since: 100, reason: 'token not set' });
    assert.deepEqual(decideHealth(mark('token not set', 200), state), [], 'same reason: nothing new');
    assert.equal(decideHealth(mark('url not set', 300), state).length, 1, 'another reason: recorded');
    assert.deepEqual(decideHealth(gap(50, 400), state), [], 'never probed: no gap to mark');
    const probed = decideHealth(probe(true, 5, 500), state);
    assert.deepEqual(
      probed.map((e) => [e.type, e.data.previous]),
      [['ServiceRecovered', 'unconfigured']],
    );
  });
});
