/**
 * Rule changes are events (real PostgreSQL event store): rows of `monitoring.alert_rules` written
 * before that are imported into the empty stream once, with their time and author; later changes
 * are decided against the rules in force and appended with the stream's expected revision.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { AppError, createLogger } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { defaultAlertRules, type AlertRule } from '../domain/rules.js';
import { MonitoringStore } from '../store.js';
import { RuleOverrideStore } from './rules.js';

const logger = createLogger('monitor-rules-test', process.env.LOG_LEVEL ?? 'silent');
const custom: AlertRule = {
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
const layers = [{ source: 'default' as const, rules: defaultAlertRules }];
const meta = { correlationId: 'spec', timestamp: '2026-12-03T12:00:00.000Z', actor: 'ann' };

describe('alert rule changes as events', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_rules'), max: 4 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    await new MonitoringStore(pool).migrate();
  });
  after(async () => {
    await store?.close();
    await pool?.end();
  });

  it('rows from before the log are imported once, in order, with their time and author', async () => {
    await pool.query(
      `insert into monitoring.alert_rules (id, rule, updated_at, updated_by) values
         ('queue_deep', $1, '2026-01-02T00:00:00Z', 'ann'), ('disk_high', null, '2026-01-01T00:00:00Z', 'bob'), ('broken', '{"id":"broken"}', '2026-01-03T00:00:00Z', 'eve')`,
      [JSON.stringify(custom)],
    );
    const rules = new RuleOverrideStore(pool, store, 'spec');
    assert.deepEqual(
      await rules.load(),
      [
        { id: 'disk_high', rule: null },
        { id: 'queue_deep', rule: custom },
      ],
      'the unparsable row is skipped',
    );
    const events = await store.readStream(rules.streamId);
    assert.deepEqual(
      events.map((e) => [e.type, e.metadata.timestamp, e.metadata.actor]),
      [
        ['AlertRuleDeleted', '2026-01-01T00:00:00.000Z', 'bob'],
        ['AlertRuleUpdated', '2026-01-02T00:00:00.000Z', 'ann'],
      ],
    );
    // A second start folds the stream and imports nothing.
    assert.deepEqual(await new RuleOverrideStore(pool, store, 'spec').load(), [
      { id: 'disk_high', rule: null },
      { id: 'queue_deep', rule: custom },
    ]);
    assert.equal((await store.readStream(rules.streamId)).length, 2);
  });

  it('put and delete are decided against the rules in force and appended in order', async () => {
    const rules = new RuleOverrideStore(pool, store, 'spec');
    await rules.load();
    const changed = await rules.put(
      [
        { ...custom, threshold: 5 },
        { ...custom, id: 'other' },
      ],
      layers,
      meta,
    );
    assert.deepEqual(
      changed.events.map((e) => e.type),
      ['AlertRuleUpdated', 'AlertRuleCreated'],
    );
    assert.ok(changed.position !== undefined);
    await assert.rejects(
      rules.delete('disk_high', layers, meta),
      (e: unknown) => e instanceof AppError && e.code === 'not_found',
    );
    await assert.rejects(
      rules.put([custom, custom], layers, meta),
      (e: unknown) => e instanceof AppError && e.code === 'validation',
    );
    const gone = await rules.delete('cpu_high', layers, meta);
    assert.deepEqual(
      gone.overrides.map((o) => [o.id, o.rule === null]),
      [
        ['disk_high', true],
        ['queue_deep', false],
        ['other', false],
        ['cpu_high', true],
      ],
    );
    assert.deepEqual(
      (await store.readStream(rules.streamId)).map((e) => e.revision),
      [0, 1, 2, 3, 4],
    );
  });
});
