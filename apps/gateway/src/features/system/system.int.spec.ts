/**
 * Monitoring end to end: HTTP -> gateway -> NATS -> monitor (startMonitoring) probing a real
 * MCP server (the project's analytics server over Streamable HTTP) through the real connectors,
 * on the real test Postgres and nats-server. Short thresholds by config: probes every 200 ms,
 * down after 1 s of failures, the unavailability alert fires 500 ms after the first failed probe.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseServerConfig, startConnectors, type RunningConnectors } from '@switchyard/connectors';
import { runMcpServer, type RunningMcpServer } from '@switchyard/mcp-servers';
import { addService, type NatsConnection, type Service } from '@switchyard/messaging';
import { defaultAlertRules, startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import {
  ALERTS_WILDCARD,
  alertEnvelopeSchema,
  monitorSubject,
  type AlertEnvelope,
  type AlertWebhook,
} from '@switchyard/contracts';
import { createLogger, freePort, newId } from '@switchyard/platform';
import { stopOwnInfra, until } from '@switchyard/testing';
import { z } from 'zod';
import { bearer, startSecuredGateway, type SecuredGateway } from '../../security/test-support.js';
import { SystemFeatureModule } from './system.module.js';

const logger = createLogger('system-test', process.env.LOG_LEVEL ?? 'silent');

describe('system monitoring through the gateway', () => {
  const tag = newId()
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 10)
    .toLowerCase();
  const serviceName = `monitor-${tag}`;
  const mcpPrefix = `switchyard.svc.mcp${tag}.v1`;
  const agentPrefix = `agent-t${tag}-`;
  const MCP = 'mcp:analytics';
  let g: SecuredGateway;
  let nc: NatsConnection;
  let keys: { viewer: string; operator: string; operatorId: string; admin: string };
  let analytics: RunningMcpServer | undefined;
  let analyticsPort: number;
  let connectors: RunningConnectors;
  let monitoring: RunningMonitoring;
  let agent: Service;
  let sink: http.Server;
  let sinkUrl: string;
  const hooks: { body: AlertWebhook; status: number; key: string | undefined }[] = [];
  const onNats: AlertEnvelope[] = [];
  let sinkCalls = 0;

  const settings = {
    sampleIntervalMs: 2_000,
    probeIntervalMs: 200,
    probeTimeoutMs: 2_500,
    maintenanceIntervalMs: 60_000,
    healthPolicy: { downAfterMs: 1_000, degradedResponseMs: 2_000 },
    rules: [{ ...defaultAlertRules.find((r) => r.id === 'service_unavailable')!, for_ms: 500 }],
  };
  const start = () =>
    startMonitoring({
      pool: g.pool,
      nats: nc,
      eventStore: g.store,
      logger,
      settings,
      wiring: { webhooks: [sinkUrl], discoveryIntervalMs: 300, webhookMaxAttempts: 4, webhookTimeoutMs: 2_000 },
      // The webhook sink listens on loopback: allow-listed, as an operator would.
      env: { EGRESS_ALLOW_CIDRS: '127.0.0.0/8' },
      serviceName,
      mcpSubjectPrefix: mcpPrefix,
      agentServicePrefix: agentPrefix,
      webhookInitialDelayMs: 50,
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
  const get = async (path: string, key = keys.viewer) => {
    const res = await fetch(`${g.url}${path}`, { headers: bearer(key) });
    const text = await res.text();
    return {
      status: res.status,
      type: res.headers.get('content-type') ?? '',
      text,
      body: text.startsWith('{') ? JSON.parse(text) : undefined,
    };
  };
  const send = async (
    method: string,
    path: string,
    body: unknown,
    key: string,
    headers: Record<string, string> = {},
  ) => {
    const res = await fetch(`${g.url}${path}`, {
      method,
      headers: { ...bearer(key), 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const startAnalytics = async () => {
    analytics = await runMcpServer('analytics', {
      port: analyticsPort,
      logger,
      env: { DATABASE_URL: g.databaseUrl, LOG_LEVEL: 'silent', MCP_AUTH_DISABLED: 'true' },
    });
  };
  const serviceRow = async (name: string) =>
    ((await get('/api/v1/system/health-report')).body?.services ?? []).find(
      (s: { service: string }) => s.service === name,
    );

  before(async () => {
    // A webhook sink that refuses the first call (503), so a retry must happen.
    sink = http.createServer((req, res) => {
      let data = '';
      req.on('data', (c) => (data += c));
      req.on('end', () => {
        sinkCalls++;
        const status = sinkCalls === 1 ? 503 : 200;
        hooks.push({
          body: JSON.parse(data) as AlertWebhook,
          status,
          key: req.headers['idempotency-key'] as string | undefined,
        });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hook`;

    g = await startSecuredGateway('system_mon', {
      modules: [SystemFeatureModule.forRoot({ serviceName, timeoutMs: 3_000 })],
    });
    nc = g.nats;
    const op = await g.makeKey('operator');
    keys = { viewer: (await g.makeKey('viewer')).key, operator: op.key, operatorId: op.id, admin: g.adminKey };
    const sub = nc.subscribe(ALERTS_WILDCARD);
    void (async () => {
      for await (const m of sub) {
        const e = alertEnvelopeSchema.safeParse(m.json());
        if (e.success) onNats.push(e.data);
      }
    })();

    analyticsPort = await freePort();
    await startAnalytics();
    const fast = {
      timeouts: { connect_ms: 1_000, call_ms: 1_000 },
      retry: { max_attempts: 1, initial_delay_ms: 50, max_delay_ms: 100 },
      breaker: { consecutive_failures: 3, half_open_after_ms: 300 },
      reconnect: { initial_delay_ms: 100, max_delay_ms: 300 },
    };
    connectors = await startConnectors({
      nats: nc,
      logger,
      subjectPrefix: mcpPrefix,
      queue: `mcp-${tag}`,
      registry: [
        parseServerConfig({
          name: 'analytics',
          role: 'analytics',
          transport: { kind: 'http', url: analytics!.url! },
          ...fast,
        }),
      ],
    });
    // One agent instance as a real NATS service, found through $SRV.PING.
    agent = await addService(nc, {
      name: `${agentPrefix}probe`,
      version: '1.0.0',
      logger,
      metadata: { agent: 'probe', instance: 'i1' },
      endpoints: { load: { subject: `test.${tag}.agent.load`, schema: z.unknown(), handler: () => ({}) } },
    });
    monitoring = await start();
  });

  after(async () => {
    await monitoring?.stop();
    await agent?.stop().catch(() => undefined);
    await connectors?.stop();
    await analytics?.close();
    await g?.close();
    await new Promise<void>((r) => sink?.close(() => r()));
    await stopOwnInfra();
  });

  it('reports every service up: core probes, the discovered MCP server and agent instance', async () => {
    const report = await until('all services up', async () => {
      const r = await get('/api/v1/system/health-report');
      const names = (r.body?.services ?? [])
        .filter((s: { status: string }) => s.status === 'up')
        .map((s: { service: string }) => s.service);
      // Healthy too: a probe that failed while things were starting (under load) may have raised the
      // 500 ms unavailability alert of this test; the first success resolves it.
      return ['postgres', 'nats', 'event-store', MCP, 'agent:probe:i1'].every((n) => names.includes(n)) &&
        r.body?.status === 'healthy'
        ? r
        : undefined;
    });
    assert.equal(report.status, 200);
    assert.equal(report.body.status, 'healthy', JSON.stringify(report.body.reasons));
    assert.deepEqual(report.body.reasons, []);
    assert.equal(report.body.services.find((s: { service: string }) => s.service === MCP).kind, 'mcp');
    assert.ok('cpuPercent' in report.body.system && Array.isArray(report.body.system.disks));
    // Roles: no key 401, reads are viewer, rules admin.
    assert.equal((await fetch(`${g.url}/api/v1/system/health-report`)).status, 401);
    assert.equal((await get('/api/v1/system/alert-rules')).status, 403);
  });

  let downAt: number;
  let failingSince: number;
  let upAt: number;
  let fingerprint: string;

  it('a stopped MCP server goes down, the system is degraded and the alert fires (API, NATS, webhook)', async () => {
    const stoppedAt = Date.now();
    await analytics!.close();
    analytics = undefined;
    const row = await until('mcp down', async () => {
      const s = await serviceRow(MCP);
      return s?.status === 'down' ? s : undefined;
    });
    assert.ok(row.lastError, 'the report says why');
    const report = await get('/api/v1/system/health-report');
    assert.equal(report.body.status, 'degraded');
    assert.ok(
      report.body.reasons.some((r: string) => r.startsWith(`${MCP} is down`)),
      JSON.stringify(report.body.reasons),
    );

    const alert = await until('alert firing', async () => {
      const r = await get('/api/v1/system/alerts?state=firing&severity=critical');
      return r.body.alerts.find((a: { labels: Record<string, string> }) => a.labels.service === MCP);
    });
    assert.equal(alert.ruleId, 'service_unavailable');
    fingerprint = alert.id;
    const firing = await until('AlertFiring on NATS', async () =>
      onNats.find((e) => e.type === 'AlertFiring' && e.data['fingerprint'] === fingerprint),
    );
    assert.equal(firing.streamId, `alert-${fingerprint}`);
    assert.equal(firing.metadata.actor, 'system:monitor');
    assert.equal(firing.notify, true);
    assert.ok(firing.position !== null, 'the envelope carries the store position');
    // The sink refused the first delivery; the retry carried the same event.
    const delivered = await until('webhook firing delivered', async () =>
      hooks.find((h) => h.status === 200 && h.body.status === 'firing' && h.body.alert.fingerprint === fingerprint),
    );
    assert.equal(hooks[0]!.status, 503);
    assert.equal(hooks[0]!.key, delivered.key);
    assert.equal(delivered.body.alert.labels.service, MCP);

    const events = await g.store.readStream(`service-${MCP}`);
    const down = events.find((e) => e.type === 'ServiceWentDown');
    assert.ok(down);
    downAt = Date.parse(down.metadata.timestamp);
    // The first failed probe went out at failingSince (a probe in flight at the stop may predate it a little).
    failingSince = (down.data as { failingSince: number }).failingSince;
    assert.ok(failingSince >= stoppedAt - settings.probeIntervalMs && failingSince <= downAt);
    assert.ok(downAt - failingSince >= 1_000, 'down only after the configured 1 s of failures');
  });

  it('restarted, it recovers: the alert resolves (NATS, webhook) and availability matches the recorded times', async () => {
    await startAnalytics();
    await until('mcp up again', async () => (await serviceRow(MCP))?.status === 'up', 30_000);
    const resolved = await until('alert resolved', async () => {
      const r = await get('/api/v1/system/alerts?state=resolved');
      return r.body.alerts.find((a: { id: string }) => a.id === fingerprint);
    });
    assert.equal(resolved.resolvedHow, 'auto');
    await until('AlertResolved on NATS', async () =>
      onNats.find((e) => e.type === 'AlertResolved' && e.data['fingerprint'] === fingerprint),
    );
    await until('webhook resolved delivered', async () =>
      hooks.find((h) => h.status === 200 && h.body.status === 'resolved' && h.body.alert.fingerprint === fingerprint),
    );
    assert.equal((await get('/api/v1/system/health-report')).body.status, 'healthy');

    const events = await g.store.readStream(`service-${MCP}`);
    // Observed since the first health event: a start that failed first (degraded counts as up) is observed too.
    // (A failing start counts from its first failed probe.)
    const first = events.find((e) => e.type === 'ServiceRecovered' || e.type === 'ServiceDegraded')!;
    const firstSeen = Math.min(
      Date.parse(first.metadata.timestamp),
      (first.data as { failingSince?: number | null }).failingSince ?? Infinity,
    );
    upAt = Date.parse(events.filter((e) => e.type === 'ServiceRecovered').at(-1)!.metadata.timestamp);
    assert.ok(upAt > downAt);

    const before = Date.now();
    const r = await get(`/api/v1/system/availability?service=${encodeURIComponent(MCP)}`);
    const after = Date.now();
    assert.equal(r.status, 200);
    const h1 = r.body.services[0].windows['1h'];
    // Expected from the recorded transitions: observed since the first health event, down from the
    // first failed probe (not the down-marking 1 s later) to the recovery.
    const downMs = upAt - failingSince;
    const lo = ((before - firstSeen - downMs) / (before - firstSeen)) * 100;
    const hi = ((after - firstSeen - downMs) / (after - firstSeen)) * 100;
    assert.ok(
      h1.uptimePercent >= lo - 0.5 && h1.uptimePercent <= hi + 0.5,
      `uptime ${h1.uptimePercent} not in [${lo}, ${hi}]`,
    );
    assert.ok(h1.uptimePercent < 100);
    assert.equal(h1.downMs, downMs);
    assert.equal(h1.incidents.length, 1);
    assert.equal(h1.mttrMs, downMs);
    assert.equal(h1.slaMet, false);
    const all = await get('/api/v1/system/availability');
    assert.ok(all.body.services.some((s: { service: string }) => s.service === 'postgres'));
    assert.equal((await get('/api/v1/system/availability?service=nope')).status, 404);
  });

  it('manual resolve records who and why; unknown is 404, resolved again is 409, a viewer may not', async () => {
    // A rule that fires at once on a series that is always there.
    const put = await send(
      'PUT',
      '/api/v1/system/alert-rules',
      {
        id: 'nats_seen',
        name: 'NATS probed',
        metric: 'probe_up',
        match: { service: 'nats' },
        comparator: '>=',
        threshold: 0,
        for_ms: 0,
        severity: 'info',
      },
      keys.admin,
    );
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.equal(put.body.rules.find((r: { id: string }) => r.id === 'nats_seen').source, 'api');
    assert.equal((await send('PUT', '/api/v1/system/alert-rules', { id: 'x' }, keys.admin)).status, 400);
    assert.equal(
      (
        await send(
          'PUT',
          '/api/v1/system/alert-rules',
          { id: 'y', name: 'y', metric: 'm', comparator: '>', threshold: 1, for_ms: 0, severity: 'info' },
          keys.operator,
        )
      ).status,
      403,
    );
    const alert = await until('nats_seen firing', async () =>
      (await get('/api/v1/system/alerts?state=firing')).body.alerts.find(
        (a: { ruleId: string }) => a.ruleId === 'nats_seen',
      ),
    );

    assert.equal(
      (await send('POST', `/api/v1/system/alerts/${alert.id}/resolve`, { reason: 'x' }, keys.viewer)).status,
      403,
    );
    assert.equal(
      (await send('POST', '/api/v1/system/alerts/00000000000000ff/resolve', { reason: 'x' }, keys.operator)).status,
      404,
    );
    assert.equal(
      (await send('POST', `/api/v1/system/alerts/${fingerprint}/resolve`, { reason: 'again' }, keys.operator)).status,
      409,
    );
    assert.equal(
      (await send('POST', `/api/v1/system/alerts/${alert.id}/resolve`, { reason: ' ' }, keys.operator)).status,
      400,
    );
    const correlationId = `resolve-${tag}`;
    const r = await send(
      'POST',
      `/api/v1/system/alerts/${alert.id}/resolve`,
      { reason: 'known test rule' },
      keys.operator,
      { 'x-correlation-id': correlationId },
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const who = `apikey:${keys.operatorId}`;
    assert.deepEqual(
      [r.body.alert.state, r.body.alert.resolvedHow, r.body.alert.resolvedBy, r.body.alert.resolveReason],
      ['resolved', 'manual', who, 'known test rule'],
    );
    const stored = (await g.store.readStream(`alert-${alert.id}`)).find((e) => e.type === 'AlertResolved');
    assert.ok(stored);
    assert.equal(stored.metadata.actor, who);
    assert.equal(stored.metadata.correlationId, correlationId, 'the request that caused it');
    assert.equal((stored.data as { reason: string }).reason, 'known test rule');

    // The specification's form: no body and no Content-Type. The actor is recorded, the reason is the default.
    const put2 = await send(
      'PUT',
      '/api/v1/system/alert-rules',
      {
        id: 'nats_seen_bare',
        name: 'NATS probed (bare resolve)',
        metric: 'probe_up',
        match: { service: 'nats' },
        comparator: '>=',
        threshold: 0,
        for_ms: 0,
        severity: 'info',
      },
      keys.admin,
    );
    assert.equal(put2.status, 200, JSON.stringify(put2.body));
    const bare = await until('nats_seen_bare firing', async () =>
      (await get('/api/v1/system/alerts?state=firing')).body.alerts.find(
        (a: { ruleId: string }) => a.ruleId === 'nats_seen_bare',
      ),
    );
    const res = await fetch(`${g.url}/api/v1/system/alerts/${bare.id}/resolve`, {
      method: 'POST',
      headers: bearer(keys.operator),
    });
    const bareBody = (await res.json()) as any;
    assert.equal(res.status, 200, JSON.stringify(bareBody));
    assert.deepEqual(
      [bareBody.alert.state, bareBody.alert.resolvedHow, bareBody.alert.resolvedBy, bareBody.alert.resolveReason],
      ['resolved', 'manual', who, 'resolved by hand'],
    );
    const storedBare = (await g.store.readStream(`alert-${bare.id}`)).find((e) => e.type === 'AlertResolved');
    assert.equal(storedBare?.metadata.actor, who);
    assert.equal(
      (await send('DELETE', '/api/v1/system/alert-rules?id=nats_seen_bare', undefined, keys.admin)).status,
      200,
    );

    // Deleting the rule resolves what it would keep firing; 404 for an unknown one.
    const del = await send('DELETE', '/api/v1/system/alert-rules?id=nats_seen', undefined, keys.admin);
    assert.equal(del.status, 200);
    assert.equal((await send('DELETE', '/api/v1/system/alert-rules?id=nats_seen', undefined, keys.admin)).status, 404);
  });

  it('silences: an operator adds one, a viewer lists it', async () => {
    const add = await send(
      'POST',
      '/api/v1/system/alerts/silences',
      {
        matchers: [{ name: 'service', value: 'mcp:.*', isRegex: true }],
        comment: 'maintenance',
        duration_ms: 3_600_000,
      },
      keys.operator,
    );
    assert.equal(add.status, 201, JSON.stringify(add.body));
    assert.equal(add.body.silence.createdBy, `apikey:${keys.operatorId}`);
    const list = await get('/api/v1/system/alerts/silences');
    assert.ok(list.body.silences.some((s: { id: string }) => s.id === add.body.silence.id));
    assert.equal(
      (await send('POST', '/api/v1/system/alerts/silences', { matchers: [], duration_ms: 1 }, keys.operator)).status,
      400,
    );
  });

  it('trends and /metrics in Prometheus text format', async () => {
    const t = await get(
      `/api/v1/system/performance-trends?metric=probe_up&window=1h&labels=${encodeURIComponent(`service=${MCP}`)}`,
    );
    assert.equal(t.status, 200);
    assert.equal(t.body.series.length, 1);
    assert.equal(t.body.series[0].labels.service, MCP);
    assert.ok(t.body.series[0].buckets.length >= 1);
    assert.equal((await get('/api/v1/system/performance-trends?window=2d')).status, 400);
    const m = await get('/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type, /^text\/plain; version=0\.0\.4/);
    assert.match(m.text, /# TYPE switchyard_service_status gauge/);
    assert.match(m.text, new RegExp(`switchyard_service_status\\{service="${MCP}",status="up"\\} 1`));
  });

  it('alert rules: for_ms at most 30 days (400 naming it); one id grammar for PUT and DELETE; a rule stored with an older id is deletable', async () => {
    const put = (body: unknown) => send('PUT', '/api/v1/system/alert-rules', body, keys.admin);
    const del = (id: string) =>
      send('DELETE', `/api/v1/system/alert-rules?id=${encodeURIComponent(id)}`, undefined, keys.admin);
    const listed = async () =>
      ((await get('/api/v1/system/alert-rules', keys.admin)).body.rules as { id: string }[]).map((r) => r.id);
    const rule = { name: 'never', metric: 'queue_depth_never', comparator: '>', threshold: 1e9, severity: 'info' };
    const DAYS_30 = 2_592_000_000;

    // A `for` past 30 days would wait longer than one timer can: refused, naming the field and the bound.
    for (const body of [
      { ...rule, id: 'long_for', for_ms: DAYS_30 + 1 },
      [{ ...rule, id: 'long_for', for_ms: 9_007_199_254_740_991 }],
      { rules: [{ ...rule, id: 'long_for', for_ms: DAYS_30 + 1 }] },
    ]) {
      const r = await put(body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(JSON.stringify(r.body), /for_ms: at most 2592000000 ms/);
    }
    assert.equal((await put({ ...rule, id: 'long_for', for_ms: DAYS_30 })).status, 200);
    assert.equal((await del('long_for')).status, 200);

    // Ids: what PUT takes DELETE takes, and what PUT refuses it refuses with the same words.
    for (const id of ['_rule', '.rule', '-rule', 'a'.repeat(129), 'a b']) {
      const r = await put({ ...rule, id, for_ms: 0 });
      assert.equal(r.status, 400, `${id}: ${JSON.stringify(r.body)}`);
    }
    for (const id of ['Upper.Case-1', 'a', `x${'y'.repeat(127)}`]) {
      assert.equal((await put({ ...rule, id, for_ms: 0 })).status, 200, id);
      assert.equal((await del(id)).status, 200, id);
      assert.ok(!(await listed()).includes(id));
    }

    // Rules stored when PUT still took a leading _ . - (and a for_ms past the bound): they list and delete.
    const stream = `alertrules-${serviceName}`;
    for (const id of ['_old_rule', '.old_rule', '-old_rule']) {
      await g.store.append(
        stream,
        [
          {
            id: newId(),
            type: 'AlertRuleCreated',
            data: { rule: { ...rule, id, for_ms: 60 * 86_400_000, match: {}, labels: {} } },
            metadata: { correlationId: 'spec', actor: 'spec', timestamp: new Date().toISOString() },
          },
        ],
        { expectedRevision: 'any' },
      );
    }
    for (const id of ['_old_rule', '.old_rule', '-old_rule']) {
      const r = await del(id);
      assert.equal(r.status, 200, `${id}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.deleted, id);
      assert.ok(!(await listed()).includes(id), id);
    }
    assert.equal((await del('_never_stored')).status, 404);
  });

  it('rule changes survive a restart of the monitor; a stopped monitor is 503', async () => {
    assert.equal(
      (
        await send(
          'PUT',
          '/api/v1/system/alert-rules',
          [
            {
              id: 'cpu_high',
              name: 'CPU usage high',
              metric: 'system_cpu_usage_percent',
              match: { cpu: 'total' },
              comparator: '>',
              threshold: 99,
              for_ms: 600_000,
              severity: 'warning',
            },
          ],
          keys.admin,
        )
      ).status,
      200,
    );
    await monitoring.stop();
    assert.equal((await get('/api/v1/system/health-report')).status, 503);
    monitoring = await start();
    const rules = (await get('/api/v1/system/alert-rules', keys.admin)).body.rules as {
      id: string;
      threshold: number;
      source: string;
    }[];
    assert.deepEqual(rules.map((r) => r.id).sort(), ['cpu_high', 'service_unavailable']);
    assert.deepEqual(
      rules.find((r) => r.id === 'cpu_high'),
      { ...rules.find((r) => r.id === 'cpu_high'), threshold: 99, source: 'api' },
    );
    assert.equal(rules.find((r) => r.id === 'service_unavailable')!.source, 'default');
  });

  it('an instance stopped while subscribed (as a frozen process stays): every read is answered by the live one', async () => {
    // A subscriber in the monitor's queue group that never answers is what NATS sees of a monitor
    // process stopped (SIGSTOP) after a standby took over: it keeps being handed every other request.
    const silent = (['health_report', 'alerts', 'availability'] as const).map((e) =>
      nc.subscribe(monitorSubject(e, serviceName), { queue: serviceName, callback: () => undefined }),
    );
    try {
      const paths = ['/api/v1/system/health-report', '/api/v1/system/alerts', '/api/v1/system/availability'];
      const t0 = Date.now();
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) statuses.push((await get(paths[i % paths.length]!)).status);
      assert.deepEqual(statuses, Array<number>(12).fill(200));
      console.log(`# 12 reads beside a silent member of the monitor's queue group: ${Date.now() - t0} ms`);
    } finally {
      for (const s of silent) s.unsubscribe();
    }
  });
});
