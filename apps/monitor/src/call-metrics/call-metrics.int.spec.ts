/**
 * CallMetricsConsumer on the real test Postgres: real McpToolSucceeded / McpToolFailed and
 * task events appended to the PostgreSQL event store become Prometheus counters and
 * histograms and stored samples, exactly once across a restart; the window p95 fires the
 * default `mcp_call_slow` rule.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { mcpToolFailedSchema, mcpToolSucceededSchema } from '@switchyard/contracts';
import { PostgresEventStore, type NewEvent } from '@switchyard/event-store';
import { createLogger, newId } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { defaultAlertRules } from '../domain/rules.js';
import { Monitor } from '../monitor.js';
import { CallMetricsConsumer } from './consumer.js';
import { callMetricNames as N } from './observations.js';
import { callMetricsAlertRules } from './rules.js';

const logger = createLogger('call-metrics-test', process.env.LOG_LEVEL ?? 'silent');
const meta = () => ({ correlationId: newId(), timestamp: new Date().toISOString() });
const payload = { value: null, size: 0, truncated: false };

function succeeded(server: string, tool: string, ms: number, at = new Date()): NewEvent {
  return {
    type: 'McpToolSucceeded',
    data: mcpToolSucceededSchema.parse({
      server,
      tool,
      call_id: newId(),
      duration_ms: ms,
      outcome: 'success',
      attempts: 1,
      result: payload,
      at: at.toISOString(),
    }),
    metadata: meta(),
  };
}
function failed(
  server: string,
  tool: string,
  ms: number,
  outcome: 'tool_error' | 'error' | 'rejected',
  code: string,
): NewEvent {
  return {
    type: 'McpToolFailed',
    data: mcpToolFailedSchema.parse({
      server,
      tool,
      call_id: newId(),
      duration_ms: ms,
      outcome,
      error_code: code,
      error_message: 'x',
      attempts: 1,
      at: new Date().toISOString(),
    }),
    metadata: meta(),
  };
}
// Data as libs/domain/src/task writes it (TaskCompleted / TaskFailed / TaskTimedOut).
function taskEnd(kind: 'completed' | 'failed' | 'timed_out', agent: string, taskType: string, ms: number): NewEvent {
  const now = new Date().toISOString();
  const common = { task_id: newId(), task_type: taskType, agent, instance: `${agent}-1`, assignment: 1 };
  if (kind === 'completed')
    return {
      type: 'TaskCompleted',
      data: { ...common, result: { ok: true }, duration_ms: ms, completed_at: now },
      metadata: meta(),
    };
  if (kind === 'failed')
    return {
      type: 'TaskFailed',
      data: { ...common, attempts: 1, error: { code: 'agent_error', message: 'no' }, duration_ms: ms, failed_at: now },
      metadata: meta(),
    };
  return { type: 'TaskTimedOut', data: { ...common, timeout_ms: ms, timed_out_at: now }, metadata: meta() };
}

// prom-client's values carry `metricName` for histogram parts (`_bucket`, `_count`), untyped.
type Value = { value: number; labels: Record<string, string | number | undefined>; metricName?: string };
async function metricValues(monitor: Monitor, name: string): Promise<Value[]> {
  const m = monitor.prometheus.registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} registered`);
  return (await m.get()).values;
}
async function counter(monitor: Monitor, name: string, labels: Record<string, string>): Promise<number> {
  const v = (await metricValues(monitor, name)).find((x) =>
    Object.entries(labels).every(([k, val]) => x.labels[k] === val),
  );
  return v?.value ?? 0;
}
async function histogramCount(monitor: Monitor, name: string, labels: Record<string, string>): Promise<number> {
  const v = (await metricValues(monitor, name)).find(
    (x) => x.metricName === `${name}_count` && Object.entries(labels).every(([k, val]) => x.labels[k] === val),
  );
  return v?.value ?? 0;
}

describe('CallMetricsConsumer', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  const monitors: Monitor[] = [];
  const consumers: CallMetricsConsumer[] = [];
  const start = async () => {
    const monitor = new Monitor({
      pool,
      publish: () => undefined,
      logger,
      settings: { rules: [...defaultAlertRules, ...callMetricsAlertRules] },
    });
    await monitor.init();
    const consumer = new CallMetricsConsumer({
      pool,
      eventStore: store,
      monitor,
      logger,
      aggregateIntervalMs: 0,
      batchSize: 7,
    });
    await consumer.start();
    monitors.push(monitor);
    consumers.push(consumer);
    return { monitor, consumer };
  };
  const from = Date.now() - 3_600_000;
  const to = () => Date.now() + 3_600_000;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('call_metrics'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
  });
  after(async () => {
    for (const c of consumers) await c.stop();
    for (const m of monitors) await m.stop();
    await store?.close();
    await pool?.end();
  });

  it('counts, observes and stores every appended call and task end', async () => {
    const { monitor, consumer } = await start();
    await store.append('mcpserver-files', [
      succeeded('files', 'read', 20),
      succeeded('files', 'read', 40),
      succeeded('files', 'write', 1_500),
    ]);
    await store.append('mcpserver-files', [
      failed('files', 'read', 30, 'tool_error', 'tool_error'),
      failed('files', 'read', 5_000, 'error', 'timeout'),
      failed('files', 'read', 0, 'rejected', 'unavailable'),
    ]);
    // Not call events: they only pass by.
    await store.append(`task-${newId()}`, [{ type: 'TaskSubmitted', data: { task_type: 'sum' }, metadata: meta() }]);
    await store.append(`task-${newId()}`, [taskEnd('completed', 'analyst', 'summarize', 900)]);
    await store.append(`task-${newId()}`, [taskEnd('completed', 'analyst', 'summarize', 1_100)]);
    await store.append(`task-${newId()}`, [taskEnd('failed', 'analyst', 'summarize', 50)]);
    const last = await store.append(`task-${newId()}`, [taskEnd('timed_out', 'analyst', 'summarize', 30_000)]);
    await consumer.waitFor(last.position);

    // Prometheus: counters by outcome, histogram counts.
    const calls = 'switchyard_mcp_calls_total';
    assert.equal(await counter(monitor, calls, { server: 'files', tool: 'read', outcome: 'success' }), 2);
    assert.equal(await counter(monitor, calls, { server: 'files', tool: 'write', outcome: 'success' }), 1);
    assert.equal(await counter(monitor, calls, { server: 'files', tool: 'read', outcome: 'tool_error' }), 1);
    assert.equal(await counter(monitor, calls, { server: 'files', tool: 'read', outcome: 'error' }), 1);
    assert.equal(await counter(monitor, calls, { server: 'files', tool: 'read', outcome: 'rejected' }), 1);
    assert.equal(
      await histogramCount(monitor, 'switchyard_mcp_call_duration_seconds', {
        server: 'files',
        tool: 'read',
        outcome: 'success',
      }),
      2,
    );
    const tasks = 'switchyard_agent_tasks_total';
    assert.equal(await counter(monitor, tasks, { agent: 'analyst', task_type: 'summarize', outcome: 'completed' }), 2);
    assert.equal(await counter(monitor, tasks, { agent: 'analyst', task_type: 'summarize', outcome: 'failed' }), 1);
    assert.equal(await counter(monitor, tasks, { agent: 'analyst', task_type: 'summarize', outcome: 'timed_out' }), 1);
    assert.equal(
      await histogramCount(monitor, 'switchyard_agent_task_duration_seconds', {
        agent: 'analyst',
        task_type: 'summarize',
        outcome: 'completed',
      }),
      2,
    );
    // The histogram put 20 ms and 40 ms in the 0.05 s bucket.
    const bucket = (await metricValues(monitor, 'switchyard_mcp_call_duration_seconds')).find(
      (x) =>
        x.metricName?.endsWith('_bucket') &&
        x.labels.le === 0.05 &&
        x.labels.tool === 'read' &&
        x.labels.outcome === 'success',
    );
    assert.equal(bucket?.value, 2);
    const text = await monitor.renderPrometheus();
    assert.match(text, /switchyard_mcp_calls_total\{server="files",tool="read",outcome="success"\} 2/);
    assert.match(
      text,
      /switchyard_agent_task_duration_seconds_count\{agent="analyst",task_type="summarize",outcome="timed_out"\} 1/,
    );

    // Stored samples: latency (not for the rejected call) and 0/1 errors, per server/tool.
    const readMs = await monitor.store.rawSamples(N.mcpCallMs, from, to(), { server: 'files', tool: 'read' });
    assert.deepEqual(
      readMs.map((s) => s.value).sort((a, b) => a - b),
      [20, 30, 40, 5_000],
    );
    const readErr = await monitor.store.rawSamples(N.mcpCallError, from, to(), { server: 'files', tool: 'read' });
    assert.equal(readErr.length, 5);
    assert.equal(
      readErr.reduce((s, x) => s + x.value, 0),
      3,
    );
    const taskMs = await monitor.store.rawSamples(N.agentTaskMs, from, to(), {
      agent: 'analyst',
      task_type: 'summarize',
    });
    assert.deepEqual(
      taskMs.map((s) => s.value).sort((a, b) => a - b),
      [50, 900, 1_100, 30_000],
    );
    // Rollups (what performance-trends reads) hold the same counts.
    const [series] = await monitor.store.rollups(N.agentTaskError, '1m', from, { agent: 'analyst' });
    assert.equal(
      series!.buckets.reduce((s, b) => s + b.count, 0),
      4,
    );
    assert.equal(
      series!.buckets.reduce((s, b) => s + b.sum, 0),
      2,
    );
    const trends = await monitor.getPerformanceTrends(N.mcpCallMs, '1h', {
      labels: { server: 'files', tool: 'write' },
    });
    assert.equal(trends.length, 1);
    assert.equal(
      trends[0]!.buckets.reduce((s, b) => s + b.count, 0),
      1,
    );
  });

  it('resumes from its checkpoint after a restart: nothing stored twice, nothing missed', async () => {
    await consumers[0]!.stop();
    // Appended while no consumer runs.
    await store.append('mcpserver-files', [succeeded('files', 'read', 60)]);
    const { monitor, consumer } = await start();
    const last = await store.append('mcpserver-files', [succeeded('files', 'read', 80)]);
    await consumer.waitFor(last.position);
    const readMs = await monitor.store.rawSamples(N.mcpCallMs, from, to(), { server: 'files', tool: 'read' });
    assert.deepEqual(
      readMs.map((s) => s.value).sort((a, b) => a - b),
      [20, 30, 40, 60, 80, 5_000],
    );
    // This process's counters start at its start: only what it applied.
    assert.equal(
      await counter(monitor, 'switchyard_mcp_calls_total', { server: 'files', tool: 'read', outcome: 'success' }),
      2,
    );
    assert.equal(
      await counter(monitor, 'switchyard_mcp_calls_total', { server: 'files', tool: 'read', outcome: 'error' }),
      0,
    );
  });

  it('window p95 per server/tool is stored and fires the default mcp_call_slow rule', async () => {
    const monitor = monitors[monitors.length - 1]!;
    const consumer = consumers[consumers.length - 1]!;
    const events = [
      ...Array.from({ length: 9 }, () => succeeded('slowsrv', 'crawl', 8_000)),
      succeeded('slowsrv', 'crawl', 100),
    ];
    const last = await store.append('mcpserver-slowsrv', events);
    await consumer.waitFor(last.position);
    const now = Date.now();
    const first = await consumer.aggregateOnce(now);
    const p95 = first.find((s) => s.metric === N.mcpCallP95Ms && s.labels.server === 'slowsrv');
    assert.ok(p95 && p95.value > 5_000, `p95 ${p95?.value}`);
    assert.equal(first.find((s) => s.metric === N.mcpCallErrorRatePercent && s.labels.server === 'slowsrv')?.value, 0);
    assert.equal(
      Object.values(monitor.alertingState.alerts).find((a) => a.ruleId === 'mcp_call_slow')?.status,
      'pending',
    );
    // The rule's `for` is 60 s: a later round (the calls still in the 5 min window) fires it.
    await consumer.aggregateOnce(now + 61_000);
    const firing = (await monitor.listAlerts({ state: 'firing' })).find((a) => a.ruleId === 'mcp_call_slow');
    assert.ok(firing);
    assert.equal(firing.labels.server, 'slowsrv');
    assert.equal(firing.labels.tool, 'crawl');
    const stored = await monitor.store.rawSamples(N.mcpCallP95Ms, from, now + 120_000, { server: 'slowsrv' });
    assert.equal(stored.length, 2);
    // The fast server has no alert.
    assert.equal((await monitor.listAlerts({})).filter((a) => a.ruleId === 'mcp_call_slow').length, 1);
  });
});
