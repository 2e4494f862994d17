import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createLogger, type Logger } from '@switchyard/platform';
import { freshDatabase, overriding } from '@switchyard/testing';
import { EventSink } from './event-sink.js';
import { PostgresEventStore } from './postgres/postgres-event-store.js';
import { UnstorableEventError, type EventStore } from './port.js';

const logger = createLogger('test', 'silent');

describe('EventSink over the PostgreSQL store', () => {
  let store: PostgresEventStore;
  let url: string;
  before(async () => {
    url = await freshDatabase('es_sink');
    store = new PostgresEventStore({ connectionString: url, schema: 'es_sink' });
    await store.init();
  });
  after(async () => {
    await store.close();
  });

  const numbers = async (streamId: string) =>
    (await store.readStream(streamId)).map((e) => (e.data as { i: number }).i);

  it('appends what one turn reports to a stream in one commit, in the order reported, each stream apart', async () => {
    const sink = new EventSink(store, logger, { actor: 'system:test' });
    for (let i = 0; i < 300; i++) sink.append('sink_a-1', { type: 'Reported', data: { i } }, `c-${i}`);
    for (let i = 0; i < 5; i++) sink.append('sink_b-1', { type: 'Reported', data: { i } }, undefined, 'apikey:k1');
    await sink.flush();
    assert.deepEqual(
      await numbers('sink_a-1'),
      Array.from({ length: 300 }, (_, i) => i),
    );
    assert.deepEqual(await numbers('sink_b-1'), [0, 1, 2, 3, 4]);
    assert.deepEqual(sink.counts(), { appends: 2, events: 305, retries: 0, dropped: 0, lost: 0 });
    const a = await store.readStream('sink_a-1');
    assert.equal(a[7]!.metadata.correlationId, 'c-7');
    assert.equal(a[7]!.metadata.actor, 'system:test');
    assert.equal((await store.readStream('sink_b-1'))[0]!.metadata.actor, 'apikey:k1');
  });

  it('with gatherMs, what two streams report a few ms apart is stored in one commit; a stop does not wait for the window', async () => {
    // One transaction, one recorded_at: the events of one commit share the transaction's now().
    const recordedAt = async (streamId: string) =>
      (await store.readStream(streamId)).map((e) => e.recordedAt.getTime());
    const sink = new EventSink(store, logger, { actor: 'system:test', gatherMs: 200 });
    sink.append('sink_g-call', { type: 'Called', data: { i: 0 } });
    await new Promise((r) => setTimeout(r, 5));
    sink.append('sink_g-audit', { type: 'Handled', data: { i: 1 } });
    sink.append('sink_g-call', { type: 'Succeeded', data: { i: 2 } });
    await new Promise((r) => setTimeout(r, 300));
    const call = await recordedAt('sink_g-call');
    const audit = await recordedAt('sink_g-audit');
    assert.equal(call.length, 2);
    assert.deepEqual([...new Set([...call, ...audit])].length, 1, 'one commit for both streams');
    assert.deepEqual(sink.counts(), { appends: 2, events: 3, retries: 0, dropped: 0, lost: 0 });
    // Without the window the first report goes on its own (what one turn reports still goes together).
    const plain = new EventSink(store, logger, { actor: 'system:test' });
    plain.append('sink_h-call', { type: 'Called', data: { i: 0 } });
    await new Promise((r) => setTimeout(r, 5));
    plain.append('sink_h-audit', { type: 'Handled', data: { i: 1 } });
    await plain.flush();
    assert.equal(new Set([...(await recordedAt('sink_h-call')), ...(await recordedAt('sink_h-audit'))]).size, 2);
    // A stop ends the window at once: flush() stores what waits without sitting out gatherMs.
    const slow = new EventSink(store, logger, { actor: 'system:test', gatherMs: 60_000 });
    slow.append('sink_k-1', { type: 'Reported', data: { i: 0 } });
    await slow.flush();
    assert.deepEqual(await numbers('sink_k-1'), [0]);
  });

  it('splits a long backlog into appends of at most maxBatch and keeps reporting while one runs', async () => {
    const sink = new EventSink(store, logger, { actor: 'system:test', maxBatch: 100 });
    for (let i = 0; i < 250; i++) sink.append('sink_c-1', { type: 'Reported', data: { i } });
    // Reported while the first append is in flight: they queue behind the backlog, in order.
    await new Promise((r) => setImmediate(r));
    for (let i = 250; i < 260; i++) sink.append('sink_c-1', { type: 'Reported', data: { i } });
    await sink.flush();
    assert.deepEqual(
      await numbers('sink_c-1'),
      Array.from({ length: 260 }, (_, i) => i),
    );
    const { appends, events } = sink.counts();
    assert.equal(events, 260);
    assert.ok(appends >= 3 && appends <= 4, `250 + 10 events in batches of 100 take 3 or 4 appends, took ${appends}`);
  });

  it('drops what exceeds maxPending for a stream, counts it, and stores the rest', async () => {
    const sink = new EventSink(store, logger, { actor: 'system:test', maxPending: 10 });
    for (let i = 0; i < 15; i++) sink.append('sink_d-1', { type: 'Reported', data: { i } });
    await sink.flush();
    assert.deepEqual(
      await numbers('sink_d-1'),
      Array.from({ length: 10 }, (_, i) => i),
    );
    assert.equal(sink.counts().dropped, 5);
  });

  /** The real store, with `fault` run around the appends of streams it picks (the fault the test injects). */
  const faulty = (fault: (append: () => Promise<unknown>, streamId: string) => Promise<unknown>): EventStore =>
    overriding<EventStore>(store, {
      append: (...args) => fault(() => store.append(...args), args[0]) as ReturnType<EventStore['append']>,
    });
  const lostConnection = () => Object.assign(new Error('Connection terminated unexpectedly'), {});
  const refusedConnection = () =>
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

  it('an append cut off by a lost connection is tried again: stored once whether or not it had committed', async () => {
    const failedOnce = new Set<string>();
    const sink = new EventSink(
      faulty(async (append, streamId) => {
        if (failedOnce.has(streamId)) return append();
        failedOnce.add(streamId);
        // sink_f-committed: the commit happened, its answer was lost with the connection.
        if (streamId === 'sink_f-committed') await append();
        throw streamId === 'sink_f-committed' ? lostConnection() : refusedConnection();
      }),
      logger,
      { actor: 'system:test' },
    );
    for (let i = 0; i < 3; i++) sink.append('sink_f-committed', { type: 'Reported', data: { i } });
    for (let i = 0; i < 3; i++) sink.append('sink_f-refused', { type: 'Reported', data: { i } });
    // Not flush(): while the process runs, the sink keeps trying on its own.
    for (let i = 0; i < 100 && sink.counts().events < 6; i++) await new Promise((r) => setTimeout(r, 50));
    sink.append('sink_f-committed', { type: 'Reported', data: { i: 3 } });
    await sink.flush();
    assert.deepEqual(await numbers('sink_f-committed'), [0, 1, 2, 3]);
    assert.deepEqual(await numbers('sink_f-refused'), [0, 1, 2]);
    assert.deepEqual(sink.counts(), { appends: 3, events: 7, retries: 2, dropped: 0, lost: 0 });
  });

  it('PostgreSQL out of disk keeps the reports waiting, not lost: stored once there is room again', async () => {
    // PostgreSQL itself refuses the stream's appends with disk_full (53100), as a full disk would.
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(`
        CREATE TABLE es_sink.full_streams (stream_id text PRIMARY KEY);
        CREATE FUNCTION es_sink.disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF EXISTS (SELECT 1 FROM es_sink.full_streams WHERE stream_id = NEW.stream_id) THEN
            RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER disk_full BEFORE INSERT ON es_sink.events FOR EACH ROW EXECUTE FUNCTION es_sink.disk_full();
        INSERT INTO es_sink.full_streams VALUES ('sink_disk-1');`);
      const sink = new EventSink(store, logger, { actor: 'system:test' });
      for (let i = 0; i < 3; i++) sink.append('sink_disk-1', { type: 'Reported', data: { i } });
      for (let i = 0; i < 100 && sink.counts().retries < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(sink.counts().retries >= 2, `tried again while the disk was full (${sink.counts().retries})`);
      assert.deepEqual(await numbers('sink_disk-1'), []);
      // The store says so for /readyz (degraded while it answers reads), in its own words, for 30 s.
      assert.match(store.recentRefusal() ?? '', /short of disk space \(SQLSTATE 53100\), \d+ s ago/);
      assert.equal(store.recentRefusal(Date.now() + 31_000), undefined);
      // Another store of the process on the same log (the monitor's probe asks its own) says it too.
      const neighbour = new PostgresEventStore({ connectionString: url, schema: 'es_sink' });
      try {
        assert.match(neighbour.recentRefusal() ?? '', /short of disk space \(SQLSTATE 53100\)/);
      } finally {
        await neighbour.close();
      }
      await admin.query(`DELETE FROM es_sink.full_streams`);
      await sink.flush();
      assert.deepEqual(await numbers('sink_disk-1'), [0, 1, 2]);
      assert.equal(sink.counts().lost, 0);
    } finally {
      await admin.query(`DROP TRIGGER IF EXISTS disk_full ON es_sink.events`);
      await admin.end();
    }
  });

  it('a stop while the store stays unreachable ends after the grace, counting what it lost', async () => {
    const sink = new EventSink(
      faulty(() => Promise.reject(refusedConnection())),
      logger,
      { actor: 'system:test', closeGraceMs: 300 },
    );
    for (let i = 0; i < 4; i++) sink.append('sink_g-1', { type: 'Reported', data: { i } });
    const t0 = Date.now();
    await sink.flush();
    const ms = Date.now() - t0;
    assert.ok(ms < 5_000, `flush ended ${ms} ms after it was called`);
    const c = sink.counts();
    assert.equal(c.lost, 4);
    assert.equal(c.events, 0);
    assert.ok(c.retries >= 1, `tried again before giving up (${c.retries})`);
    assert.deepEqual(await numbers('sink_g-1'), []);
  });

  it('logs a failed append and goes on: the other streams and later reports are stored', async () => {
    // The real store, refusing one stream's appends (the fault this test injects).
    const refusing = overriding<EventStore>(store, {
      append: (streamId, ...rest) =>
        streamId === 'sink_e-bad' ? Promise.reject(new Error('refused by the test')) : store.append(streamId, ...rest),
    });
    const sink = new EventSink(refusing, logger, { actor: 'system:test' });
    sink.append('sink_e-bad', { type: 'Reported', data: { i: 0 } });
    sink.append('sink_e-good', { type: 'Reported', data: { i: 0 } });
    await sink.flush();
    sink.append('sink_e-good', { type: 'Reported', data: { i: 1 } });
    await sink.flush();
    assert.deepEqual(await numbers('sink_e-good'), [0, 1]);
    assert.deepEqual(await numbers('sink_e-bad'), []);
    assert.deepEqual(sink.counts(), { appends: 2, events: 2, retries: 0, dropped: 0, lost: 1 });
  });

  /** The test logger, with what it logs at error level kept in `errors`. */
  const recording = () => {
    const errors: { fields: Record<string, unknown>; msg: string | undefined }[] = [];
    const log = overriding<Logger>(logger, {
      error: (fields: Record<string, unknown>, msg?: string) => {
        errors.push({ fields, msg });
      },
    });
    return { log, errors };
  };
  const twentyOneTwenty = (sink: EventSink, streamId: string, bad: { type: string; data: unknown }): void => {
    for (let i = 0; i < 20; i++) sink.append(streamId, { type: 'Reported', data: { i } });
    sink.append(streamId, bad);
    for (let i = 21; i < 41; i++) sink.append(streamId, { type: 'Reported', data: { i } });
  };

  it('stores a tool result holding U+0000 or a cut emoji with its neighbours, U+FFFD in their place', async () => {
    const sink = new EventSink(store, logger, { actor: 'system:test' });
    twentyOneTwenty(sink, 'sink_h-1', {
      type: 'ToolResult',
      data: { i: 20, text: 'file\u0000bytes, cut \ud83d', ['key\u0000']: 'k' },
    });
    await sink.flush();
    const read = await store.readStream('sink_h-1');
    assert.deepEqual(
      read.map((e) => (e.data as { i: number }).i),
      Array.from({ length: 41 }, (_, i) => i),
    );
    assert.deepEqual(read[20]!.data, { i: 20, text: 'file\ufffdbytes, cut \ufffd', ['key\ufffd']: 'k' });
    assert.deepEqual(sink.counts(), { appends: 1, events: 41, retries: 0, dropped: 0, lost: 0 });
  });

  it('an event the store refuses for its content is lost alone, logged with its id and type', async () => {
    const { log, errors } = recording();
    const sink = new EventSink(store, log, { actor: 'system:test' });
    // A BigInt cannot be written as JSON: the store names the event (UnstorableEventError.eventIndex).
    twentyOneTwenty(sink, 'sink_i-1', { type: 'Unwritable', data: { i: 20, n: 1n } });
    await sink.flush();
    assert.deepEqual(
      await numbers('sink_i-1'),
      Array.from({ length: 41 }, (_, i) => i).filter((i) => i !== 20),
    );
    assert.deepEqual(sink.counts(), { appends: 1, events: 40, retries: 0, dropped: 0, lost: 1 });
    assert.equal(errors.length, 1);
    const { fields } = errors[0]!;
    assert.ok(fields.err instanceof UnstorableEventError);
    assert.equal(fields.type, 'Unwritable');
    assert.equal(fields.lost, 1);
    assert.match(String(fields.id), /^[0-9a-f-]{36}$/);
  });

  it('an append the database refuses without naming the event is split until only that event is lost', async () => {
    // The real store, refusing (as the database would) any append that carries the poisoned event.
    const refusing = overriding<EventStore>(store, {
      append: (streamId, events, ...rest) =>
        events.some((e) => (e.data as { poison?: boolean }).poison)
          ? Promise.reject(new UnstorableEventError(streamId, 'refused by the test'))
          : store.append(streamId, events, ...rest),
    });
    const { log, errors } = recording();
    const sink = new EventSink(refusing, log, { actor: 'system:test' });
    twentyOneTwenty(sink, 'sink_j-1', { type: 'Poisoned', data: { i: 20, poison: true } });
    await sink.flush();
    assert.deepEqual(
      await numbers('sink_j-1'),
      Array.from({ length: 41 }, (_, i) => i).filter((i) => i !== 20),
    );
    const c = sink.counts();
    assert.deepEqual({ ...c, appends: 0 }, { appends: 0, events: 40, retries: 0, dropped: 0, lost: 1 });
    // Halves of 41 down to the one: a few appends, not one per event.
    assert.ok(c.appends <= 7, `${c.appends} appends`);
    assert.deepEqual(
      errors.map((e) => [e.fields.type, e.fields.lost]),
      [['Poisoned', 1]],
    );
  });
});
