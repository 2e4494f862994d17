/**
 * Gateway request metrics and GET /metrics on the real test Postgres and nats-server, with
 * the monitor (startMonitoring) reading real McpToolSucceeded events from the event store:
 * N requests raise `switchyard_http_requests_total` of their route TEMPLATE by N with their
 * status; one scrape holds the monitor's call metrics and the gateway's HTTP metrics, and the
 * stored call series show in performance-trends; with no monitor answering, /metrics is
 * still 200 with the gateway's part and a comment.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mcpToolSucceededSchema } from '@switchyard/contracts';
import { startMonitoring, type RunningMonitoring } from '@switchyard/monitor';
import { createLogger, newId } from '@switchyard/platform';
import { stopOwnInfra } from '@switchyard/testing';
import { SystemFeatureModule } from '../features/system/system.module.js';
import { bearer, startSecuredGateway, type SecuredGateway } from '../security/test-support.js';

const logger = createLogger('http-metrics-test', process.env.LOG_LEVEL ?? 'silent');

/** `name{labels} value` lines of a Prometheus text, by series (`name{...}` as written). */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
const requests = (m: Map<string, number>, method: string, route: string, status: string) =>
  m.get(`switchyard_http_requests_total{method="${method}",route="${route}",status="${status}"}`) ?? 0;

describe('gateway request metrics and /metrics', () => {
  const tag = newId()
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 10)
    .toLowerCase();
  const serviceName = `monitor-m${tag}`;
  let g: SecuredGateway;
  let viewer: string;
  let operator: string;
  let monitoring: RunningMonitoring | undefined;
  const scrape = async () => {
    const res = await fetch(`${g.url}/metrics`, { headers: bearer(viewer) });
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
  };

  before(async () => {
    g = await startSecuredGateway('http_metrics', {
      modules: [SystemFeatureModule.forRoot({ serviceName, timeoutMs: 1_500 })],
    });
    viewer = (await g.makeKey('viewer')).key;
    operator = (await g.makeKey('operator')).key;
  });
  after(async () => {
    await monitoring?.stop();
    await g?.close();
    await stopOwnInfra();
  });

  it('without a monitor, /metrics is 200: the gateway part after a comment', async () => {
    const m = await scrape();
    assert.equal(m.status, 200);
    assert.match(m.type, /^text\/plain; version=0\.0\.4/);
    assert.match(m.text, /^# switchyard monitor metrics unavailable: /);
    assert.match(m.text, /# TYPE switchyard_http_requests_total counter/);
    assert.match(m.text, /# TYPE switchyard_http_request_duration_seconds histogram/);
    // The two admin key creations of the setup were counted under their template.
    assert.equal(requests(series(m.text), 'POST', '/api/v1/admin/api-keys', '201'), 2);
  });

  it('N requests raise their route template by N, with their status; raw paths never become labels', async () => {
    monitoring = await startMonitoring({
      pool: g.pool,
      nats: g.nats,
      eventStore: g.store,
      logger,
      env: {},
      serviceName,
      settings: { sampleIntervalMs: 60_000, probeIntervalMs: 60_000, rules: [] },
      wiring: { discoveryIntervalMs: 60_000 },
      mcpSubjectPrefix: `switchyard.svc.mcp${tag}.v1`,
      agentServicePrefix: `agent-none-${tag}-`,
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
      callMetrics: { aggregateIntervalMs: 0 },
    });
    const before = series((await scrape()).text);
    const resolve = '/api/v1/system/alerts/:alert_id/resolve';
    const ids = Array.from({ length: 4 }, () =>
      newId()
        .replace(/[^a-f0-9]/gi, '')
        .slice(0, 16),
    );
    for (const id of ids) {
      const r = await fetch(`${g.url}/api/v1/system/alerts/${id}/resolve`, {
        method: 'POST',
        headers: { ...bearer(operator), 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'test' }),
      });
      assert.equal(r.status, 404); // the monitor's not_found, through a matched route
    }
    for (let i = 0; i < 3; i++)
      assert.equal((await fetch(`${g.url}/api/v1/system/health-report`, { headers: bearer(viewer) })).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await fetch(`${g.url}/api/v1/system/health-report`)).status, 401);
    // A bad key is refused before routing: its label comes from the documented routes.
    assert.equal(
      (await fetch(`${g.url}/api/v1/system/alerts/${ids[0]}/resolve`, { method: 'POST', headers: bearer('sk_nope') }))
        .status,
      401,
    );
    for (let i = 0; i < 2; i++)
      assert.equal((await fetch(`${g.url}/no/such/${newId()}`, { headers: bearer(viewer) })).status, 404);

    const m = await scrape();
    assert.equal(m.status, 200);
    const after = series(m.text);
    const delta = (method: string, route: string, status: string) =>
      requests(after, method, route, status) - requests(before, method, route, status);
    assert.equal(delta('POST', resolve, '404'), 4);
    assert.equal(delta('GET', '/api/v1/system/health-report', '200'), 3);
    assert.equal(delta('GET', '/api/v1/system/health-report', '401'), 2);
    assert.equal(delta('POST', resolve, '401'), 1);
    assert.equal(delta('GET', 'unmatched', '404'), 2);
    // The previous scrape itself is counted too.
    assert.equal(delta('GET', '/metrics', '200'), 1);
    const count = (route: string) =>
      (after.get(`switchyard_http_request_duration_seconds_count{method="POST",route="${route}"}`) ?? 0) -
      (before.get(`switchyard_http_request_duration_seconds_count{method="POST",route="${route}"}`) ?? 0);
    assert.equal(count(resolve), 5);
    for (const id of ids) assert.ok(!m.text.includes(id), 'no raw path in a label');
    assert.ok(!m.text.includes('/no/such/'), 'no raw path in a label');
    assert.doesNotMatch(m.text, /monitor metrics unavailable/);
  });

  it("one scrape: the monitor's MCP call metrics from real events, then the gateway's; no metric name twice", async () => {
    const server = `srv${tag}`;
    const at = new Date().toISOString();
    const events = Array.from({ length: 3 }, (_, i) => ({
      type: 'McpToolSucceeded',
      data: mcpToolSucceededSchema.parse({
        server,
        tool: 'query',
        call_id: newId(),
        duration_ms: 10 + i,
        outcome: 'success',
        attempts: 1,
        result: { value: null, size: 0, truncated: false },
        at,
      }),
      metadata: { correlationId: newId(), timestamp: at },
    }));
    const last = await g.store.append(`mcpserver-${server}`, events);
    await monitoring!.callMetrics!.waitFor(last.position);
    const m = await scrape();
    const s = series(m.text);
    assert.equal(s.get(`switchyard_mcp_calls_total{server="${server}",tool="query",outcome="success"}`), 3);
    assert.equal(
      s.get(`switchyard_mcp_call_duration_seconds_count{server="${server}",tool="query",outcome="success"}`),
      3,
    );
    const types = [...m.text.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]!);
    assert.deepEqual(
      types.filter((t, i) => types.indexOf(t) !== i),
      [],
    );
    assert.ok(
      m.text.indexOf('switchyard_mcp_calls_total') < m.text.indexOf('switchyard_http_requests_total'),
      "the monitor's part first",
    );
    // The stored series, through the trends endpoint.
    const t = await fetch(
      `${g.url}/api/v1/system/performance-trends?metric=mcp_call_ms&window=1h&labels=${encodeURIComponent(`server=${server}`)}`,
      { headers: bearer(viewer) },
    );
    assert.equal(t.status, 200);
    const body = (await t.json()) as {
      series: { labels: Record<string, string>; buckets: { count: number; sum: number }[] }[];
    };
    assert.equal(body.series.length, 1);
    assert.deepEqual(body.series[0]!.labels, { server, tool: 'query' });
    assert.equal(
      body.series[0]!.buckets.reduce((n, b) => n + b.count, 0),
      3,
    );
    assert.equal(
      body.series[0]!.buckets.reduce((n, b) => n + b.sum, 0),
      10 + 11 + 12,
    );
  });
});
