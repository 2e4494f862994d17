/**
 * Alert silences and regular expressions, through the real HTTP API, NATS and the monitor on the
 * test Postgres: a catastrophic-backtracking pattern does not block the event loop (RE2), an
 * invalid one is a 400 naming the field, and a bad matcher already stored is skipped with a
 * warning while alerts keep being evaluated.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { MonitoringStore, startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import { monitorSubject, type AlertRule } from '@switchyard/contracts';
import { newId, type Logger } from '@switchyard/platform';
import { longestEventLoopBlock, until } from '@switchyard/testing';
import { bearer, startSecuredGateway, type SecuredGateway } from '../../security/test-support.js';
import { SystemFeatureModule } from './system.module.js';

describe('alert silences: regular expressions cannot stall the monitor', () => {
  const tag = newId()
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 10)
    .toLowerCase();
  const serviceName = `monitor-${tag}`;
  const longLabel = `${'a'.repeat(40)}!`;
  const rule: AlertRule = {
    id: `redos_${tag}`,
    name: 'ReDoS probe',
    metric: `test_redos_${tag}`,
    match: {},
    comparator: '>',
    threshold: 1,
    for_ms: 0,
    severity: 'warning',
    labels: {},
  };
  const warnings: string[] = [];
  let g: SecuredGateway;
  let monitoring: RunningMonitoring;
  let operator: string;
  const storedBadId = `bad-${tag}`;

  const send = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${g.url}${path}`, {
      method,
      headers: { ...bearer(operator), 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const alertFor = async (service: string) =>
    (await monitoring.monitor.listAlerts()).find((a) => a.ruleId === rule.id && a.labels.service === service);

  before(async () => {
    g = await startSecuredGateway('silences', {
      modules: [SystemFeatureModule.forRoot({ serviceName, timeoutMs: 5_000 })],
    });
    operator = (await g.makeKey('operator')).key;
    // A silence stored before input validation existed, with a regex that does not compile.
    const store = new MonitoringStore(g.pool);
    await store.migrate();
    await g.pool.query(
      `insert into monitoring.silences (id, matchers, created_by, comment, starts_at, ends_at) values ($1, $2, 'old', 'legacy', now() - interval '1 minute', now() + interval '1 hour')`,
      [storedBadId, JSON.stringify([{ name: 'service', value: '(unclosed', isRegex: true, isEqual: false }])],
    );
    const sink = new Writable({ write: (chunk, _enc, cb) => (warnings.push(String(chunk)), cb()) });
    const logger = pino({ level: 'warn' }, sink) as unknown as Logger;
    monitoring = await startMonitoring({
      pool: g.pool,
      nats: g.nats,
      eventStore: g.store,
      logger,
      settings: {
        sampleIntervalMs: 3_600_000,
        probeIntervalMs: 3_600_000,
        maintenanceIntervalMs: 3_600_000,
        rules: [rule],
      },
      wiring: { webhooks: [], discoveryIntervalMs: 3_600_000 },
      env: {},
      serviceName,
      mcpSubjectPrefix: `switchyard.svc.mcp${tag}.v1`,
      agentServicePrefix: `agent-t${tag}-`,
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
      callMetrics: { enabled: false },
    });
  });

  after(async () => {
    await monitoring?.stop();
    await g?.close();
  });

  it('a stored bad matcher is skipped with a warning: alerts still fire, silences still list', async () => {
    assert.ok(
      warnings.some((w) => w.includes('silence matcher skipped') && w.includes(storedBadId)),
      warnings.join('\n'),
    );
    await monitoring.monitor.ingest([
      { metric: rule.metric, labels: { service: longLabel }, ts: Date.now(), value: 10 },
    ]);
    const alert = await alertFor(longLabel);
    assert.equal(alert?.state, 'firing');
    // "does not match" a bad regex would otherwise have silenced everything.
    assert.equal(alert?.suppressedBy ?? null, null);
    const list = await send('GET', '/api/v1/system/alerts/silences');
    assert.equal(list.status, 200);
    assert.ok(list.body.silences.some((s: { id: string }) => s.id === storedBadId));
  });

  it('a catastrophic-backtracking pattern is answered without blocking the event loop (RE2)', async (t) => {
    // With a backtracking engine `^(?:(a+)+)$` against 40 a's and a "!" takes 2^40 steps.
    const {
      results: [result],
      maxMs,
      tries,
    } = await longestEventLoopBlock(
      () =>
        send('POST', '/api/v1/system/alerts/silences', {
          matchers: [{ name: 'service', value: '(a+)+', isRegex: true }],
          comment: 'redos',
          duration_ms: 60_000,
        }),
      { belowMs: 100 },
    );
    assert.equal(result.status, 201, JSON.stringify(result.body));
    assert.ok(
      maxMs < 100,
      `event loop blocked for ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    t.diagnostic(
      `longest event-loop block: ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    // It is evaluated, and anchored: it does not match the label with the "!".
    assert.equal((await alertFor(longLabel))?.suppressedBy ?? null, null);
    const matching = await send('POST', '/api/v1/system/alerts/silences', {
      matchers: [{ name: 'service', value: '(a+)+!', isRegex: true }],
      duration_ms: 60_000,
    });
    assert.equal(matching.status, 201);
    assert.equal((await alertFor(longLabel))?.suppressedBy, matching.body.silence.id);
  });

  it('an invalid regex is a 400 naming the field', async (t) => {
    const {
      results: [result],
      maxMs,
      tries,
    } = await longestEventLoopBlock(
      () =>
        send('POST', '/api/v1/system/alerts/silences', {
          matchers: [
            { name: 'service', value: 'ok' },
            { name: 'service', value: '(unclosed', isRegex: true },
          ],
          duration_ms: 60_000,
        }),
      { belowMs: 100 },
    );
    assert.equal(result.status, 400);
    assert.ok(
      maxMs < 100,
      `event loop blocked for ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    t.diagnostic(
      `longest event-loop block: ${maxMs.toFixed(1)} ms (tries: ${tries.map((x) => x.toFixed(1)).join(', ')})`,
    );
    const errors = result.body.errors as { path: string; message: string }[];
    assert.ok(
      errors.some((e) => e.path === 'matchers.1.value' && /not a valid RE2 regular expression/.test(e.message)),
      JSON.stringify(result.body),
    );
    // A plain value with regex characters is fine when it is not a regex.
    assert.equal(
      (
        await send('POST', '/api/v1/system/alerts/silences', {
          matchers: [{ name: 'service', value: '(unclosed' }],
          duration_ms: 60_000,
        })
      ).status,
      201,
    );
  });

  it('an ends_at before its start, or more than a year after it, is a 400 naming ends_at; within the year it is taken', async () => {
    const now = Date.now();
    for (const ends_at of ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', new Date(now - 60_000).toISOString()]) {
      const r = await send('POST', '/api/v1/system/alerts/silences', {
        matchers: [{ name: 'service', value: 'x' }],
        ends_at,
      });
      assert.equal(r.status, 400, `${ends_at}: ${JSON.stringify(r.body)}`);
      assert.ok(
        (r.body.errors as { path: string }[]).some((e) => e.path === 'ends_at'),
        JSON.stringify(r.body),
      );
    }
    // Nor one that ended long ago, given by its start.
    for (const body of [
      { starts_at: '0000-01-01T00:00:00Z', duration_ms: 60_000 },
      { starts_at: '0001-01-01T00:00:00Z', ends_at: '0001-01-01T01:00:00Z' },
    ]) {
      const r = await send('POST', '/api/v1/system/alerts/silences', {
        matchers: [{ name: 'service', value: 'x' }],
        ...body,
      });
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
    }
    const ok = await send('POST', '/api/v1/system/alerts/silences', {
      matchers: [{ name: 'service', value: 'x' }],
      ends_at: new Date(now + 3_600_000).toISOString(),
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  });

  it("a duration reaches the monitor as a duration (its clock starts the silence, not the gateway's); given times are kept", async () => {
    const sent: Record<string, unknown>[] = [];
    const sub = g.nats.subscribe(monitorSubject('add_silence', serviceName), {
      callback: (_err, msg) => void sent.push(msg.json<Record<string, unknown>>()),
    });
    await g.nats.flush();
    try {
      const matchers = [{ name: 'alertname', value: `clock-${tag}` }];
      const byDuration = await send('POST', '/api/v1/system/alerts/silences', { matchers, duration_ms: 600_000 });
      assert.equal(byDuration.status, 201, JSON.stringify(byDuration.body));
      await until('the request seen', () => sent.length >= 1);
      assert.equal(sent[0]!.durationMs, 600_000);
      assert.deepEqual([sent[0]!.startsAt, sent[0]!.endsAt], [undefined, undefined], 'no time of the gateway');
      assert.equal(byDuration.body.silence.endsAt - byDuration.body.silence.startsAt, 600_000);

      const startsAt = Date.now() + 60_000;
      const given = await send('POST', '/api/v1/system/alerts/silences', {
        matchers,
        starts_at: new Date(startsAt).toISOString(),
        ends_at: new Date(startsAt + 3_600_000).toISOString(),
      });
      assert.equal(given.status, 201, JSON.stringify(given.body));
      assert.deepEqual([given.body.silence.startsAt, given.body.silence.endsAt], [startsAt, startsAt + 3_600_000]);
      await until('the second request seen', () => sent.length >= 2);
      assert.equal(sent[1]!.durationMs, undefined);
    } finally {
      sub.unsubscribe();
    }
  });

  it('a silence ended by hand: the alert it held notifies again, who ended it is recorded, a second end is 404', async () => {
    const service = `svc-${tag}-end`;
    await monitoring.monitor.ingest([{ metric: rule.metric, labels: { service }, ts: Date.now(), value: 10 }]);
    const added = await send('POST', '/api/v1/system/alerts/silences', {
      matchers: [{ name: 'service', value: service }],
      comment: 'maintenance',
      duration_ms: 3_600_000,
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const silenceId = added.body.silence.id as string;
    assert.equal((await alertFor(service))?.suppressedBy, silenceId);

    const ended = await send('DELETE', `/api/v1/system/alerts/silences/${silenceId}`);
    assert.equal(ended.status, 200, JSON.stringify(ended.body));
    assert.deepEqual(ended.body, { silence_id: silenceId, expired: true });
    assert.equal((await alertFor(service))?.suppressedBy ?? null, null, 'the alert is no longer silenced');
    const list = await send('GET', '/api/v1/system/alerts/silences');
    assert.ok(!list.body.silences.some((x: { id: string }) => x.id === silenceId), 'an ended silence is not listed');
    const events = await g.store.readStream(`silence-${silenceId}`);
    assert.deepEqual(
      events.map((e) => e.type),
      ['SilenceAdded', 'SilenceExpired'],
    );
    assert.match(String((events[1]!.data as { actor: string }).actor), /^apikey:/, 'the caller is recorded');

    const again = await send('DELETE', `/api/v1/system/alerts/silences/${silenceId}`);
    assert.equal(again.status, 404, JSON.stringify(again.body));
    assert.equal((await send('DELETE', '/api/v1/system/alerts/silences/not%20an%20id')).status, 400);
  });
});
