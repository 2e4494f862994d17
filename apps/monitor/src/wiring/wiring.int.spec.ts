/**
 * startMonitoring on the real test Postgres and nats-server, queried over its NATS service:
 * rule layers (defaults, MONITOR_RULES_FILE, MONITOR_RULES), an external HTTP agent from
 * MONITOR_HTTP_AGENTS, events in the store, and a webhook that refuses with a 4xx (not retried).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { closeNats, connectNats, request, type NatsConnection } from '@switchyard/messaging';
import { AppError, createLogger, newId } from '@switchyard/platform';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import {
  healthReportReply,
  monitorSubject,
  rulesReply,
  alertsReply,
  type MonitorEndpoint,
} from '@switchyard/contracts';
import { startMonitoring, type RunningMonitoring } from './start.js';
import type { z } from 'zod';

const logger = createLogger('wiring-test', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
describe('startMonitoring', () => {
  const serviceName = `monitor-w${newId()
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 8)
    .toLowerCase()}`;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let running: RunningMonitoring;
  let agentServer: http.Server;
  let sink: http.Server;
  let sinkCalls = 0;
  const ask = <S extends z.ZodType>(endpoint: MonitorEndpoint, body: unknown, schema: S) =>
    request(nc, monitorSubject(endpoint, serviceName), body, {
      schema: schema as z.ZodType<z.infer<S>>,
      timeoutMs: 3_000,
    });

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_wiring'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'monitor-wiring-test', logger });
    agentServer = http.createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"healthy"}'),
    );
    await new Promise<void>((r) => agentServer.listen(0, '127.0.0.1', r));
    sink = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        sinkCalls++;
        res.writeHead(400).end();
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(path.join(tmpdir(), 'monitor-rules-'));
    const file = path.join(dir, 'rules.json');
    writeFileSync(
      file,
      JSON.stringify([
        {
          id: 'file_rule',
          name: 'From file',
          metric: 'queue_depth',
          comparator: '>',
          threshold: 10,
          for_ms: 0,
          severity: 'info',
        },
      ]),
    );
    const env = {
      MONITOR_PROBE_INTERVAL_MS: '200',
      MONITOR_DOWN_AFTER_MS: '600',
      MONITOR_SAMPLE_INTERVAL_MS: '5000',
      MONITOR_RULES_FILE: file,
      MONITOR_RULES: JSON.stringify([
        {
          id: 'cpu_high',
          name: 'CPU usage high',
          metric: 'system_cpu_usage_percent',
          match: { cpu: 'total' },
          comparator: '>',
          threshold: 95,
          for_ms: 600_000,
          severity: 'warning',
        },
        {
          id: 'ext_agent_failing',
          name: 'External agent failing',
          metric: 'probe_up',
          match: { service: 'agent:ext' },
          comparator: '<',
          threshold: 1,
          for_ms: 0,
          severity: 'critical',
        },
      ]),
      MONITOR_HTTP_AGENTS: `ext=http://127.0.0.1:${(agentServer.address() as AddressInfo).port}/health`,
      // The receiver listens on loopback: allow-listed, as an operator would.
      EGRESS_ALLOW_CIDRS: '127.0.0.0/8',
      MONITOR_ALERT_WEBHOOKS: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/hook`,
      MONITOR_DISCOVERY_INTERVAL_MS: '5000',
    };
    running = await startMonitoring({
      pool,
      nats: nc,
      eventStore: store,
      logger,
      env,
      serviceName,
      agentServicePrefix: `agent-none-${serviceName}-`,
      sampler: { diskIntervalMs: 3_600_000 },
      webhookInitialDelayMs: 20,
    });
  });

  after(async () => {
    await running?.stop();
    await new Promise<void>((r) => agentServer?.close(() => r()));
    await new Promise<void>((r) => sink?.close(() => r()));
    await closeNats(nc);
    await store?.close();
    await pool?.end();
  });

  it('layers the rules: defaults, then the file, then MONITOR_RULES', async () => {
    const { rules } = await ask('rules', {}, rulesReply);
    const by = Object.fromEntries(rules.map((r) => [r.id, r]));
    assert.equal(by['cpu_high']!.source, 'env');
    assert.equal(by['cpu_high']!.threshold, 95);
    assert.equal(by['memory_high']!.source, 'default');
    assert.equal(by['file_rule']!.source, 'file');
    assert.equal(by['ext_agent_failing']!.source, 'env');
  });

  it('probes the external HTTP agent; when it stops, its alert fires and the events are in the store', async () => {
    await until('agent:ext up', async () =>
      (await ask('health_report', {}, healthReportReply)).services.find(
        (s) => s.service === 'agent:ext' && s.status === 'up',
      ),
    );
    await new Promise<void>((r) => agentServer.close(() => r()));
    agentServer.closeAllConnections();
    const report = await until('agent:ext down', async () => {
      const r = await ask('health_report', {}, healthReportReply);
      return r.services.find((s) => s.service === 'agent:ext')?.status === 'down' ? r : undefined;
    });
    assert.equal(report.status, 'degraded');
    assert.equal(report.services.find((s) => s.service === 'agent:ext')!.kind, 'agent');
    const alert = await until('alert firing', async () =>
      (await ask('alerts', { state: 'firing' }, alertsReply)).alerts.find((a) => a.ruleId === 'ext_agent_failing'),
    );
    const events = await store.readStream('service-agent:ext');
    assert.deepEqual(
      events.map((e) => e.type),
      ['ServiceRecovered', 'ServiceDegraded', 'ServiceWentDown'],
    );
    assert.ok(events.every((e) => e.metadata.actor === 'system:monitor'));
    const alertEvents = await store.readStream(`alert-${alert.id}`);
    assert.deepEqual(alertEvents.map((e) => e.type).slice(0, 2), ['AlertPending', 'AlertFiring']);
    // The webhook answered 400: a request it refuses is not sent again.
    await until('webhook called', async () => sinkCalls >= 1);
    await sleep(300);
    assert.equal(sinkCalls, 1);
  });

  it('errors travel back with their code', async () => {
    await assert.rejects(
      ask('resolve_alert', { id: 'ffffffffffffffff', actor: 'ann', reason: 'x' }, alertsReply),
      (e: unknown) => e instanceof AppError && e.code === 'not_found',
    );
    await assert.rejects(
      ask('put_rules', { rules: [{ id: 'bad' }], actor: 'ann' }, rulesReply),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
    await assert.rejects(
      ask('availability', { service: 'nope' }, alertsReply),
      (e: unknown) => e instanceof AppError && e.code === 'not_found',
    );
  });
});
