/**
 * A rule's `for` deadline on a running Monitor (real PostgreSQL event store): a `for` longer than
 * one timer can wait (2^31-1 ms) arms one quiet timer, not a 1 ms loop; deleting the rule, or the
 * alert ceasing to be pending, clears it; changing the rule's `for` moves it.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { createLogger } from '@switchyard/platform';
import { freshDatabase } from '@switchyard/testing';
import { Monitor } from './monitor.js';
import { MAX_ALERT_RULE_FOR_MS, type AlertRule } from './domain/rules.js';
import { MAX_TIMER_DELAY_MS } from './timers.js';
import { RuleManager } from './wiring/rule-manager.js';
import { RuleOverrideStore } from './wiring/rules.js';

const logger = createLogger('monitor-deadlines-test', process.env.LOG_LEVEL ?? 'silent');
const DAY = 86_400_000;
const longRule: AlertRule = {
  id: 'queue_deep_for_30d',
  name: 'Queue deep for 30 days',
  metric: 'queue_depth',
  match: {},
  comparator: '>',
  threshold: 100,
  for_ms: 30 * DAY,
  severity: 'info',
  labels: {},
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** TimeoutOverflowWarnings and setTimeout calls (and those past 2^31-1 ms) while `fn` runs. */
async function watchTimers(fn: () => Promise<void>): Promise<{ warnings: number; calls: number; overlong: number }> {
  let warnings = 0;
  let calls = 0;
  let overlong = 0;
  const onWarning = (w: Error) => {
    if (w.name === 'TimeoutOverflowWarning') warnings++;
  };
  process.on('warning', onWarning);
  const real = globalThis.setTimeout;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    calls++;
    if ((args[1] ?? 0) > MAX_TIMER_DELAY_MS) overlong++;
    return real(...args);
  }) as typeof setTimeout;
  try {
    await fn();
  } finally {
    globalThis.setTimeout = real;
    process.off('warning', onWarning);
  }
  return { warnings, calls, overlong };
}

describe('alert `for` deadlines on a running Monitor', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let monitor: Monitor;
  let rules: RuleManager;
  let n = 0;
  // Each test its own rule id: a later test's empty rule stream imports the earlier ones' rows once.
  let rule: AlertRule = longRule;

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_deadlines'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
  });
  beforeEach(async () => {
    await monitor?.stop();
    // A stream of rule changes per test, so each starts from the rule as written here.
    rule = { ...longRule, id: `queue_deep_for_30d_${++n}` };
    rules = new RuleManager(
      new RuleOverrideStore(pool, store, `spec${n}`),
      [{ source: 'default', rules: [rule] }],
      logger,
    );
    monitor = new Monitor({
      pool,
      eventStore: store,
      publish: () => undefined,
      logger,
      settings: { rules: await rules.load(), sampleIntervalMs: 3_600_000, maintenanceIntervalMs: 3_600_000 },
      sampler: { diskIntervalMs: 3_600_000 },
    });
    await monitor.start();
  });
  after(async () => {
    await monitor?.stop();
    await store?.close();
    await pool?.end();
  });

  it('a 30-day `for` arms one timer that stays quiet; deleting the rule clears it', async () => {
    assert.ok(rule.for_ms <= MAX_ALERT_RULE_FOR_MS && rule.for_ms > MAX_TIMER_DELAY_MS);
    const labels = { queue: `a${n}` };
    const pending = await watchTimers(async () => {
      const evs = await monitor.ingest([{ metric: 'queue_depth', labels, ts: Date.now(), value: 500 }]);
      assert.deepEqual(
        evs.map((e) => e.type),
        ['AlertPending'],
      );
      assert.equal(monitor.armedDeadlines, 1);
      await sleep(1_500);
    });
    assert.equal(pending.warnings, 0, 'no TimeoutOverflowWarning');
    assert.equal(pending.overlong, 0, 'no timer asked for more than 2^31-1 ms');
    // A busy loop re-arms about a thousand times a second.
    assert.ok(pending.calls < 200, `setTimeout calls in 1.5 s: ${pending.calls}`);

    const deleted = await watchTimers(async () => {
      assert.equal(await rules.delete(monitor, rule.id, 'ann'), 1, 'its pending alert is resolved');
      await sleep(200);
      assert.equal(monitor.armedDeadlines, 0, 'the deadline went with the rule');
      await sleep(1_000);
    });
    assert.equal(deleted.warnings, 0);
    assert.ok(deleted.calls < 200, `setTimeout calls after the delete: ${deleted.calls}`);
    const alert = Object.values(monitor.alertingState.alerts).find((a) => a.labels.queue === labels.queue);
    assert.equal(alert?.status, 'resolved');
  });

  it('the alert ceasing to be pending clears its timer', async () => {
    const labels = { queue: `b${n}` };
    await monitor.ingest([{ metric: 'queue_depth', labels, ts: Date.now(), value: 500 }]);
    assert.equal(monitor.armedDeadlines, 1);
    const evs = await monitor.ingest([{ metric: 'queue_depth', labels, ts: Date.now(), value: 1 }]);
    assert.deepEqual(
      evs.map((e) => e.type),
      ['AlertPendingCleared'],
    );
    assert.equal(monitor.armedDeadlines, 0);
  });

  it('a rule whose `for` is shortened moves the deadline: the alert fires at the new one', async () => {
    const labels = { queue: `c${n}` };
    await monitor.ingest([{ metric: 'queue_depth', labels, ts: Date.now(), value: 500 }]);
    assert.equal(monitor.armedDeadlines, 1);
    await rules.put(monitor, [{ ...rule, for_ms: 300 }], 'ann');
    const deadline = Date.now() + 5_000;
    const state = () =>
      Object.values(monitor.alertingState.alerts).find((a) => a.labels.queue === labels.queue)?.status;
    while (state() !== 'firing' && Date.now() < deadline) await sleep(50);
    assert.equal(state(), 'firing', 'fired at the shortened deadline, without another sample');
    assert.equal(monitor.armedDeadlines, 0);
  });
});
