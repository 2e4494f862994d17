import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createLogger } from '@switchyard/platform';
import { PostgresEventStore } from '@switchyard/event-store';
import { freshDatabase, testNatsUrl } from '@switchyard/testing';
import { mcpEvent, mcpEventSchema, mcpServerStreamId, type McpEvent } from '@switchyard/contracts';
import { exactQuantile, LATENCY_BUCKET_RATIO, startStatusProjections } from '@switchyard/read-models';
import { MonitoringStore, type AlertingEvent } from '@switchyard/monitor';
import { createGateway, type Gateway } from '../../index.js';
import { integrationStatusResponse, StatusFeatureModule, type IntegrationStatusResponse } from './index.js';

const logger = createLogger('status-gateway-int', process.env.LOG_LEVEL ?? 'silent');
const MIN = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('GET /api/v1/integration/status over real HTTP and PostgreSQL', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  let gw: Gateway;
  let base: string;
  let seq = 0;
  // An extra readiness probe that fails and counts its runs: the refresher runs it, requests never do.
  let flakyRuns = 0;
  const t0 = Date.now();
  const at = (msAgo: number) => new Date(t0 - msAgo).toISOString();

  const get = async (): Promise<IntegrationStatusResponse> => {
    const res = await fetch(`${base}/api/v1/integration/status`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    return integrationStatusResponse.parse(await res.json());
  };
  const append = async (e: McpEvent) => {
    mcpEventSchema.parse(e);
    await store.append(mcpServerStreamId(e.data.server), [
      { type: e.type, data: e.data, metadata: { correlationId: `c${++seq}`, actor: 'test', timestamp: e.data.at } },
    ]);
  };

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('status_gw'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connect({ servers: await testNatsUrl() });
    gw = await createGateway(
      {
        eventStore: store,
        pgPool: pool,
        nats: nc,
        logger,
        config: { GATEWAY_PORT: 0, GATEWAY_HOST: '127.0.0.1' },
        readiness: {
          flaky: async () => {
            flakyRuns++;
            throw new Error('flaky is off');
          },
        },
      },
      // A long refresh period: any extra probe run would come from a request.
      { modules: [StatusFeatureModule.forRoot({ refreshMs: 60_000, staleAfterMs: 120_000 })] },
    );
    base = (await gw.listen(0, '127.0.0.1')).url;
    for (let i = 0; i < 100 && (await get()).infrastructure.checked_at === null; i++) await sleep(50);
  });

  after(async () => {
    await gw?.close();
    await nc?.close();
    await store?.close();
    await pool?.end();
  });

  it('before any read model exists: no data yet, cached infrastructure, degraded by the failing extra check only', async () => {
    const s = await get();
    assert.deepEqual([s.mcp.available, s.workflows.available, s.alerts.available], [false, false, false]);
    assert.equal(s.infrastructure.checks.postgres?.status, 'up');
    assert.equal(s.infrastructure.checks.nats?.status, 'up');
    assert.equal(s.infrastructure.checks.eventStore?.status, 'up');
    assert.equal(s.infrastructure.checks.flaky?.status, 'down');
    assert.equal(s.status, 'degraded');
    assert.deepEqual(
      s.reasons.map((r) => r.component),
      ['infrastructure:flaky'],
    );
  });

  it('never runs a probe for a request: the refresher ran them once', async () => {
    for (let i = 0; i < 30; i++) await get();
    assert.equal(flakyRuns, 1);
  });

  it('MCP figures of the last hour and the breaker, from connector events through the status projection', async () => {
    const durations: number[] = [];
    let failures = 0;
    for (let i = 0; i < 40; i++) {
      const d = 2 + ((i * 53) % 97) * 3.1;
      const ok = i % 6 !== 0;
      const base_ = { server: 'github', tool: 'search', call_id: `k${i}` };
      await append(
        mcpEvent('McpToolCalled', {
          ...base_,
          arguments: { value: {}, size: 2, truncated: false },
          at: at((45 - i) * MIN),
        }),
      );
      await append(
        ok
          ? mcpEvent('McpToolSucceeded', {
              ...base_,
              duration_ms: d,
              outcome: 'success',
              attempts: 1,
              result: { value: 1, size: 1, truncated: false },
              at: at((45 - i) * MIN - d),
            })
          : mcpEvent('McpToolFailed', {
              ...base_,
              duration_ms: d,
              outcome: 'error',
              error_code: 'timeout',
              error_message: 'slow',
              attempts: 1,
              at: at((45 - i) * MIN - d),
            }),
      );
      durations.push(d);
      if (!ok) failures++;
    }
    // Old calls (two hours ago) count in the totals only.
    await append(
      mcpEvent('McpToolSucceeded', {
        server: 'github',
        tool: 'search',
        call_id: 'old',
        duration_ms: 5,
        outcome: 'success',
        attempts: 1,
        result: { value: 1, size: 1, truncated: false },
        at: at(130 * MIN),
      }),
    );
    await append(
      mcpEvent('McpCircuitOpened', {
        server: 'github',
        last_error: 'slow',
        half_open_after_ms: 30_000,
        at: at(2 * MIN),
      }),
    );
    await append(
      mcpEvent('McpToolSucceeded', {
        server: 'fetch',
        tool: 'get',
        call_id: 'f1',
        duration_ms: 12,
        outcome: 'success',
        attempts: 1,
        result: { value: 1, size: 1, truncated: false },
        at: at(1 * MIN),
      }),
    );
    const runner = await startStatusProjections({ store, pool, logger });
    try {
      const s = await get();
      assert.equal(s.mcp.available, true);
      const gh = s.mcp.servers.find((x) => x.server === 'github')!;
      assert.equal(gh.last_hour.calls, 40);
      assert.equal(gh.last_hour.failures, failures);
      assert.equal(gh.totals.calls, 41);
      const exact = exactQuantile(durations, 0.95)!;
      assert.ok(
        Math.abs(gh.last_hour.p95_ms! - exact) / exact <= LATENCY_BUCKET_RATIO - 1,
        `p95 ${gh.last_hour.p95_ms} vs ${exact}`,
      );
      assert.equal(gh.breaker, 'open');
      assert.equal(gh.breaker_since, at(2 * MIN));
      assert.equal(s.status, 'degraded');
      assert.ok(
        s.reasons.some((r) => r.component === 'mcp:github' && /breaker open/.test(r.message)),
        JSON.stringify(s.reasons),
      );
      // The breaker closes: the answer follows the projection.
      await append(mcpEvent('McpCircuitClosed', { server: 'github', at: at(0.5 * MIN) }));
      await runner.waitFor();
      const after_ = await get();
      assert.equal(after_.mcp.servers.find((x) => x.server === 'github')!.breaker, 'closed');
      assert.ok(!after_.reasons.some((r) => r.component === 'mcp:github'));
    } finally {
      await runner.stop();
    }
  });

  it("firing alerts from the monitor's tables: counted, listed, a critical one makes it unhealthy", async () => {
    assert.equal((await get()).alerts.available, false);
    const monitoring = new MonitoringStore(pool);
    await monitoring.migrate();
    assert.deepEqual((await get()).alerts, { available: true, firing: 0, pending: 0, items: [] });
    const ref = (id: string, severity: 'warning' | 'critical') => ({
      fingerprint: `fp-${id}`,
      ruleId: `rule-${id}`,
      name: `Rule ${id}`,
      severity,
      labels: { service: id },
    });
    const now = Date.now();
    const events: AlertingEvent[] = [
      {
        type: 'AlertPending',
        data: { ...ref('cpu', 'warning'), value: 95, threshold: 90 },
        metadata: { at: now - 60_000 },
      },
      {
        type: 'AlertFiring',
        data: { ...ref('cpu', 'warning'), value: 96, threshold: 90, pendingSince: now - 60_000, suppressedBy: null },
        metadata: { at: now - 30_000 },
      },
      {
        type: 'AlertPending',
        data: { ...ref('db', 'critical'), value: 1, threshold: 0 },
        metadata: { at: now - 20_000 },
      },
      {
        type: 'AlertFiring',
        data: { ...ref('db', 'critical'), value: 1, threshold: 0, pendingSince: now - 20_000, suppressedBy: null },
        metadata: { at: now - 10_000 },
      },
      {
        type: 'AlertPending',
        data: { ...ref('mem', 'warning'), value: 91, threshold: 90 },
        metadata: { at: now - 5_000 },
      },
    ];
    await monitoring.applyAlertingEvents(events);
    const s = await get();
    assert.equal(s.alerts.firing, 2);
    assert.equal(s.alerts.pending, 1);
    assert.deepEqual(
      s.alerts.items.map((a) => a.rule_id),
      ['rule-db', 'rule-cpu'],
      'critical first',
    );
    assert.equal(s.status, 'unhealthy');
    assert.equal(s.reasons[0]!.component, 'alert:rule-db');
  });

  it('is documented for role viewer with its response schema', async () => {
    const doc = (await (await fetch(`${base}/docs/openapi.json`)).json()) as {
      paths: Record<string, Record<string, Record<string, unknown>>>;
    };
    const op = doc.paths['/api/v1/integration/status']?.get;
    assert.ok(op, 'route in the OpenAPI document');
    assert.equal(op['x-required-role'], 'viewer');
    assert.ok(JSON.stringify(op.responses).includes('infrastructure'));
  });

  it('answers quickly (measured and printed, not asserted)', async () => {
    for (let i = 0; i < 20; i++) await fetch(`${base}/api/v1/integration/status`).then((r) => r.arrayBuffer());
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const start = performance.now();
      const res = await fetch(`${base}/api/v1/integration/status`);
      await res.arrayBuffer();
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    console.log(
      `# GET /api/v1/integration/status, 300 sequential requests over HTTP: p50 ${times[150]!.toFixed(2)} ms, p95 ${times[285]!.toFixed(2)} ms, max ${times[299]!.toFixed(2)} ms`,
    );
  });
});
