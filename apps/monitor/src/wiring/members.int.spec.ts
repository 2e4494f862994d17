/**
 * Processes that heartbeat into a member table (as the workflow engines and the dispatchers do)
 * are probed by their heartbeat's age on a real PostgreSQL: a process that stops heartbeating
 * (frozen, or killed) goes down with the reason in the health report, comes back up when it
 * heartbeats again; one that leaves (its row deleted) is retired without ever going down; one
 * silent past the forget window is retired as gone.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { createLogger } from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import { Monitor } from '../monitor.js';
import { MemberDiscovery, processProbeName } from './members.js';
import { healthReport } from './service.js';

const logger = createLogger('members-test', process.env.LOG_LEVEL ?? 'silent');

describe('processes probed by their heartbeats', () => {
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let monitor: Monitor;
  let beating: NodeJS.Timeout | undefined;
  const alive = new Set<string>();

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_members'), max: 6 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    // The engines' member table, as their schema makes it.
    await pool.query(`create schema workflows;
      create table workflows.engine_members (
        member_id text primary key, heartbeat_at timestamptz not null, started_at timestamptz not null default now())`);
    monitor = new Monitor({
      pool,
      eventStore: store,
      logger,
      publish: () => undefined,
      settings: {
        sampleIntervalMs: 3_600_000,
        maintenanceIntervalMs: 3_600_000,
        probeIntervalMs: 100,
        probeTimeoutMs: 1_000,
        healthPolicy: { degradedResponseMs: 1_000, downAfterMs: 200 },
        rules: [],
      },
      sampler: { diskIntervalMs: 3_600_000, networkIntervalMs: 3_600_000 },
    });
    await monitor.start();
    // Each live process heartbeats every 200 ms, as an engine does on its tick.
    beating = setInterval(() => {
      for (const m of alive)
        void pool
          .query(`update workflows.engine_members set heartbeat_at = now() where member_id = $1`, [m])
          .catch(() => undefined);
    }, 200);
  });

  after(async () => {
    clearInterval(beating);
    await monitor?.stop();
    await store?.close();
    await pool?.end();
  });

  it('silent: down with the reason; heartbeating again: up; left: retired without going down; gone: retired', async () => {
    for (const m of ['engine-a', 'engine-b']) {
      await pool.query(`insert into workflows.engine_members (member_id, heartbeat_at) values ($1, now())`, [m]);
      alive.add(m);
    }
    const members = new MemberDiscovery({
      pool,
      tables: [{ role: 'workflows', table: 'workflows.engine_members', silentAfterMs: 1_000 }],
      logger,
      addProbe: (p) => monitor.addProbe(p),
      removeProbe: (service, reason) => monitor.removeProbe(service, reason),
      forgetAfterMs: 4_000,
    });
    const a = processProbeName('workflows', 'engine-a');
    const b = processProbeName('workflows', 'engine-b');
    const row = async (service: string) => (await monitor.store.listServices()).find((s) => s.service === service);
    await members.refresh();
    await until('both up', async () => (await row(a))?.status === 'up' && (await row(b))?.status === 'up');

    // b stops heartbeating (frozen): down, and the report says why.
    alive.delete('engine-b');
    await until('b down', async () => (await row(b))?.status === 'down', 10_000);
    assert.match((await row(b))!.lastError ?? '', /no heartbeat for \d+ s/);
    const report = await healthReport(monitor);
    assert.equal(report.status, 'degraded');
    assert.ok(
      report.reasons.some((r) => r.startsWith(`${b} is down (no heartbeat for`)),
      report.reasons.join('; '),
    );
    assert.equal((await row(a))?.status, 'up', 'the live one stays up');

    // b wakes: up again.
    alive.add('engine-b');
    await until('b up again', async () => (await row(b))?.status === 'up', 10_000);

    // a leaves (a graceful stop deletes its row): retired at the next round, never down.
    alive.delete('engine-a');
    await pool.query(`delete from workflows.engine_members where member_id = 'engine-a'`);
    await new Promise((r) => setTimeout(r, 500)); // probes run against the missing row meanwhile
    await members.refresh();
    assert.equal(await row(a), undefined, 'a left the report');
    const aEvents = (await store.readStream(`service-${a}`)).map((e) => e.type);
    assert.equal(aEvents.at(-1), 'ServiceRetired');
    assert.ok(!aEvents.includes('ServiceWentDown'), aEvents.join(','));

    // b dies (silent past the forget window): retired as gone.
    alive.delete('engine-b');
    await until('b down again', async () => (await row(b))?.status === 'down', 10_000);
    await new Promise((r) => setTimeout(r, 4_200));
    await members.refresh();
    assert.equal(await row(b), undefined, 'b left the report');
    assert.equal((await store.readStream(`service-${b}`)).at(-1)!.type, 'ServiceRetired');
  });
});
