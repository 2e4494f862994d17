/**
 * A hung service (it takes the connection and never answers), from probes to the alert and the
 * availability, all pure: probes every 5 s, a 15 s timeout, down after 10 s of failures, the
 * default "service unavailable" rule (probe_up < 1 for 30 s). The service hangs at 0 and is
 * answering again at 36 s; the monitor learns of each failure 15 s after sending the probe.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  decideHealth,
  evolveHealth,
  initialServiceHealth,
  type HealthEvent,
  type HealthPolicy,
  type ServiceHealth,
} from './health.js';
import { decideAlerting, evolveAlerting, initialAlertingState, type AlertingState } from './alerts.js';
import { availabilityOver, intervalStart, statusIntervals } from './availability.js';
import { defaultAlertRules, type AlertRule } from './rules.js';

const policy: HealthPolicy = { degradedResponseMs: 1_000, downAfterMs: 10_000 };
const unavailable: AlertRule = defaultAlertRules.find((r) => r.id === 'service_unavailable')!;
const labels = { service: 'mcp:filesystem', kind: 'mcp' };

/** One probe: when it went out, when its outcome was known, whether it succeeded. */
interface Probe {
  readonly sentAt: number;
  readonly at: number;
  readonly ok: boolean;
}
// The last answer before the hang, two probes that time out (the second goes out as the first
// ends), one refused while the hung server is being replaced, and the first answer after.
const probes: Probe[] = [
  { sentAt: -4_000, at: -3_990, ok: true },
  { sentAt: 1_000, at: 16_000, ok: false },
  { sentAt: 16_000, at: 31_000, ok: false },
  { sentAt: 31_000, at: 31_005, ok: false },
  { sentAt: 36_000, at: 36_100, ok: true },
];

/** What the Monitor does with each probe: the health decider, then the `probe_up` sample through the rule. */
function replay(sampleTime: (p: Probe) => number) {
  let health: ServiceHealth = initialServiceHealth;
  let alerting: AlertingState = initialAlertingState;
  const healthEvents: HealthEvent[] = [];
  const alertEvents: { type: string; at: number }[] = [];
  const evaluate = (value: number, at: number) => {
    const evs = decideAlerting(
      { type: 'EvaluateSample', data: { rule: unavailable, labels, value }, metadata: { at } },
      alerting,
    );
    alerting = evs.reduce(evolveAlerting, alerting);
    alertEvents.push(...evs.map((e) => ({ type: e.type, at: e.metadata.at })));
  };
  let lastValue = 1;
  for (const p of probes) {
    // The Monitor's `for` deadline: at pendingSince + for_ms it evaluates the last value again.
    const a = Object.values(alerting.alerts)[0];
    if (a?.status === 'pending' && a.pendingSince + unavailable.for_ms <= p.at)
      evaluate(lastValue, a.pendingSince + unavailable.for_ms);
    const evs = decideHealth(
      {
        type: 'RecordProbeResult',
        data: {
          service: labels.service,
          kind: labels.kind,
          result: { ok: p.ok, responseMs: p.at - p.sentAt },
          policy,
          sentAt: p.sentAt,
        },
        metadata: { at: p.at },
      },
      health,
    );
    health = evs.reduce(evolveHealth, health);
    healthEvents.push(...evs);
    lastValue = p.ok ? 1 : 0;
    evaluate(lastValue, sampleTime(p));
  }
  return { healthEvents, alertEvents };
}

describe('a hung service', () => {
  it('failures date from when the probe went out: unavailable fires 30 s after the first failed probe was sent', () => {
    const { alertEvents } = replay((p) => (p.ok ? p.at : p.sentAt));
    assert.deepEqual(alertEvents, [
      { type: 'AlertPending', at: 1_000 },
      { type: 'AlertFiring', at: 31_000 },
      { type: 'AlertResolved', at: 36_100 },
    ]);
  });

  it('(dated when the timeout ended, as before, it went pending 15 s late and cleared without firing)', () => {
    const { alertEvents } = replay((p) => p.at);
    assert.deepEqual(
      alertEvents.map((e) => e.type),
      ['AlertPending', 'AlertPendingCleared'],
    );
  });

  it('availability counts the outage from the first failed probe to the answer: 35.1 s, not the 5 s after the down-marking', () => {
    const { healthEvents } = replay((p) => (p.ok ? p.at : p.sentAt));
    assert.deepEqual(
      healthEvents.map((e) => [e.type, e.metadata.at, intervalStart(e)]),
      [
        ['ServiceRecovered', -3_990, -3_990],
        ['ServiceWentDown', 16_000, 1_000],
        ['ServiceRecovered', 36_100, 36_100],
      ],
    );
    const intervals = statusIntervals(healthEvents);
    assert.deepEqual(intervals, [
      { status: 'up', start: -3_990, end: 1_000 },
      { status: 'down', start: 1_000, end: 36_100 },
      { status: 'up', start: 36_100, end: null },
    ]);
    const a = availabilityOver(intervals, '1h', 3_600_000, { now: 60_000 });
    assert.equal(a.downMs, 35_100);
    assert.deepEqual(a.incidents, [{ start: 1_000, end: 36_100, durationMs: 35_100 }]);
    assert.equal(a.mttrMs, 35_100);
  });

  it('a run that degraded first: down replaces its degradation from the first failed probe; a run that recovers before down is no outage', () => {
    const refused = (sentAt: number, ok = false) => ({
      type: 'RecordProbeResult' as const,
      data: { service: 's', result: { ok, responseMs: 2 }, policy, sentAt },
      metadata: { at: sentAt + 2 },
    });
    const run = (cmds: ReturnType<typeof refused>[]) => {
      let h: ServiceHealth = initialServiceHealth;
      const out: HealthEvent[] = [];
      for (const c of cmds) {
        const evs = decideHealth(c, h);
        h = evs.reduce(evolveHealth, h);
        out.push(...evs);
      }
      return out;
    };
    const outage = statusIntervals(
      run([refused(0, true), refused(5_000), refused(10_000), refused(15_000), refused(20_000, true)]),
    );
    assert.deepEqual(outage, [
      { status: 'up', start: 2, end: 5_000 },
      { status: 'degraded', start: 5_000, end: 5_000 },
      { status: 'down', start: 5_000, end: 20_002 },
      { status: 'up', start: 20_002, end: null },
    ]);
    assert.equal(availabilityOver(outage, '1h', 3_600_000, { now: 30_000 }).downMs, 15_002);
    const blip = statusIntervals(run([refused(0, true), refused(5_000), refused(10_000, true)]));
    assert.deepEqual(
      blip.map((i) => i.status),
      ['up', 'degraded', 'up'],
    );
    assert.equal(availabilityOver(blip, '1h', 3_600_000, { now: 30_000 }).downMs, 0);
  });
});
