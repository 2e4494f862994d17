import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError, ConfigError } from '@switchyard/platform';
import type { AlertingEvent } from '../domain/alerts.js';
import { defaultAlertRules, type AlertRule } from '../domain/rules.js';
import type { ServiceRow } from '../store.js';
import { alertSubject, monitorSubject } from '@switchyard/contracts';
import { parseRulesJson, wiringSettingsFromEnv } from './env.js';
import { overallHealth } from './overall.js';
import { actorOf, MONITOR_ACTOR, streamOf, webhookBody } from './publisher.js';
import { composeRules } from './rules.js';

const rule = (id: string, threshold = 1): AlertRule => ({
  id,
  name: id,
  metric: 'm',
  match: {},
  comparator: '>',
  threshold,
  for_ms: 0,
  severity: 'warning',
  labels: {},
});
const svc = (service: string, status: ServiceRow['status'], extra: Partial<ServiceRow> = {}): ServiceRow => ({
  service,
  kind: 'x',
  status,
  reason: null,
  since: null,
  failingSince: null,
  lastProbeAt: null,
  lastOk: null,
  lastResponseMs: null,
  lastError: null,
  ...extra,
});
const ref = { fingerprint: 'abc', ruleId: 'r', name: 'R', severity: 'critical' as const, labels: { service: 'mcp:x' } };
const meta = { at: Date.UTC(2026, 0, 1), correlationId: 'monitor' };

describe('composeRules', () => {
  it('later layers replace by id, API overrides win, a tombstone removes a rule of any layer', () => {
    const out = composeRules(
      [
        { source: 'default', rules: [rule('a'), rule('b')] },
        { source: 'file', rules: [rule('b', 2), rule('c')] },
        { source: 'env', rules: [rule('c', 3)] },
      ],
      [
        { id: 'a', rule: null },
        { id: 'd', rule: rule('d') },
        { id: 'b', rule: rule('b', 9) },
      ],
    );
    assert.deepEqual(
      out.map((r) => [r.rule.id, r.rule.threshold, r.source]),
      [
        ['b', 9, 'api'],
        ['c', 3, 'env'],
        ['d', 1, 'api'],
      ],
    );
  });
});

describe('overallHealth', () => {
  it('healthy when every probed service is up; unknown ones do not count', () => {
    assert.deepEqual(overallHealth([svc('postgres', 'up'), svc('mcp:x', 'unknown')], []), {
      status: 'healthy',
      reasons: [],
    });
  });
  it('degraded for a non-essential service down or degraded, with the reasons', () => {
    const r = overallHealth(
      [
        svc('postgres', 'up'),
        svc('mcp:x', 'down', { lastError: 'ECONNREFUSED' }),
        svc('agent:a:1', 'degraded', { reason: 'slow' }),
      ],
      [],
    );
    assert.equal(r.status, 'degraded');
    assert.deepEqual(r.reasons, ['mcp:x is down (ECONNREFUSED)', 'agent:a:1 is degraded: slow responses']);
  });
  it('unhealthy when an essential service is down, listed first', () => {
    const r = overallHealth([svc('mcp:x', 'down'), svc('nats', 'down')], []);
    assert.equal(r.status, 'unhealthy');
    assert.equal(r.reasons[0], 'nats is down');
  });
  it('a service nobody probed for a while does not count', () => {
    const now = Date.UTC(2026, 0, 1);
    const old = svc('agent:gone:1', 'down', { lastProbeAt: new Date(now - 120_000) });
    assert.equal(overallHealth([old], [], { now, staleAfterMs: 60_000 }).status, 'healthy');
    assert.equal(
      overallHealth([{ ...old, lastProbeAt: new Date(now - 1_000) }], [], { now, staleAfterMs: 60_000 }).status,
      'degraded',
    );
  });
  it('an unsilenced firing alert degrades; a silenced one does not', () => {
    const a = { name: 'CPU usage high', severity: 'warning' as const, labels: { cpu: 'total' }, suppressedBy: null };
    assert.deepEqual(overallHealth([], [a]), {
      status: 'degraded',
      reasons: ['alert firing: CPU usage high (warning) on total'],
    });
    assert.equal(overallHealth([], [{ ...a, suppressedBy: 's1' }]).status, 'healthy');
  });
});

describe('event routing', () => {
  it('streams: alert-<fingerprint>, silence-<id>, service-<name>', () => {
    assert.equal(
      streamOf({ type: 'AlertPending', data: { ...ref, value: 1, threshold: 0 }, metadata: meta }),
      'alert-abc',
    );
    assert.equal(
      streamOf({ type: 'SilenceExpired', data: { silenceId: 's1', actor: 'monitor' }, metadata: meta }),
      'silence-s1',
    );
    assert.equal(
      streamOf({
        type: 'ServiceWentDown',
        data: { service: 'mcp:x', previous: 'up', responseMs: 1, error: 'x', failingSince: 0 },
        metadata: meta,
      }),
      'service-mcp:x',
    );
  });
  it('actor: the person behind a manual resolve or a silence, else the monitor', () => {
    const manual: AlertingEvent = {
      type: 'AlertResolved',
      data: { ...ref, how: 'manual', actor: 'apikey:k1', reason: 'ok', firingSince: 1, suppressedBy: null },
      metadata: meta,
    };
    assert.equal(actorOf(manual), 'apikey:k1');
    assert.equal(
      actorOf({ ...manual, data: { ...manual.data, how: 'auto', actor: null, reason: null } }),
      MONITOR_ACTOR,
    );
    assert.equal(
      actorOf({ type: 'SilenceExpired', data: { silenceId: 's', actor: 'monitor' }, metadata: meta }),
      MONITOR_ACTOR,
    );
    assert.equal(actorOf({ type: 'SilenceExpired', data: { silenceId: 's', actor: 'ann' }, metadata: meta }), 'ann');
  });
  it('webhooks only for notifying events: firing and resolution of a notified alert, never silenced', () => {
    const firing: AlertingEvent = {
      type: 'AlertFiring',
      data: { ...ref, value: 0, threshold: 1, pendingSince: 0, suppressedBy: null },
      metadata: meta,
    };
    const body = webhookBody(firing, 'e1');
    assert.equal(body?.status, 'firing');
    assert.equal(body?.at, '2026-01-01T00:00:00.000Z');
    assert.equal(webhookBody({ ...firing, data: { ...firing.data, suppressedBy: 's1' } }, 'e2'), undefined);
    assert.equal(
      webhookBody({ type: 'AlertPending', data: { ...ref, value: 0, threshold: 1 }, metadata: meta }, 'e3'),
      undefined,
    );
    const resolved = webhookBody(
      {
        type: 'AlertResolved',
        data: { ...ref, how: 'manual', actor: 'ann', reason: 'fixed', firingSince: 1, suppressedBy: null },
        metadata: meta,
      },
      'e4',
    );
    assert.deepEqual([resolved?.status, resolved?.alert.actor, resolved?.alert.reason], ['resolved', 'ann', 'fixed']);
    // Resolved before it ever fired: nobody was told it started, nobody needs to hear it ended.
    assert.equal(
      webhookBody(
        {
          type: 'AlertResolved',
          data: { ...ref, how: 'auto', actor: null, reason: null, firingSince: null, suppressedBy: null },
          metadata: meta,
        },
        'e5',
      ),
      undefined,
    );
  });
  it('subjects', () => {
    assert.equal(monitorSubject('health_report'), 'switchyard.svc.monitor.v1.health_report');
    assert.equal(alertSubject('AlertFiring'), 'switchyard.alerts.AlertFiring');
  });
});

describe('wiring settings from the environment', () => {
  it('parses webhooks, HTTP agents and intervals', () => {
    const s = wiringSettingsFromEnv({
      MONITOR_ALERT_WEBHOOKS: 'http://a/x, https://b/y',
      MONITOR_HTTP_AGENTS: 'crm=http://crm:7000/health',
      MONITOR_DISCOVERY_INTERVAL_MS: '1000',
    });
    assert.deepEqual(s.webhooks, ['http://a/x', 'https://b/y']);
    assert.deepEqual(s.httpAgents, [{ name: 'crm', url: 'http://crm:7000/health' }]);
    assert.equal(s.discoveryIntervalMs, 1000);
    assert.equal(wiringSettingsFromEnv({}).webhooks.length, 0);
  });
  it('names the bad variable', () => {
    assert.throws(
      () => wiringSettingsFromEnv({ MONITOR_ALERT_WEBHOOKS: 'not a url' }),
      (e: unknown) => e instanceof ConfigError && e.message.includes('MONITOR_ALERT_WEBHOOKS'),
    );
    assert.throws(
      () => wiringSettingsFromEnv({ MONITOR_HTTP_AGENTS: 'nourl' }),
      (e: unknown) => e instanceof AppError && e.message.includes('MONITOR_HTTP_AGENTS'),
    );
  });
  it('rules JSON is validated by the rule schema', () => {
    assert.deepEqual(
      parseRulesJson(JSON.stringify([defaultAlertRules[0]]), 'MONITOR_RULES').map((r) => r.id),
      ['cpu_high'],
    );
    assert.throws(
      () => parseRulesJson('[{"id":"x"}]', 'MONITOR_RULES'),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
    assert.throws(
      () => parseRulesJson('{', 'MONITOR_RULES'),
      (e: unknown) => e instanceof AppError && /not JSON/.test(e.message),
    );
  });
});
