import type pg from 'pg';
import type { EventStore, RecordedEvent } from '@switchyard/event-store';
import { oneStatementBatches, ProjectionRunner, type Projection } from '@switchyard/read-models';
import type { Logger } from '@switchyard/platform';
import type { Monitor } from '../monitor.js';
import type { Sample } from '../sampler.js';
import { samplesStatement } from '../store.js';
import {
  callMetricNames,
  callMetricsEventTypes,
  callMetricsStreamPrefixes,
  samplesOf,
  toObservation,
  windowSamples,
  type CallObservation,
  type WindowFigures,
} from './observations.js';
import { CallPrometheusMetrics } from './prometheus.js';

export interface CallMetricsConsumerOptions {
  /** The monitoring database (schema `monitoring`): samples and the checkpoint go in one transaction. */
  readonly pool: pg.Pool;
  readonly eventStore: EventStore;
  /** Its registry gets the counters and histograms; window aggregates go through `ingest` (stored + rules). */
  readonly monitor: Monitor;
  readonly logger: Logger;
  /** Checkpoint name (default `call-metrics`); two consumers with one name share the work exactly once. */
  readonly name?: string;
  /** Most events applied per transaction (default 200). */
  readonly batchSize?: number;
  /**
   * How long a small batch waits for more calls before it is stored (default 100 ms). Nobody
   * reads a sample before the next window aggregate (every `aggregateIntervalMs`), so waiting
   * costs no reader anything, while storing each call alone cost a durable transaction of five
   * statements per MCP call or task.
   */
  readonly gatherMs?: number;
  /** How often the window aggregates (p95, avg, error rate) are computed and ingested (default 15 s; 0 = never, call `aggregateOnce`). */
  readonly aggregateIntervalMs?: number;
  /** The window they cover (default 5 min). */
  readonly windowMs?: number;
}

const WINDOW_SQL = `
select metric, labels, count(*)::int as count, avg(value) as avg,
       percentile_cont(0.95) within group (order by value) as p95
from monitoring.samples where metric = any($1) and ts > $2 and ts <= $3
group by metric, labels`;

/**
 * Request metrics of every MCP tool call and agent task, from the event store.
 *
 * Why a checkpointed `subscribeToAll` and not a JetStream consumer: the event store is the
 * source of truth the monitor already holds, so the metrics do not depend on the relay being
 * up, and the checkpoint lives in the same PostgreSQL as the samples: one transaction stores
 * a batch's samples and moves the checkpoint (compare-and-set), so a crash or a second
 * monitor never stores a call twice nor skips one. A JetStream consumer would deliver at
 * least once and need a dedup table for the same guarantee.
 *
 * 1. Subscribe to `McpToolSucceeded`/`McpToolFailed` (streams `mcpserver-*`) and
 *    `TaskCompleted`/`TaskFailed`/`TaskTimedOut` (streams `task-*`) after the checkpoint.
 * 2. Per batch, in one transaction: move the checkpoint, store the samples (`mcp_call_ms`,
 *    `mcp_call_error`, `agent_task_ms`, `agent_task_error`; raw + rollups).
 * 3. After the commit: count and observe them in the Prometheus counters and histograms.
 * 4. Every `aggregateIntervalMs`: p95, avg and error rate of each series over `windowMs`,
 *    ingested through the Monitor, so they are stored and alert rules evaluate them.
 */
export class CallMetricsConsumer {
  readonly prometheus: CallPrometheusMetrics;
  private readonly log: Logger;
  private readonly runner: ProjectionRunner;
  private running = false;
  private stopRequested = false;
  private timer: NodeJS.Timeout | undefined;
  private aggregating: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: CallMetricsConsumerOptions) {
    const name = opts.name ?? 'call-metrics';
    this.log = opts.logger.child({ component: 'call-metrics', correlationId: 'monitor', consumer: name });
    this.prometheus = new CallPrometheusMetrics(opts.monitor.prometheus.registry);
    // A projection run by the shared runner: its checkpoint (monitoring.checkpoints) moves by
    // compare-and-set in the transaction that stores the samples, so a crash or a second monitor
    // never stores a call twice or skips one; the counters follow only committed batches.
    // A batch's samples, every call of it, go in one statement with the checkpoint's move.
    const statement = (events: readonly RecordedEvent[]) =>
      samplesStatement(
        events.flatMap((e) => {
          const o = this.observe(e);
          return o ? samplesOf(o) : [];
        }),
      );
    const batches = oneStatementBatches(statement);
    const projection: Projection = {
      name,
      handles: callMetricsEventTypes,
      streamPrefixes: callMetricsStreamPrefixes,
      setup: async () => undefined, // the samples tables belong to the Monitor's store
      apply: (client, event) => batches.applyBatch(client, [event]),
      ...batches,
      afterCommit: (applied) => {
        for (const e of applied) {
          const o = this.observe(e, false);
          if (o) this.prometheus.observe(o);
        }
      },
    };
    this.runner = new ProjectionRunner({
      store: opts.eventStore,
      db: { pool: opts.pool },
      projections: [projection],
      logger: opts.logger,
      schema: 'monitoring',
      gatherMs: opts.gatherMs ?? 100,
      ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
    });
  }

  /** Start the projection (from its checkpoint) and the aggregation loop. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.stopRequested = false;
    await this.runner.start();
    const every = this.opts.aggregateIntervalMs ?? 15_000;
    if (every > 0) {
      const tick = () => {
        this.aggregating = this.aggregateOnce()
          .catch((err) => this.log.warn({ err }, 'call metrics aggregation failed'))
          .finally(() => {
            if (!this.stopRequested) this.timer = setTimeout(tick, every);
          });
      };
      this.timer = setTimeout(tick, every);
    }
    this.log.info({ aggregateIntervalMs: every }, 'call metrics started');
  }

  /** Stop the projection (a batch in flight commits or rolls back) and the aggregation loop. Idempotent. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    clearTimeout(this.timer);
    if (this.running) await this.runner.stop();
    await this.aggregating;
    this.running = false;
  }

  /** Resolve once the consumer has applied `position` (tests, readiness). Throws AppError timeout. */
  waitFor(position: number, timeoutMs = 15_000): Promise<void> {
    return this.runner.waitFor(position, undefined, timeoutMs);
  }

  /** Compute the window aggregates at `now` and ingest them through the Monitor; returns them. */
  async aggregateOnce(now = Date.now()): Promise<Sample[]> {
    const windowMs = this.opts.windowMs ?? 300_000;
    const metrics = [
      callMetricNames.mcpCallMs,
      callMetricNames.mcpCallError,
      callMetricNames.agentTaskMs,
      callMetricNames.agentTaskError,
    ];
    const r = await this.opts.pool.query(WINDOW_SQL, [metrics, new Date(now - windowMs), new Date(now)]);
    const by = new Map<string, WindowFigures[]>(metrics.map((m) => [m, []]));
    for (const x of r.rows) by.get(x.metric)!.push({ labels: x.labels, count: x.count, avg: x.avg, p95: x.p95 });
    const samples = [
      ...windowSamples('mcp', by.get(callMetricNames.mcpCallMs)!, by.get(callMetricNames.mcpCallError)!, now),
      ...windowSamples('agent', by.get(callMetricNames.agentTaskMs)!, by.get(callMetricNames.agentTaskError)!, now),
    ];
    if (samples.length) await this.opts.monitor.ingest(samples);
    return samples;
  }

  /** The observation in a call event, or null; an event without the needed fields is skipped (logged once). */
  private observe(e: RecordedEvent, warn = true): CallObservation | null {
    try {
      return toObservation(e);
    } catch (err) {
      if (warn)
        this.log.warn(
          { err, eventId: e.id, type: e.type, streamId: e.streamId, correlationId: e.metadata.correlationId },
          'call event without the needed fields; skipped',
        );
      return null;
    }
  }
}
