import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { pino } from 'pino';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { freshDatabase } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { EgressGuard } from '../fetch/egress-guard.js';
import { fails, httpClient, localHttp } from '../test-helpers.js';
import { createAutomationServer } from './server.js';
import { AutomationService } from './automation-service.js';

/**
 * A webhook's or an A2A push URL's path and query can be its own credential (a Slack-style
 * secret path, an access token in the query). A failed delivery is logged on every attempt:
 * those lines name the receiver's origin only.
 */
describe('automation: failed deliveries log the URL origin only (real Postgres, a closed port)', () => {
  let db: pg.Pool;
  let svc: AutomationService;
  let http: McpHttpServerHandle;
  let client: Client;
  let deadBase: string;
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  const SECRET_PATH = 'SECRETPATH-7f3a';
  const SECRET_QUERY = 'QUERYSECRET-91c2';

  before(async () => {
    const url = await freshDatabase('mcp_log_urls');
    db = new pg.Pool({ connectionString: url, max: 4 });
    // A port nothing listens on: every attempt fails with a network error.
    const gone = await localHttp((_q, res) => res.end());
    deadBase = gone.base;
    await gone.close();
    svc = new AutomationService({
      pool: db,
      logger,
      guard: new EgressGuard({ allowCidrs: ['127.0.0.0/8'] }),
      delivery: { retries: 2, initialDelayMs: 5, maxDelayMs: 10, timeoutMs: 2000 },
      scheduledRetry: { firstRetryMs: 60_000 },
    });
    await svc.migrate();
    await svc.start();
    http = await startMcpHttpServer({
      name: 'automation',
      serverFactory: () => createAutomationServer({ service: svc, logger }),
      port: 0,
      logger,
    });
    client = await httpClient(http.url);
  });

  after(async () => {
    await client?.close();
    await http?.close();
    await svc?.close();
    await db?.end();
  });

  const leaks = () => lines.filter((l) => l.includes(SECRET_PATH) || l.includes(SECRET_QUERY));

  it('a webhook send that gets no answer: its retries and the failed call name the origin, not the path or query', async () => {
    await svc.registerWebhook({
      name: 'slackish',
      url: `${deadBase}/services/${SECRET_PATH}?sig=${SECRET_QUERY}`,
      secret: '0123456789abcdef0123',
      events: [],
    });
    const before = lines.length;
    const e = await fails(client, 'send_webhook', { webhook: 'slackish', event: 'e', payload: {} });
    assert.equal(e.code, 'unavailable');
    const mine = lines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    const retries = mine.filter((l) => l['msg'] === 'webhook delivery failed, retrying');
    assert.equal(retries.length, 2, 'each retry is logged');
    assert.ok(
      JSON.stringify(retries).includes(deadBase),
      'the origin is still named, so an operator knows which receiver',
    );
    assert.ok(
      mine.some((l) => l['msg'] === 'tool call failed'),
      'the failed call is logged too',
    );
    assert.deepEqual(leaks(), []);
  });

  it('a queued (A2A push) delivery that gets no answer: its retries name the origin only', async () => {
    const before = lines.length;
    await svc.queueWebhook({
      format: 'a2a',
      url: `${deadBase}/hooks/${SECRET_PATH}?access_token=${SECRET_QUERY}`,
      event: 'a2a.status-update',
      body: { kind: 'status-update' },
      content_type: 'application/json',
      token: 'PUSHTOKEN-zz',
      idempotency_key: 'log-urls-1',
    });
    for (let i = 0; i < 250; i++) {
      const r = await db.query(
        `SELECT last_error FROM automation.scheduled_deliveries WHERE delivery_id = 'log-urls-1'`,
      );
      if (r.rows[0]?.last_error) break;
      await sleep(20);
    }
    const mine = lines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      mine.some((l) => l['msg'] === 'queued delivery failed, retrying'),
      'the retries are logged',
    );
    const row = await db.query(
      `SELECT last_error FROM automation.scheduled_deliveries WHERE delivery_id = 'log-urls-1'`,
    );
    assert.ok(row.rows[0]?.last_error, 'the failure is recorded');
    assert.ok(!String(row.rows[0].last_error).includes(SECRET_PATH), 'nor in the recorded error');
    assert.deepEqual(leaks(), []);
    assert.ok(!lines.some((l) => l.includes('PUSHTOKEN-zz')), 'the push token is not logged either');
  });
});
