/**
 * Alert webhooks (MONITOR_ALERT_WEBHOOKS) go through the SSRF guard: a receiver on this
 * machine is reached only when allow-listed, and never through another spelling of its
 * address when it is not. Real PostgreSQL event store, real NATS, a real HTTP receiver.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, newId } from '@switchyard/platform';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import type { MonitorEvent } from '../monitor.js';
import { MonitorEventPublisher } from './publisher.js';

const logger = createLogger('monitor-egress-test', process.env.LOG_LEVEL ?? 'silent');

const firing = (): MonitorEvent => ({
  type: 'AlertFiring',
  data: {
    fingerprint: newId(),
    ruleId: 'cpu_high',
    name: 'CPU usage high',
    severity: 'warning',
    labels: { service: 'x' },
    value: 99,
    threshold: 80,
    pendingSince: Date.now(),
    suppressedBy: null,
  },
  metadata: { at: Date.now(), correlationId: newId() },
});

describe('alert webhooks behind the egress guard', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let receiver: http.Server;
  let port: number;
  const hits: string[] = [];

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_egress'), max: 3 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'monitor-egress-test', logger });
    receiver = http.createServer((req, res) => {
      hits.push(String(req.url));
      req.resume();
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    port = (receiver.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((r) => receiver?.close(() => r()));
    await closeNats(nc);
    await store?.close();
    await pool?.end();
  });

  it('without an allow-list no spelling of loopback or the metadata address is posted to', async () => {
    const urls = [
      `http://127.0.0.1:${port}/plain`,
      `http://[::ffff:127.0.0.1]:${port}/mapped`,
      `http://[::127.0.0.1]:${port}/compat`,
      `http://0x7f.1:${port}/hex`,
      `http://2130706433:${port}/decimal`,
      `http://localhost.:${port}/dot`,
      'http://169.254.169.254/meta',
    ];
    const publisher = new MonitorEventPublisher({
      eventStore: store,
      nats: nc,
      logger,
      webhooks: urls,
      webhookMaxAttempts: 3,
      webhookInitialDelayMs: 10,
      webhookTimeoutMs: 1_000,
    });
    await publisher.publish([firing()]);
    await publisher.flush();
    assert.deepEqual(hits, []);
  });

  it('with 127.0.0.0/8 allow-listed the same receiver gets the alert', async () => {
    const publisher = new MonitorEventPublisher({
      eventStore: store,
      nats: nc,
      logger,
      webhooks: [`http://127.0.0.1:${port}/allowed`],
      webhookInitialDelayMs: 10,
      egress: { allowCidrs: ['127.0.0.0/8'] },
    });
    await publisher.publish([firing()]);
    await publisher.flush();
    await until('the receiver got the alert', () => hits.includes('/allowed'), 5_000);
    assert.deepEqual(hits, ['/allowed']);
  });
});
