import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { freshDatabase } from '@switchyard/testing';
import { startMcpHttpServer, type McpHttpServerHandle } from '../common/http.js';
import { fails, httpClient, ok, silentLogger } from '../test-helpers.js';
import { createAnalyticsServer, migrateAnalytics } from './server.js';

/** Continuous percentile (linear interpolation between closest ranks), as percentile_cont defines it. */
function percentileCont(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  const rank = p * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b));

describe('analytics MCP server (real Postgres)', () => {
  let pool: pg.Pool;
  let http: McpHttpServerHandle;
  let client: Client;
  const end = Date.parse('2026-04-01T12:00:00.000Z');
  // Deterministic pseudo-random samples over the last 3 hours, two label sets.
  const samples = Array.from({ length: 120 }, (_, i) => ({
    value: Math.round(((i * 7919) % 1000) / 3) / 10,
    ts: new Date(end - (i * 90_000 + 1000)), // one every 90 s, newest 1 s before the end
    labels: { region: i % 3 === 0 ? 'eu' : 'us' },
  }));

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('mcp_analytics'), max: 4 });
    await migrateAnalytics(pool);
    http = await startMcpHttpServer({
      name: 'analytics',
      serverFactory: () => createAnalyticsServer({ pool, logger: silentLogger, clock: { now: () => new Date(end) } }),
      port: 0,
      logger: silentLogger,
    });
    client = await httpClient(http.url);
    for (const s of samples) {
      await ok(client, 'record_metric', {
        name: 'task.duration_ms',
        value: s.value,
        labels: s.labels,
        timestamp: s.ts.toISOString(),
      });
    }
    await ok(client, 'record_metric', {
      name: 'other.metric',
      value: 1,
      timestamp: new Date(end - 5000).toISOString(),
    });
  });

  after(async () => {
    await client?.close();
    await http?.close();
    await pool?.end();
  });

  it('aggregates over a window exactly as computed here', async () => {
    const inHour = samples.filter((s) => s.ts.getTime() > end - 3_600_000 && s.ts.getTime() <= end).map((s) => s.value);
    assert.ok(inHour.length > 10 && inHour.length < samples.length);
    const expected: Record<string, number> = {
      avg: inHour.reduce((a, b) => a + b, 0) / inHour.length,
      sum: inHour.reduce((a, b) => a + b, 0),
      min: Math.min(...inHour),
      max: Math.max(...inHour),
      count: inHour.length,
      p95: percentileCont(inHour, 0.95),
    };
    for (const [aggregate, want] of Object.entries(expected)) {
      const r = await ok(client, 'query_metric', { name: 'task.duration_ms', window: '1h', aggregate });
      assert.equal(r.samples, inHour.length, aggregate);
      assert.ok(close(r.value, want), `${aggregate}: got ${r.value}, want ${want}`);
    }
  });

  it('filters by labels and buckets the window', async () => {
    const eu = samples.filter((s) => s.labels.region === 'eu' && s.ts.getTime() > end - 2 * 3_600_000);
    const r = await ok(client, 'query_metric', {
      name: 'task.duration_ms',
      window: '2h',
      bucket: '30m',
      aggregate: 'sum',
      labels: { region: 'eu' },
    });
    assert.equal(r.buckets.length, 4);
    const start = end - 2 * 3_600_000;
    for (const b of r.buckets as { start: string; value: number; samples: number }[]) {
      const from = Date.parse(b.start);
      const inBucket = eu.filter(
        (s) => s.ts.getTime() >= from && s.ts.getTime() < from + 1_800_000 && s.ts.getTime() > start,
      );
      assert.equal(b.samples, inBucket.length);
      assert.ok(
        close(
          b.value,
          inBucket.reduce((a, s) => a + s.value, 0),
        ),
      );
    }
    assert.equal(
      r.buckets.reduce((a: number, b: { samples: number }) => a + b.samples, 0),
      eu.length,
    );
  });

  it('returns null for an empty window and refuses bad durations', async () => {
    const r = await ok(client, 'query_metric', { name: 'nothing.here', window: '1h', aggregate: 'avg' });
    assert.equal(r.value, null);
    assert.equal(r.samples, 0);
    const bad = await client.callTool({
      name: 'query_metric',
      arguments: { name: 'x', window: '1 hour; DROP TABLE x' },
    });
    assert.equal(bad.isError, true);
    assert.equal((await fails(client, 'query_metric', { name: 'x', window: '7d', bucket: '1s' })).code, 'validation');
  });

  it('lists metrics with counts and label keys', async () => {
    const r = await ok(client, 'list_metrics');
    const m = r.metrics.find((x: { name: string }) => x.name === 'task.duration_ms');
    assert.equal(m.samples, samples.length);
    assert.deepEqual(m.label_keys, ['region']);
    assert.ok(r.metrics.some((x: { name: string }) => x.name === 'other.metric'));
  });

  it('records a sample once per idempotency key: a repeat returns the recorded one, a different sample under the key is refused', async () => {
    const sample = {
      name: 'support.interaction',
      value: 1,
      labels: { channel: 'chat', intent: 'billing' },
      timestamp: new Date(end - 2000).toISOString(),
      idempotency_key: 'ex-42:log_interaction',
    };
    const first = await ok(client, 'record_metric', sample);
    assert.equal(first.deduplicated, false);
    // The same call again, labels in another order (a re-dispatched workflow step).
    const again = await ok(client, 'record_metric', { ...sample, labels: { intent: 'billing', channel: 'chat' } });
    assert.equal(again.deduplicated, true);
    assert.equal(again.id, first.id);
    assert.equal(again.timestamp, sample.timestamp);
    const rows = await pool.query(`select count(*)::int as n from analytics.metrics where idempotency_key = $1`, [
      sample.idempotency_key,
    ]);
    assert.equal(rows.rows[0].n, 1);
    const other = await fails(client, 'record_metric', { ...sample, value: 2 });
    assert.equal(other.code, 'illegal_state');
    assert.match(other.message, /ex-42:log_interaction/);
    // Without a key every call records a sample.
    const a = await ok(client, 'record_metric', { name: 'unkeyed.metric', value: 1 });
    const b = await ok(client, 'record_metric', { name: 'unkeyed.metric', value: 1 });
    assert.notEqual(a.id, b.id);
  });

  it("a call without an idempotency_key argument is keyed by the call's own key (a connector repeating a call, a workflow step's re-send): one sample", async () => {
    const keyed = async () =>
      (
        (await client.callTool({
          name: 'record_metric',
          arguments: { name: 'callkey.metric', value: 3 },
          _meta: { 'io.switchyard/idempotency_key': 'exec-9:record:1' },
        })) as CallToolResult
      ).structuredContent as { id: string; deduplicated: boolean };
    const first = await keyed();
    const again = await keyed();
    assert.equal(first.deduplicated, false);
    assert.equal(again.deduplicated, true);
    assert.equal(again.id, first.id);
    const rows = await pool.query(`select count(*)::int as n from analytics.metrics where name = 'callkey.metric'`);
    assert.equal(rows.rows[0].n, 1);
    // Not idempotent without any key, so the connectors do not repeat its timed-out calls.
    const { tools } = await client.listTools();
    assert.equal(tools.find((t) => t.name === 'record_metric')?.annotations?.idempotentHint, false);
  });

  it('reports "no data yet" for missing read models and summarises present ones', async () => {
    const r = await ok(client, 'report', { window: '24h' });
    for (const s of ['workflow_executions', 'task_stats', 'availability'])
      assert.equal(r.sections[s].status, 'no data yet', s);
    assert.equal(r.sections.metrics.status, 'ok');
    await pool.query(`CREATE SCHEMA read_models; CREATE TABLE read_models.workflow_executions (id text, status text);
      INSERT INTO read_models.workflow_executions VALUES ('a','completed'),('b','completed'),('c','failed')`);
    const again = await ok(client, 'report', { window: '24h' });
    assert.deepEqual(again.sections.workflow_executions.by_status, { completed: 2, failed: 1 });
    assert.equal(again.sections.workflow_executions.rows, 3);
    assert.equal(again.sections.task_stats.status, 'no data yet');
  });
});
