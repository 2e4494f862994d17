import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError } from '@switchyard/platform';
import {
  decideAlerting,
  dueSilences,
  evolveAlerting,
  initialAlertingState,
  invalidMatchers,
  matcherMatches,
  MAX_SILENCES,
  shouldNotify,
  type AlertingCommand,
  type AlertingEvent,
  type AlertingState,
} from './alerts.js';
import { alertLabels, defaultAlertRules, fingerprint, metricNames, ruleMatches, type AlertRule } from './rules.js';
import { MAX_SILENCES_REGEX_PROGRAM_SIZE } from '@switchyard/contracts';

// given(events).when(command).then(types) in the style of emmett's DeciderSpecification.
function given(events: AlertingEvent[]) {
  const state = events.reduce(evolveAlerting, initialAlertingState);
  return {
    state,
    when(command: AlertingCommand) {
      return {
        events: () => decideAlerting(command, state),
        then(types: string[]) {
          const out = decideAlerting(command, state);
          assert.deepEqual(
            out.map((e) => e.type),
            types,
          );
          return out;
        },
        thenNothingHappened() {
          assert.deepEqual(decideAlerting(command, state), []);
        },
        thenThrows(code: string) {
          assert.throws(
            () => decideAlerting(command, state),
            (e: unknown) => e instanceof AppError && e.code === code,
          );
        },
      };
    },
  };
}

const rule: AlertRule = {
  id: 'cpu_high',
  name: 'CPU high',
  metric: 'cpu',
  match: {},
  comparator: '>',
  threshold: 80,
  for_ms: 60_000,
  severity: 'warning',
  labels: { team: 'ops' },
};
const series = { host: 'a' };
const evalAt = (
  value: number,
  at: number,
  r: AlertRule = rule,
  labels: Record<string, string> = series,
): AlertingCommand => ({ type: 'EvaluateSample', data: { rule: r, labels, value }, metadata: { at } });
const run = (cmds: AlertingCommand[], start: AlertingState = initialAlertingState) => {
  let state = start;
  const all: AlertingEvent[] = [];
  for (const c of cmds) {
    const evs = decideAlerting(c, state);
    all.push(...evs);
    state = evs.reduce(evolveAlerting, state);
  }
  return { state, events: all };
};
const fp = fingerprint('cpu_high', { host: 'a', team: 'ops' });

describe('a pending alert judged by the time the monitor measured (`pendingForMs`), not by the wall clock', () => {
  const measured = (value: number, at: number, pendingForMs: number): AlertingCommand => ({
    type: 'EvaluateSample',
    data: { rule, labels: series, value, pendingForMs },
    metadata: { at },
  });
  const { events: before } = run([evalAt(95, 0)]);
  it('across a restart: pending since 0, down until 100 s, so at 120 s only 20 s were observed', () => {
    assert.deepEqual(
      before.map((e) => e.type),
      ['AlertPending'],
    );
    given(before)
      .when(measured(95, 120_000, 20_000))
      .thenNothingHappened();
    given(before)
      .when(measured(95, 160_000, 60_000))
      .then(['AlertFiring']);
    // Without a measure the wall clock decides: the same sample at 120 s fires.
    given(before).when(evalAt(95, 120_000)).then(['AlertFiring']);
  });
  it('after a step back of an hour: fires once its `for` has elapsed, though the wall clock shows it pending for less', () => {
    const [firing] = given(before)
      .when(measured(95, 60_000 - 3_600_000, 60_000))
      .then(['AlertFiring']);
    assert.equal(firing?.type === 'AlertFiring' && firing.data.pendingSince, 0);
  });
  it('after a step forward of an hour: holds until its `for` has elapsed, though the wall clock shows an hour', () =>
    given(before)
      .when(measured(95, 3_600_000 + 10_000, 10_000))
      .thenNothingHappened());
});

describe('alert fingerprint', () => {
  it('does not depend on label order and differs per label set', () => {
    assert.equal(fingerprint('r', { a: '1', b: '2' }), fingerprint('r', { b: '2', a: '1' }));
    assert.notEqual(fingerprint('r', { a: '1' }), fingerprint('r', { a: '2' }));
    assert.notEqual(fingerprint('r', { a: '1' }), fingerprint('s', { a: '1' }));
    assert.match(fingerprint('r', {}), /^[0-9a-f]{16}$/);
  });
  it('the default rules are the ones of the issue', () => {
    const byId = Object.fromEntries(defaultAlertRules.map((r) => [r.id, r]));
    assert.equal(byId.cpu_high!.threshold, 80);
    assert.equal(byId.memory_high!.threshold, 85);
    assert.equal(byId.disk_high!.threshold, 90);
    assert.equal(byId.response_slow!.threshold, 5000);
    assert.equal(byId.service_unavailable!.for_ms, 30_000);
  });
});

// The two service rules exactly as the defaults define them, driven by probe samples.
describe('seed rule: response time > 5 s', () => {
  const slow = defaultAlertRules.find((r) => r.id === 'response_slow')!;
  const svc = { service: 'api', kind: 'http' };
  const sample = (ms: number, at: number) => evalAt(ms, at, slow, svc);
  it('watches the probe response time with no `for`', () => {
    assert.equal(slow.metric, metricNames.probeResponseMs);
    assert.equal(slow.for_ms, 0);
  });
  it('5 s exactly is not above 5 s', () => given([]).when(sample(5_000, 0)).thenNothingHappened());
  it('fires on the first answer (or wait) past 5 s', () => {
    const [, firing] = given([]).when(sample(5_001, 7_000)).then(['AlertPending', 'AlertFiring']);
    assert.equal(firing!.metadata.at, 7_000);
  });
  it('stays firing while slow and resolves on the first answer of 5 s or less', () => {
    const { events } = run([sample(5_001, 0), sample(6_000, 1_000), sample(6_000, 2_000), sample(12, 3_000)]);
    assert.deepEqual(
      events.map((e) => e.type),
      ['AlertPending', 'AlertFiring', 'AlertResolved'],
    );
    assert.equal(events.at(-1)!.metadata.at, 3_000);
  });
});

describe('seed rule: service unavailable > 30 s', () => {
  const down = defaultAlertRules.find((r) => r.id === 'service_unavailable')!;
  const svc = { service: 'api', kind: 'http' };
  const probe = (ok: boolean, at: number) => evalAt(ok ? 1 : 0, at, down, svc);
  const failing = run([probe(true, 0), probe(false, 10_000)]);
  it('watches every probe outcome, not the down-marking', () => {
    assert.equal(down.metric, metricNames.probeUp);
    assert.equal(down.comparator, '<');
    assert.equal(down.threshold, 1);
  });
  it('is pending from the first failed probe', () => {
    assert.deepEqual(
      failing.events.map((e) => e.type),
      ['AlertPending'],
    );
    assert.equal(failing.events[0]!.metadata.at, 10_000);
  });
  it('does not fire 1 ms before 30 s after the first failure', () => {
    assert.deepEqual(decideAlerting(probe(false, 39_999), failing.state), []);
  });
  it('fires 30 s after the first failure', () => {
    const [e] = decideAlerting(probe(false, 40_000), failing.state);
    assert.equal(e?.type, 'AlertFiring');
    assert.equal(e?.type === 'AlertFiring' && e.data.pendingSince, 10_000);
  });
  it('one successful probe before 30 s clears it, and the next failure starts the 30 s again', () => {
    const { events, state } = run(
      [probe(false, 20_000), probe(true, 25_000), probe(false, 30_000), probe(false, 55_000)],
      failing.state,
    );
    assert.deepEqual(
      events.map((e) => e.type),
      ['AlertPendingCleared', 'AlertPending'],
    );
    assert.equal(decideAlerting(probe(false, 60_000), state)[0]?.type, 'AlertFiring');
  });
  it('resolves on the first successful probe', () => {
    const { events } = run([probe(false, 40_000), probe(false, 41_000), probe(true, 42_000)], failing.state);
    assert.deepEqual(
      events.map((e) => e.type),
      ['AlertFiring', 'AlertResolved'],
    );
  });
});

describe('inactive alert', () => {
  it('a sample under the threshold changes nothing', () => given([]).when(evalAt(50, 0)).thenNothingHappened());
  it('a breach makes it pending', () => {
    const [e] = given([]).when(evalAt(95, 1000)).then(['AlertPending']) as Extract<
      AlertingEvent,
      { type: 'AlertPending' }
    >[];
    assert.equal(e!.data.fingerprint, fp);
    assert.deepEqual(e!.data.labels, alertLabels(rule, series));
  });
  it('with for 0 a breach fires at once', () => {
    given([])
      .when(evalAt(95, 0, { ...rule, for_ms: 0 }))
      .then(['AlertPending', 'AlertFiring']);
  });
  it('NaN is no data, not a breach', () => given([]).when(evalAt(Number.NaN, 0)).thenNothingHappened());
  it('cannot be resolved by hand', () =>
    given([])
      .when({ type: 'ResolveManually', data: { fingerprint: 'nope', actor: 'ann', reason: 'x' }, metadata: { at: 0 } })
      .thenThrows('not_found'));
});

describe('pending alert', () => {
  const pending = run([evalAt(95, 1000)]).events;
  it('stays pending before `for` elapsed', () => given(pending).when(evalAt(96, 60_999)).thenNothingHappened());
  it('fires once `for` elapsed', () => {
    const [e] = given(pending).when(evalAt(96, 61_000)).then(['AlertFiring']);
    assert.equal((e as Extract<AlertingEvent, { type: 'AlertFiring' }>).data.pendingSince, 1000);
    assert.ok(shouldNotify(e!));
  });
  it('goes back to inactive when the condition clears', () => {
    const evs = given(pending).when(evalAt(10, 5000)).then(['AlertPendingCleared']);
    assert.equal(Object.keys(evs.reduce(evolveAlerting, run([evalAt(95, 1000)]).state).alerts).length, 0);
  });
});

describe('firing alert', () => {
  const firing = run([evalAt(95, 0), evalAt(95, 60_000)]).events;
  it('deduplicates: more breaches produce nothing', () =>
    given(firing).when(evalAt(99, 120_000)).thenNothingHappened());
  it('a different label set is a different alert', () => {
    given(firing)
      .when(evalAt(99, 120_000, rule, { host: 'b' }))
      .then(['AlertPending']);
  });
  it('resolves when the condition clears', () => {
    const [e] = given(firing).when(evalAt(10, 90_000)).then(['AlertResolved']);
    assert.equal((e as Extract<AlertingEvent, { type: 'AlertResolved' }>).data.how, 'auto');
    assert.ok(shouldNotify(e!));
  });
  it('resolves by hand with who and why', () => {
    const [e] = given(firing)
      .when({
        type: 'ResolveManually',
        data: { fingerprint: fp, actor: 'ann', reason: 'known batch job' },
        metadata: { at: 70_000 },
      })
      .then(['AlertResolved']);
    const d = (e as Extract<AlertingEvent, { type: 'AlertResolved' }>).data;
    assert.deepEqual([d.how, d.actor, d.reason, d.firingSince], ['manual', 'ann', 'known batch job', 60_000]);
  });
  it('a manual resolve needs a reason', () =>
    given(firing)
      .when({ type: 'ResolveManually', data: { fingerprint: fp, actor: 'ann', reason: ' ' }, metadata: { at: 1 } })
      .thenThrows('validation'));
});

describe('resolved alert', () => {
  const resolved = run([evalAt(95, 0), evalAt(95, 60_000), evalAt(1, 70_000)]).events;
  it('cannot be resolved again', () =>
    given(resolved)
      .when({ type: 'ResolveManually', data: { fingerprint: fp, actor: 'a', reason: 'b' }, metadata: { at: 1 } })
      .thenThrows('illegal_state'));
  it('a new breach starts a new pending episode', () => {
    given(resolved).when(evalAt(95, 80_000)).then(['AlertPending']);
  });
});

describe('silences', () => {
  const silence = (id: string, startsAt: number, endsAt: number, value = 'ops') => ({
    id,
    matchers: [{ name: 'team', value }],
    createdBy: 'ann',
    comment: 'maintenance',
    startsAt,
    endsAt,
  });
  const add = (s: ReturnType<typeof silence>, at: number): AlertingCommand => ({
    type: 'AddSilence',
    data: { silence: s },
    metadata: { at },
  });

  it('a firing alert under a silence does not notify', () => {
    const { events } = run([add(silence('s1', 0, 1_000_000), 0), evalAt(95, 10), evalAt(95, 60_010)]);
    assert.deepEqual(
      events.map((e) => e.type),
      ['SilenceAdded', 'AlertPending', 'AlertSilenced', 'AlertFiring'],
    );
    const firing = events.at(-1)!;
    assert.equal((firing as Extract<AlertingEvent, { type: 'AlertFiring' }>).data.suppressedBy, 's1');
    assert.equal(shouldNotify(firing), false);
  });
  it(`refuses a silence past ${MAX_SILENCES} in force (each is checked on every evaluation), and takes one again once one ends`, () => {
    const silences = Object.fromEntries(
      Array.from({ length: MAX_SILENCES }, (_, i) => [`s${i}`, silence(`s${i}`, 0, 1_000_000)]),
    );
    assert.throws(
      () => run([add(silence('one-more', 0, 1_000_000), 10)], { alerts: {}, silences }),
      (err: unknown) =>
        err instanceof AppError && err.code === 'illegal_state' && /at most 1000 silences/.test(err.message),
    );
    const { s0: _ended, ...rest } = silences;
    const { events } = run([add(silence('one-more', 0, 1_000_000), 10)], { alerts: {}, silences: rest });
    assert.deepEqual(
      events.map((e) => e.type),
      ['SilenceAdded'],
    );
  });
  it(`refuses a silence whose regexes would take those in force past ${MAX_SILENCES_REGEX_PROGRAM_SIZE} instructions together; plain ones still go`, () => {
    // Each alone is allowed (about 45,000 instructions, under the 50,000 of one silence).
    const heavy = (id: string) => ({
      ...silence(id, 0, 1_000_000),
      matchers: Array.from({ length: 5 }, (_, i) => ({ name: `l${i}`, value: `(?:a{1000}){9}${id}`, isRegex: true })),
    });
    const inForce = Object.fromEntries(['h1', 'h2', 'h3', 'h4'].map((id) => [id, heavy(id)]));
    assert.throws(
      () => run([add(heavy('h5'), 10)], { alerts: {}, silences: inForce }),
      (err: unknown) =>
        err instanceof AppError &&
        err.code === 'illegal_state' &&
        /at most 200000 regex instructions together/.test(err.message) &&
        (err.details as { in_force: number }).in_force > 150_000,
    );
    assert.deepEqual(
      run([add(silence('plain', 0, 1_000_000), 10)], { alerts: {}, silences: inForce }).events.map((e) => e.type),
      ['SilenceAdded'],
      'a silence of plain matchers adds no regex',
    );
    const { h1: _expired, ...three } = inForce;
    assert.deepEqual(
      run([add(heavy('h5'), 10)], { alerts: {}, silences: three }).events.map((e) => e.type),
      ['SilenceAdded'],
      'once one is gone there is room again',
    );
  });
  it('a silence that does not match leaves the alert alone', () => {
    const { events } = run([add(silence('s1', 0, 1_000_000, 'db'), 0), evalAt(95, 10), evalAt(95, 60_010)]);
    assert.ok(shouldNotify(events.at(-1)!));
  });
  it('a regex / negative matcher', () => {
    const s = {
      id: 's',
      matchers: [
        { name: 'host', value: 'a|b', isRegex: true },
        { name: 'severity', value: 'critical', isEqual: false },
      ],
      createdBy: 'x',
      comment: '',
      startsAt: 0,
      endsAt: 10,
    };
    const { events } = run([add(s, 0), evalAt(95, 1, { ...rule, for_ms: 0 })]);
    assert.ok(events.some((e) => e.type === 'AlertSilenced'));
  });
  it('adding a silence silences active alerts it matches', () => {
    const firing = run([evalAt(95, 0), evalAt(95, 60_000)]).events;
    given(firing)
      .when(add(silence('s1', 60_000, 120_000), 61_000))
      .then(['SilenceAdded', 'AlertSilenced']);
  });
  it('a silence outside its time range does not suppress', () => {
    const { events } = run([add(silence('s1', 500_000, 600_000), 0), evalAt(95, 10, { ...rule, for_ms: 0 })]);
    assert.ok(shouldNotify(events.at(-1)!));
  });
  it('expiring the silence of a firing alert notifies it (unsilenced)', () => {
    const { events, state } = run([add(silence('s1', 0, 100_000), 0), evalAt(95, 10, { ...rule, for_ms: 0 })]);
    assert.deepEqual(dueSilences(state, 100_000), ['s1']);
    const out = given(events)
      .when({ type: 'ExpireSilence', data: { silenceId: 's1', actor: 'monitor' }, metadata: { at: 100_000 } })
      .then(['SilenceExpired', 'AlertUnsilenced']);
    assert.ok(shouldNotify(out[1]!));
  });
  it('rejects a silence without matchers, a duplicate id, an unknown expiry', () => {
    given([])
      .when(add({ ...silence('s', 0, 1), matchers: [] }, 0))
      .thenThrows('validation');
    const added = run([add(silence('s', 0, 10), 0)]).events;
    given(added)
      .when(add(silence('s', 0, 10), 0))
      .thenThrows('conflict');
    given([])
      .when({ type: 'ExpireSilence', data: { silenceId: 'zz', actor: 'a' }, metadata: { at: 0 } })
      .thenThrows('not_found');
  });
});

describe('silence matcher regexes (RE2, linear time)', () => {
  const badSilence = (id: string, isEqual?: boolean) => ({
    id,
    matchers: [{ name: 'host', value: '(unclosed', isRegex: true, ...(isEqual === undefined ? {} : { isEqual }) }],
    createdBy: 'x',
    comment: '',
    startsAt: 0,
    endsAt: 1_000_000,
  });
  const addAt = (s: ReturnType<typeof badSilence>, at: number): AlertingCommand => ({
    type: 'AddSilence',
    data: { silence: s },
    metadata: { at },
  });

  it('a stored matcher whose regex does not compile never throws and suppresses nothing (even as "does not match")', () => {
    // Loaded from the store, as a silence written before input validation existed would be.
    const state: AlertingState = {
      alerts: {},
      silences: { bad: badSilence('bad'), worse: badSilence('worse', false) },
    };
    const { events } = run([evalAt(95, 10, { ...rule, for_ms: 0 })], state);
    assert.deepEqual(
      events.map((e) => e.type),
      ['AlertPending', 'AlertFiring'],
    );
    assert.ok(shouldNotify(events.at(-1)!));
    assert.equal(invalidMatchers(badSilence('b'))[0]?.index, 0);
    assert.match(invalidMatchers(badSilence('b'))[0]!.problem, /not a valid RE2 regular expression/);
  });

  it('alert evaluation goes on with a bad silence added through the decider too', () => {
    const { events } = run([
      addAt(badSilence('b'), 0),
      evalAt(95, 10, { ...rule, for_ms: 0 }),
      evalAt(10, 20, { ...rule, for_ms: 0 }),
    ]);
    assert.deepEqual(
      events.map((e) => e.type),
      ['SilenceAdded', 'AlertPending', 'AlertFiring', 'AlertResolved'],
    );
  });

  it("a matcher or rule named like an object's inherited member (constructor, toString, __proto__) reads an absent label, and never throws", () => {
    const labels = { service: 'gateway' };
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      assert.equal(matcherMatches({ name, value: 'x.*', isRegex: true }, labels), false, name);
      assert.equal(
        matcherMatches({ name, value: '.*', isRegex: true }, labels),
        true,
        `${name}: an absent label is ""`,
      );
      assert.equal(matcherMatches({ name, value: 'function', isRegex: false, isEqual: false }, labels), true, name);
      assert.equal(
        ruleMatches({ metric: 'm', match: { [name]: 'function Object() { [native code] }' } }, 'm', labels),
        false,
      );
    }
    // Alerting goes on with such a silence in place: the rule fires and resolves as it would.
    const { events } = run([
      addAt({ ...badSilence('proto'), matchers: [{ name: 'constructor', value: 'x.*', isRegex: true }] }, 0),
      evalAt(95, 10, { ...rule, for_ms: 0 }),
      evalAt(10, 20, { ...rule, for_ms: 0 }),
    ]);
    assert.deepEqual(
      events.map((e) => e.type),
      ['SilenceAdded', 'AlertPending', 'AlertFiring', 'AlertResolved'],
    );
  });

  it('a catastrophic-backtracking pattern is matched in linear time, anchored on the whole value', () => {
    const evil = { name: 'host', value: '(a+)+$', isRegex: true };
    assert.equal(matcherMatches(evil, { host: `${'a'.repeat(50_000)}!` }), false);
    assert.equal(matcherMatches(evil, { host: 'aaaa' }), true);
    assert.equal(matcherMatches({ name: 'host', value: 'a|b', isRegex: true }, { host: 'ab' }), false);
    assert.deepEqual(invalidMatchers({ matchers: [evil] }), []);
  });
});
