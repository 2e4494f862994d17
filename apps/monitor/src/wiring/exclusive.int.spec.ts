/**
 * Two monitor processes against one real PostgreSQL (and the test nats-server): one runs the
 * monitoring, the other waits as standby and writes nothing; when the active one stops, or its
 * lock's session ends as a killed process's does, the standby takes over.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PostgresEventStore } from '@switchyard/event-store';
import { closeNats, connectNats, type NatsConnection } from '@switchyard/messaging';
import { createLogger, newId } from '@switchyard/platform';
import { freshDatabase, testNatsUrl, until } from '@switchyard/testing';
import { functionProbe } from '../probes.js';
import { runMonitoringExclusively, type MonitoringRunner } from './exclusive.js';

const logger = createLogger('monitor-exclusive-test', process.env.LOG_LEVEL ?? 'silent');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the monitor runs once per deployment: a second one waits as standby', () => {
  const serviceName = `monitor-x${newId()
    .replace(/[^a-z0-9]/gi, '')
    .slice(0, 8)
    .toLowerCase()}`;
  let pool: pg.Pool;
  let store: PostgresEventStore;
  let nc: NatsConnection;
  const runners: MonitoringRunner[] = [];
  /** Each process's probe runs: only the active monitor probes (and so evaluates rules and writes). */
  const probed = { a: 0, b: 0 };

  const start = (who: 'a' | 'b') =>
    runMonitoringExclusively({
      pool,
      nats: nc,
      eventStore: store,
      logger: logger.child({ monitor: who }),
      serviceName,
      agentServicePrefix: `agent-none-${serviceName}-`,
      env: {
        MONITOR_PROBE_INTERVAL_MS: '100',
        MONITOR_SAMPLE_INTERVAL_MS: '5000',
        MONITOR_DISCOVERY_INTERVAL_MS: '60000',
      },
      sampler: { diskIntervalMs: 3_600_000 },
      callMetrics: { enabled: false },
      lockRetryMs: 200,
      extraProbes: [
        functionProbe(`x-${who}`, 'component', async () => {
          probed[who]++;
        }),
      ],
    }).then((r) => {
      runners.push(r);
      return r;
    });

  /** The monitor's own events in the store (service, alert and silence streams). */
  const monitorEvents = async () =>
    Number(
      (
        await pool.query<{ n: string }>(
          `select count(*) as n from eventstore.events where stream_id like 'service-%' or stream_id like 'alert-%'`,
        )
      ).rows[0]!.n,
    );

  before(async () => {
    pool = new pg.Pool({ connectionString: await freshDatabase('monitor_exclusive'), max: 8 });
    store = new PostgresEventStore({ pool, logger });
    await store.init();
    nc = await connectNats({ url: await testNatsUrl(), name: 'monitor-exclusive-test', logger });
  });
  after(async () => {
    for (const r of runners) await r.stop();
    await closeNats(nc);
    await store?.close();
    await pool?.end();
  });

  it('the second waits as standby, probes and writes nothing; when the first stops it takes over', async () => {
    const a = await start('a');
    assert.equal(a.state(), 'active');
    assert.ok(a.current());
    const b = await start('b');
    assert.equal(b.state(), 'standby');
    assert.equal(b.current(), undefined);
    await until('the active monitor probes', () => probed.a > 5, 10_000);
    const before = await monitorEvents();
    await sleep(1_500);
    assert.equal(probed.b, 0, 'the standby probed nothing');
    assert.equal(b.state(), 'standby');
    // No gap written by the standby (a second monitor wrote ServiceUnmonitored for time the first was running).
    const standbyWrites = await pool.query(
      `select stream_id, type from eventstore.events where type = 'ServiceUnmonitored' or stream_id = 'service-x-b'`,
    );
    assert.deepEqual(standbyWrites.rows, [], 'no gap that did not exist, nothing of the standby');
    assert.ok((await monitorEvents()) >= before);

    await a.stop();
    assert.equal(a.state(), 'stopped');
    const t0 = Date.now();
    // A bound to wait, not a timing under test: a loaded machine starts the monitoring slower.
    await until('the standby takes over', () => b.state() === 'active' && probed.b > 0, 30_000);
    console.log(`# the standby took over in ${Date.now() - t0} ms (it retries the lock every 200 ms)`);
    assert.ok(b.current());
  });

  it("the active one's lock session ends (as a killed process's does): it stops monitoring, and the standby takes over", async () => {
    const b = runners.find((r) => r.state() === 'active')!;
    const c = await start('a');
    assert.equal(c.state(), 'standby');
    const before = probed.a;
    await pool.query(
      `select pg_terminate_backend(pid) from pg_locks
        where locktype = 'advisory' and objsubid = 2 and ((classid::bigint << 32) >> 32) = hashtext('switchyard.monitor')
          and ((objid::bigint << 32) >> 32) = hashtext($1)`,
      [serviceName],
    );
    await until('the standby takes over', () => c.state() === 'active' && probed.a > before, 30_000);
    assert.equal(b.state(), 'standby', 'the old one went back to standby');
    assert.equal(b.current(), undefined);
  });
});
