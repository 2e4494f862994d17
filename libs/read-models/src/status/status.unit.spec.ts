import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bucketValueMs, exactQuantile, latencyBucket, MAX_BUCKET, quantileOfBuckets, RATIO } from './histogram.js';
import { assessIntegration, type InfrastructureSnapshot } from './assess.js';
import type { IntegrationReadModels, McpServerStatus } from './schemas.js';

describe('latency histogram', () => {
  it('puts every duration in a bucket whose reported value is within the bucket ratio', () => {
    for (const ms of [0.2, 0.5, 1, 3.7, 12, 99.9, 250, 1_000, 4_321, 60_000]) {
      const v = bucketValueMs(latencyBucket(ms));
      assert.ok(v / ms <= Math.sqrt(RATIO) + 1e-9 && ms / v <= Math.sqrt(RATIO) + 1e-9, `${ms} -> ${v}`);
    }
  });
  it('is monotonic, clamps the extremes', () => {
    let prev = 0;
    for (let ms = 0.05; ms < 1e6; ms *= 1.03) {
      const b = latencyBucket(ms);
      assert.ok(b >= prev);
      prev = b;
    }
    assert.equal(latencyBucket(0), 1);
    assert.equal(latencyBucket(-5), 1);
    assert.equal(latencyBucket(1e9), MAX_BUCKET);
  });
  it('reads the p95 of merged counts like the exact nearest-rank p95, within the ratio', () => {
    const values = Array.from({ length: 200 }, (_, i) => 5 + ((i * 37) % 200) * 1.7);
    const counts = new Map<number, number>();
    for (const v of values) counts.set(latencyBucket(v), (counts.get(latencyBucket(v)) ?? 0) + 1);
    const approx = quantileOfBuckets([...counts], 0.95)!;
    const exact = exactQuantile(values, 0.95)!;
    assert.ok(Math.abs(approx - exact) / exact <= RATIO - 1, `${approx} vs ${exact}`);
    assert.equal(quantileOfBuckets([], 0.95), null);
    assert.equal(quantileOfBuckets([[3, 0]], 0.95), null);
  });
});

const server = (over: Partial<McpServerStatus> = {}): McpServerStatus => ({
  server: 'db',
  health: 'up',
  health_since: null,
  health_error: null,
  breaker: 'closed',
  breaker_since: null,
  last_error: null,
  last_call_at: null,
  last_hour: { calls: 0, failures: 0, tool_errors: 0, failure_rate: null, p95_ms: null },
  totals: { calls: 0, failures: 0 },
  ...over,
});
const now = new Date('2026-01-01T12:00:00Z');
const status = (over: Partial<IntegrationReadModels> = {}): IntegrationReadModels => ({
  generated_at: now.toISOString(),
  window: { from: new Date(now.getTime() - 3_600_000).toISOString(), to: now.toISOString() },
  mcp: { available: true, servers: [server(), server({ server: 'fs' })] },
  agents: { available: true, queued_any_agent: 0, items: [] },
  workflows: { available: true, running: 0, canceling: 0, last_hour: { completed: 0, failed: 0, canceled: 0 } },
  alerts: { available: false, firing: 0, pending: 0, items: [] },
  ...over,
});
const up: InfrastructureSnapshot = {
  checked_at: new Date(now.getTime() - 1_000).toISOString(),
  checks: {
    postgres: { status: 'up', durationMs: 1 },
    nats: { status: 'up', durationMs: 1 },
    eventStore: { status: 'up', durationMs: 1 },
  },
};

describe('assessIntegration', () => {
  it('healthy when everything is up, even with read models missing (no data yet)', () => {
    assert.deepEqual(assessIntegration(status(), up, { now }), { status: 'healthy', reasons: [] });
    const empty = status({
      mcp: { available: false, servers: [] },
      workflows: { available: false, running: 0, canceling: 0, last_hour: { completed: 0, failed: 0, canceled: 0 } },
    });
    assert.equal(assessIntegration(empty, up, { now }).status, 'healthy');
  });
  it('unhealthy when a core dependency is down; degraded for another check', () => {
    const pgDown = {
      ...up,
      checks: { ...up.checks, postgres: { status: 'down' as const, durationMs: 2000, error: 'timeout' } },
    };
    const r = assessIntegration(status(), pgDown, { now });
    assert.equal(r.status, 'unhealthy');
    assert.equal(r.reasons[0]!.component, 'infrastructure:postgres');
    const extra = { ...up, checks: { ...up.checks, projections: { status: 'down' as const, durationMs: 1 } } };
    assert.equal(assessIntegration(status(), extra, { now }).status, 'degraded');
  });
  it('degraded when not checked yet or stale', () => {
    assert.equal(
      assessIntegration(status(), { checked_at: null, checks: {} }, { now }).reasons[0]!.message,
      'infrastructure not checked yet',
    );
    const stale = { ...up, checked_at: new Date(now.getTime() - 60_000).toISOString() };
    assert.equal(assessIntegration(status(), stale, { now }).status, 'degraded');
  });
  it('one MCP server down or with an open breaker degrades; all of them is unhealthy', () => {
    const one = status({
      mcp: {
        available: true,
        servers: [server({ breaker: 'open', breaker_since: now.toISOString() }), server({ server: 'fs' })],
      },
    });
    const r = assessIntegration(one, up, { now });
    assert.equal(r.status, 'degraded');
    assert.match(r.reasons[0]!.message, /breaker open/);
    const all = status({
      mcp: { available: true, servers: [server({ health: 'down' }), server({ server: 'fs', breaker: 'open' })] },
    });
    assert.equal(assessIntegration(all, up, { now }).status, 'unhealthy');
  });
  it('an unconfigured MCP server counts for nothing: no reason, and not among "every server" either', () => {
    const github = server({ server: 'github', health: 'unconfigured', health_error: 'github needs a token (not set)' });
    const fine = status({ mcp: { available: true, servers: [server(), github] } });
    assert.deepEqual(assessIntegration(fine, up, { now }), { status: 'healthy', reasons: [] });
    const rest = status({ mcp: { available: true, servers: [server({ health: 'down' }), github] } });
    assert.equal(assessIntegration(rest, up, { now }).status, 'unhealthy', 'every configured server is down');
  });
  it('a high failure rate degrades only past the minimum of calls', () => {
    const busy = (calls: number) =>
      status({
        mcp: {
          available: true,
          servers: [
            server({
              last_hour: { calls, failures: calls - 1, tool_errors: 0, failure_rate: (calls - 1) / calls, p95_ms: 3 },
            }),
          ],
        },
      });
    assert.equal(assessIntegration(busy(5), up, { now }).status, 'healthy');
    assert.equal(assessIntegration(busy(20), up, { now }).status, 'degraded');
  });
  it('alerts: critical is unhealthy, warning degraded, info and silenced ones do not count', () => {
    const alert = (severity: string, silenced_by: string | null = null) => ({
      id: `f-${severity}`,
      rule_id: `r-${severity}`,
      name: `n-${severity}`,
      severity,
      labels: {},
      value: 1,
      threshold: 0,
      firing_since: now.toISOString(),
      silenced_by,
    });
    const with_ = (...items: ReturnType<typeof alert>[]) =>
      status({ alerts: { available: true, firing: items.length, pending: 0, items } });
    assert.equal(assessIntegration(with_(alert('info')), up, { now }).status, 'healthy');
    assert.equal(assessIntegration(with_(alert('critical', 's1')), up, { now }).status, 'healthy');
    assert.equal(assessIntegration(with_(alert('warning')), up, { now }).status, 'degraded');
    assert.equal(assessIntegration(with_(alert('warning'), alert('critical')), up, { now }).status, 'unhealthy');
  });
  it('an agent whose instances are all down degrades', () => {
    const agent = {
      agent: 'analyst',
      in_flight: 0,
      queued: 0,
      last_hour: {
        completed: 0,
        failed: 0,
        timed_out: 0,
        caller_errors: 0,
        success_rate: null,
        latency_p50_ms: null,
        latency_p95_ms: null,
      },
      totals: null,
      instances: [{ instance: 'i1', status: 'down', since: null, last_probe_at: null, last_error: 'no responders' }],
    };
    assert.equal(
      assessIntegration(status({ agents: { available: true, queued_any_agent: 0, items: [agent] } }), up, { now })
        .status,
      'degraded',
    );
  });
});
