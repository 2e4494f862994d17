/**
 * The event store is the Monitor's commit point (real PostgreSQL): while appends fail nothing
 * changes, nothing is published, and a manual change answers `unavailable`; once the store takes
 * events again the same decision is made and recorded, and the published events carry where
 * they were stored.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresEventStore, type EventStore } from '@switchyard/event-store';
import { AppError, createLogger } from '@switchyard/platform';
import { freshDatabase, overriding } from '@switchyard/testing';
import type { AlertRule } from './domain/rules.js';
import { Monitor, type MonitorEvent, type MonitorEventRecord } from './monitor.js';

const logger = createLogger('monitor-events-test', process.env.LOG_LEVEL ?? 'silent');
const rule: AlertRule = {
  id: 'queue_deep',
  name: 'Queue deep',
  metric: 'queue_depth',
  match: {},
  comparator: '>',
  threshold: 100,
  for_ms: 0,
  severity: 'warning',
  labels: {},
};

describe('the Monitor appends before anything changes', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let monitor: Monitor;
  let failing = false;
  const published: { event: MonitorEvent; record: MonitorEventRecord }[] = [];

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_commit'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    // The real store, refusing appends while `failing` (as when its database is unreachable).
    const flaky = overriding<EventStore>(store, {
      append: (...args) => (failing ? Promise.reject(new Error('connection refused')) : store.append(...args)),
    });
    monitor = new Monitor({
      pool,
      eventStore: flaky,
      logger,
      settings: { rules: [rule], sampleIntervalMs: 3_600_000 },
      sampler: { diskIntervalMs: 3_600_000 },
      publish: (events, records) => {
        events.forEach((event, i) => published.push({ event, record: records[i]! }));
      },
    });
    await monitor.init();
  });
  after(async () => {
    await monitor?.stop();
    await store?.close();
    await pool?.end();
  });

  it('a failed append changes nothing and publishes nothing; the next sample decides again', async () => {
    failing = true;
    await assert.rejects(
      monitor.ingest([{ metric: 'queue_depth', labels: {}, ts: Date.now(), value: 500 }]),
      (e: unknown) => e instanceof AppError && e.code === 'unavailable',
    );
    assert.deepEqual(monitor.alertingState.alerts, {});
    assert.equal(published.length, 0);
    assert.deepEqual(await monitor.listAlerts(), []);
    await assert.rejects(
      monitor.addSilence({
        matchers: [{ name: 'queue', value: 'a' }],
        createdBy: 'ann',
        comment: '',
        endsAt: Date.now() + 60_000,
      }),
      (e: unknown) => e instanceof AppError && e.code === 'unavailable',
    );
    assert.deepEqual(await monitor.listSilences(), []);

    failing = false;
    const events = await monitor.ingest([{ metric: 'queue_depth', labels: {}, ts: Date.now(), value: 500 }]);
    assert.deepEqual(
      events.map((e) => e.type),
      ['AlertPending', 'AlertFiring'],
    );
    assert.equal(
      (await monitor.listAlerts({ state: 'firing' })).length,
      1,
      'the read model shows it when ingest returns',
    );
    const stored = await store.readStream(
      `alert-${events[0]!.type === 'AlertPending' ? events[0]!.data.fingerprint : ''}`,
    );
    assert.deepEqual(
      published.map((p) => [
        p.event.type,
        p.record.streamId,
        p.record.revision,
        p.record.position,
        p.record.metadata.actor,
      ]),
      stored.map((e) => [e.type, e.streamId, e.revision, e.position, 'system:monitor']),
    );
  });
});
