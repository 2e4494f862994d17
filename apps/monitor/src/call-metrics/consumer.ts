import type pg from 'pg';
import type { AllSubscription, EventStore, RecordedEvent } from '@switchyard/event-store';
import { AppError, type Logger } from '@switchyard/platform';
import type { Monitor } from '../monitor.js';
import type { Sample } from '../sampler.js';
import { MonitoringStore } from '../store.js';
import {
  callMetricNames, callMetricsEventTypes, callMetricsStreamPrefixes, samplesOf, toObservation, windowSamples,
  type CallObservation, type WindowFigures,
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
  /** How often the window aggregates (p95, avg, error rate) are computed and ingested (default 15 s; 0 = never, call `aggregateOnce`). */
  readonly aggregateIntervalMs?: number;
  /** The window they cover (default 5 min). */
  readonly windowMs?: number;
}

const DDL = `
create schema if not exists monitoring;
create table if not exists monitoring.call_metrics_checkpoints (
  name text primary key,
  position bigint not null,
  updated_at timestamptz not null default now()
);`;

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
  private readonly name: string;
  private readonly batchSize: number;
  private readonly log: Logger;
  private stored = -1;
  private running = false;
  private stopRequested = false;
  private sub: AllSubscription | undefined;
  private done: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private aggregating: Promise<unknown> = Promise.resolve();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly opts: CallMetricsConsumerOptions) {
    this.name = opts.name ?? 'call-metrics';
    this.batchSize = opts.batchSize ?? 200;
    this.log = opts.logger.child({ component: 'call-metrics', correlationId: 'monitor', consumer: this.name });
    this.prometheus = new CallPrometheusMetrics(opts.monitor.prometheus.registry);
  }

  /** Last global position applied (-1: nothing yet). */
  get position(): number {
    return this.stored;
  }

  /** Create the checkpoint table, read the checkpoint, start the subscription and the aggregation loop. */
  async start(): Promise<void> {
    if (this.running) return;
    await this.opts.pool.query(DDL).catch(async (err: unknown) => {
      // Two monitors booting at once may race on `create ... if not exists`; the second try sees the table.
      this.log.debug({ err }, 'checkpoint DDL raced; retrying once');
      await this.opts.pool.query(DDL);
    });
    await this.opts.pool.query('insert into monitoring.call_metrics_checkpoints (name, position) values ($1, -1) on conflict (name) do nothing', [this.name]);
    this.stored = await this.readCheckpoint();
    this.running = true;
    this.stopRequested = false;
    this.done = this.run().catch((err) => this.log.error({ err }, 'call metrics loop ended by an error')).finally(() => {
      this.running = false;
    });
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
    this.log.info({ position: this.stored, aggregateIntervalMs: every }, 'call metrics started');
  }

  /** Stop the subscription (a batch in flight commits or rolls back) and the aggregation loop. Idempotent. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    clearTimeout(this.timer);
    await this.sub?.close();
    await this.done;
    await this.aggregating;
    this.done = undefined;
  }

  /** Resolve once the consumer has applied `position` (tests, readiness). Throws AppError timeout. */
  async waitFor(position: number, timeoutMs = 15_000): Promise<void> {
    if (this.stored >= position) return;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.stored < position) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new AppError('timeout', `call metrics did not reach position ${position} in ${timeoutMs} ms`, { position, at: this.stored }));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Compute the window aggregates at `now` and ingest them through the Monitor; returns them. */
  async aggregateOnce(now = Date.now()): Promise<Sample[]> {
    const windowMs = this.opts.windowMs ?? 300_000;
    const metrics = [callMetricNames.mcpCallMs, callMetricNames.mcpCallError, callMetricNames.agentTaskMs, callMetricNames.agentTaskError];
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

  private async readCheckpoint(): Promise<number> {
    const r = await this.opts.pool.query<{ position: string }>('select position from monitoring.call_metrics_checkpoints where name = $1', [this.name]);
    return Number(r.rows[0]?.position ?? -1);
  }

  /** Subscribe from the checkpoint and apply batches until stopped; resubscribe after a failure or a lost compare-and-set. */
  private async run(): Promise<void> {
    while (!this.stopRequested) {
      let sub: AllSubscription;
      try {
        sub = this.opts.eventStore.subscribeToAll({ from: this.stored, types: callMetricsEventTypes, streamPrefixes: callMetricsStreamPrefixes });
      } catch (err) {
        this.log.error({ err }, 'cannot subscribe to the event store; retrying');
        await new Promise((r) => setTimeout(r, 1_000));
        continue;
      }
      this.sub = sub;
      const buffer: RecordedEvent[] = [];
      let ended = false;
      let wake: (() => void) | undefined;
      let space: (() => void) | undefined;
      // Read ahead into a bounded buffer, so a batch is whatever has arrived (large while catching up).
      const pump = (async () => {
        try {
          for await (const e of sub) {
            buffer.push(e);
            wake?.();
            if (buffer.length >= this.batchSize * 4) await new Promise<void>((r) => (space = r));
          }
        } catch (err) {
          this.log.warn({ err }, 'subscription failed; resubscribing from the checkpoint');
        } finally {
          ended = true;
          wake?.();
        }
      })();
      let resync = false;
      while (!this.stopRequested) {
        if (buffer.length === 0) {
          if (ended) break;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
          continue;
        }
        const batch = buffer.splice(0, this.batchSize);
        space?.();
        space = undefined;
        const result = await this.commitWithRetry(batch);
        if (result === 'lost') {
          resync = true;
          break;
        }
        if (result === 'stopped') break;
      }
      await sub.close();
      space?.();
      await pump;
      if (resync) {
        this.log.warn({ position: this.stored }, 'checkpoint moved under us (another monitor); resyncing');
        this.stored = await this.readCheckpoint().catch(() => this.stored);
      } else if (!this.stopRequested) {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private async commitWithRetry(batch: readonly RecordedEvent[]): Promise<'ok' | 'lost' | 'stopped'> {
    for (let failures = 1; ; failures++) {
      try {
        return (await this.commit(batch)) ? 'ok' : 'lost';
      } catch (err) {
        // Stall rather than skip: the metrics must not silently miss calls.
        const delay = Math.min(10_000, 100 * 2 ** Math.min(failures, 7));
        this.log.error({ err, position: batch[0]!.position, delay }, 'storing call metrics failed; retrying');
        if (this.stopRequested) return 'stopped';
        await new Promise((r) => setTimeout(r, delay));
        if (this.stopRequested) return 'stopped';
      }
    }
  }

  /** One transaction: move the checkpoint (compare-and-set), store the samples. Then the Prometheus side. */
  private async commit(batch: readonly RecordedEvent[]): Promise<boolean> {
    const observations: CallObservation[] = [];
    for (const e of batch) {
      try {
        const o = toObservation(e);
        if (o) observations.push(o);
      } catch (err) {
        this.log.warn({ err, eventId: e.id, type: e.type, streamId: e.streamId, correlationId: e.metadata.correlationId }, 'call event without the needed fields; skipped');
      }
    }
    const to = batch[batch.length - 1]!.position;
    const c = await this.opts.pool.connect();
    try {
      await c.query('begin');
      const moved = await c.query('update monitoring.call_metrics_checkpoints set position = $3, updated_at = now() where name = $1 and position = $2', [this.name, this.stored, to]);
      if (moved.rowCount !== 1) {
        await c.query('rollback');
        return false;
      }
      // MonitoringStore only calls `query`, so a client in a transaction serves as its pool here.
      await new MonitoringStore(c as unknown as pg.Pool).insertSamples(observations.flatMap(samplesOf));
      await c.query('commit');
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
    this.stored = to;
    for (const o of observations) this.prometheus.observe(o);
    for (const w of [...this.waiters]) w();
    return true;
  }
}
