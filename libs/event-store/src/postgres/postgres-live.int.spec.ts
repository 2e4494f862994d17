import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createLogger } from '@switchyard/platform';
import { freshDatabase, until } from '@switchyard/testing';
import { ev, take } from '../contract/event-store.contract.js';
import { createEventStore } from '../factory.js';
import { MessageChannel } from 'node:worker_threads';
import { forwardLiveFeed, PostgresEventStore } from './postgres-event-store.js';
import { liveFeedKey } from './live-feed.js';
import { UnstorableEventError, type RecordedEvent } from '../port.js';

/** What a process's feed posts to a thread's (see LiveFeed.offerCommitted), as far as these tests read it. */
type OfferMessage = {
  type: string;
  json?: string;
  appends?: { events: number; lastPosition: number }[];
};

describe('PostgresEventStore live delivery', () => {
  let url: string;
  let pool: pg.Pool;
  before(async () => {
    url = await freshDatabase('es_live');
    pool = new pg.Pool({ connectionString: url, max: 5 });
  });
  after(async () => {
    await pool.end();
  });

  it('createEventStore over a shared pool gives a Postgres store that delivers live events', async () => {
    const store = createEventStore({ pool, logger: createLogger('test', 'silent') });
    assert.equal(store.kind, 'postgres');
    await store.init();
    await store.init(); // idempotent
    const sub = store.subscribeToAll({ streamPrefixes: ['pool-'] });
    const got = take(sub, 3);
    for (let i = 0; i < 3; i++) await store.append(`pool-${i}`, [ev('P', { i })]);
    assert.deepEqual(
      (await got).map((e) => (e.data as { i: number }).i),
      [0, 1, 2],
    );
    await store.close();
    // The pool belongs to the caller: closing the store leaves it usable.
    assert.equal((await pool.query('select 1 as one')).rows[0].one, 1);
  });

  it('an append the database or JSON refuses fails alone, as UnstorableEventError; its group-commit neighbours are stored', async () => {
    const store = new PostgresEventStore({ connectionString: url, schema: 'es_refused' });
    try {
      await store.init();
      // Data holding U+0000 is stored (with U+FFFD); a fence name is not rewritten, so one holding
      // U+0000 still makes PostgreSQL refuse the statement, and with it the group commit it joined.
      const results = await Promise.allSettled(
        Array.from({ length: 400 }, (_, i) =>
          store.append(
            `refused-${i % 7}`,
            [ev('R', { i, text: i % 100 === 0 ? 'nul\u0000' : 'ok' })],
            i % 100 === 50 ? { fence: { name: 'f\u0000', epoch: 1 } } : {},
          ),
        ),
      );
      const refused = results.flatMap((r, i) => (r.status === 'rejected' ? [{ i, err: r.reason as unknown }] : []));
      assert.deepEqual(
        refused.map((r) => r.i),
        [50, 150, 250, 350],
      );
      for (const { err } of refused) {
        assert.ok(err instanceof UnstorableEventError, String(err));
        assert.equal(err.code, 'validation');
        assert.equal(err.retryable, false);
        assert.equal(err.details.pgCode, '22P05');
      }
      const stored = await store.readAll({ streamPrefixes: ['refused-'] });
      assert.equal(stored.length, 396);
      assert.equal(stored.filter((e) => (e.data as { text: string }).text === 'nul\ufffd').length, 4);
      // An event that cannot be written as JSON fails its own append, named, before any statement.
      await assert.rejects(
        store.append('refused-json', [ev('A'), ev('B', { n: 1n })]),
        (err: unknown) => err instanceof UnstorableEventError && err.eventIndex === 1,
      );
      assert.deepEqual(await store.readStream('refused-json'), []);
    } finally {
      await store.close();
    }
  });

  it('keeps delivering after its LISTEN connection is killed (reconnects and catches up)', async () => {
    // A long safety interval, so delivery within the guard proves the reconnect, not the timer.
    const store = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 60_000, schema: 'es_reconnect' });
    await store.init();
    const sub = store.subscribeToAll();
    const received: number[] = [];
    const done = take(sub, 6, 30_000, (e) => {
      received.push((e.data as { i: number }).i);
    });
    await store.append('r-1', [ev('R', { i: 0 })]);
    while (received.length < 1) await new Promise((r) => setTimeout(r, 10));
    // The first event may come by hand-over (an append of this process) before the LISTEN
    // connection has said LISTEN: wait until PostgreSQL shows it, then terminate it.
    const listening = `from pg_stat_activity
       where datname = current_database() and query ilike 'listen "es_reconnect_appended"%'`;
    await until(
      'the LISTEN connection to be up',
      async () => (await pool.query(`select 1 ${listening}`)).rowCount === 1,
    );
    const killed = await pool.query(`select pg_terminate_backend(pid) as ok ${listening}`);
    assert.equal(killed.rowCount, 1, 'the LISTEN connection was found and terminated');
    for (let i = 1; i < 6; i++) await store.append('r-1', [ev('R', { i })]);
    await done;
    assert.deepEqual(received, [0, 1, 2, 3, 4, 5]);
    await store.close();
  });

  it('live subscriptions at the same position share one read of what another process appended', async () => {
    // A long safety interval: every delivery comes from a NOTIFY-triggered read.
    const store = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 60_000, schema: 'es_shared' });
    const writer = new PostgresEventStore({ connectionString: url, schema: 'es_shared', liveFeed: 'own' }); // "another process"
    try {
      await store.init();
      await writer.init();
      await writer.append('warm-1', [ev('W')]);
      const from = await store.headPosition();
      const N = 60;
      const all = take(store.subscribeToAll({ from }), N);
      const onlyB = take(store.subscribeToAll({ from, types: ['B'] }), N / 2);
      const onlyY = take(store.subscribeToAll({ from, streamPrefixes: ['y-'] }), N / 3);
      const before = store.readStats();
      for (let i = 0; i < N; i++) {
        // One append at a time, like a live system: each wakes all three subscriptions.
        await writer.append(`${['x', 'y', 'z'][i % 3]}-1`, [ev(i % 2 === 0 ? 'A' : 'B', { i })]);
        await new Promise((r) => setTimeout(r, 2));
      }
      const [a, b, y] = await Promise.all([all, onlyB, onlyY]);
      const ids = (es: typeof a) => es.map((e) => (e.data as { i: number }).i);
      assert.deepEqual(
        ids(a),
        Array.from({ length: N }, (_, i) => i),
      );
      assert.deepEqual(
        ids(b),
        Array.from({ length: N }, (_, i) => i).filter((i) => i % 2 === 1),
      );
      assert.deepEqual(
        ids(y),
        Array.from({ length: N }, (_, i) => i).filter((i) => i % 3 === 1),
      );
      for (const es of [a, b, y])
        assert.ok(
          es.every((e, k) => k === 0 || e.position > es[k - 1]!.position),
          'ascending positions',
        );
      const after = store.readStats();
      const requests = after.pageRequests - before.pageRequests;
      const queries = after.pageQueries - before.pageQueries;
      console.log(`# shared reads: ${requests} subscription reads served by ${queries} queries`);
      assert.equal(after.offered, before.offered, 'nothing of another process is handed over');
      assert.ok(queries < requests, `${queries} queries for ${requests} reads: the reads of one wake-up were shared`);
    } finally {
      await Promise.all([store.close(), writer.close()]);
    }
  });

  it('setting up a store already set up takes no lock on the events table: a long reader does not hold it up', async () => {
    const first = new PostgresEventStore({ connectionString: url, schema: 'es_reinit' });
    await first.init();
    await first.append('reinit-1', [ev('A')]);
    const reader = await pool.connect();
    try {
      await reader.query('begin');
      await reader.query('select count(*) from es_reinit.events');
      const again = new PostgresEventStore({ connectionString: url, schema: 'es_reinit', liveFeed: 'own' });
      try {
        const done = await Promise.race([
          again.init().then(() => 'set up' as const),
          new Promise<'blocked'>((r) => setTimeout(() => r('blocked'), 5_000).unref()),
        ]);
        assert.equal(done, 'set up', 'the second init waited for the reader');
      } finally {
        await reader.query('rollback');
        await again.close();
      }
    } finally {
      reader.release();
      await first.close();
    }
  });

  it('a catch-up page stops where its events pass pageBytes: every event comes, in order, over many short reads', async () => {
    const store = new PostgresEventStore({
      connectionString: url,
      safetyIntervalMs: 60_000,
      schema: 'es_page_bytes',
      pageBytes: 64 * 1024,
    });
    const writer = new PostgresEventStore({ connectionString: url, schema: 'es_page_bytes', liveFeed: 'own' });
    try {
      await store.init();
      await writer.init();
      await writer.append('warm-1', [ev('W')]);
      const from = await store.headPosition();
      // Incompressible payloads of 20 KiB (base64 of random bytes), and one of 200 KiB, above the page's bytes alone.
      const N = 40;
      const big = 25;
      for (let i = 0; i < N; i++) {
        const blob = randomBytes(i === big ? 150 * 1024 : 15 * 1024).toString('base64');
        await writer.append(`p-${i % 4}`, [ev(i % 2 === 0 ? 'A' : 'B', { i, blob })]);
      }
      const before = store.readStats();
      // Three at one position: they share unfiltered reads, filtered in memory for the third.
      const [all, again, onlyB] = await Promise.all([
        take(store.subscribeToAll({ from }), N),
        take(store.subscribeToAll({ from }), N),
        take(store.subscribeToAll({ from, types: ['B'] }), N / 2),
      ]);
      const ids = (es: readonly RecordedEvent[]) => es.map((e) => (e.data as { i: number }).i);
      const every = Array.from({ length: N }, (_, i) => i);
      assert.deepEqual(ids(all), every);
      assert.deepEqual(ids(again), every);
      assert.deepEqual(
        ids(onlyB),
        every.filter((i) => i % 2 === 1),
      );
      const queries = store.readStats().pageQueries - before.pageQueries;
      console.log(`# ${N} events of ~20 KiB stored, pages of 64 KiB: ${queries} page queries`);
      // About 1 MiB in pages of 64 KiB: four events a page, the large one alone, so at least ten
      // reads (the three subscriptions start at one position and share them).
      assert.ok(queries >= 10, `${queries} page queries: the pages were cut by bytes`);
      // Alone, a filtered subscription filters in SQL: its pages are cut by bytes as well.
      const alone = store.readStats().pageQueries;
      assert.deepEqual(
        ids(await take(store.subscribeToAll({ from, types: ['B'] }), N / 2)),
        every.filter((i) => i % 2 === 1),
      );
      assert.ok(store.readStats().pageQueries - alone >= 5, 'about 600 KiB of matches in pages of 64 KiB');
      // Data that compresses well (rows of the same shape): pages by its size as JSON, not as stored.
      const rowsFrom = await store.headPosition();
      const rows = Array.from({ length: 2_000 }, (_, i) => ({ name: 'customer', amount: 100, status: 'active', i }));
      for (let i = 0; i < 10; i++) await writer.append(`rows-${i}`, [ev('Rows', { i, rows })]);
      const beforeRows = store.readStats().pageQueries;
      assert.deepEqual(ids(await take(store.subscribeToAll({ from: rowsFrom }), 10)), every.slice(0, 10));
      const rowPages = store.readStats().pageQueries - beforeRows;
      // Each event is about 110 KB as JSON (under 10 KB stored): one a page.
      assert.ok(rowPages >= 10, `${rowPages} page queries for 10 events of 110 KB that compress well`);
    } finally {
      await Promise.all([store.close(), writer.close()]);
    }
  });

  it("this process's own appends reach its live subscriptions without a read", async () => {
    const store = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 60_000, schema: 'es_handover' });
    try {
      await store.init();
      const from = await store.headPosition();
      const N = 50;
      const received: RecordedEvent[][] = [[], []];
      const subs = [store.subscribeToAll({ from }), store.subscribeToAll({ from, types: ['Odd'] })];
      const consumers = subs.map(async (sub, k) => {
        for await (const e of sub) received[k]!.push(e);
      });
      // A first event both take: once they have it, their catch-up reads are behind them and they are live.
      await store.append('own-warm', [ev('Odd', { i: -1 })]);
      await until('both subscriptions live', () => received.every((r) => r.length === 1));
      const before = store.readStats();
      for (let i = 0; i < N; i++) {
        await store.append(`own-${i % 5}`, [ev(i % 2 === 1 ? 'Odd' : 'Even', { i })]);
        await new Promise((r) => setTimeout(r, 2));
      }
      await until('all delivered', () => received[0]!.length === N + 1 && received[1]!.length === N / 2 + 1);
      const stored = await store.readAll({ after: from, maxCount: 1_000 });
      assert.deepEqual(received[0], stored, 'exactly what a read gives');
      assert.deepEqual(
        received[1],
        stored.filter((e) => e.type === 'Odd'),
      );
      const after = store.readStats();
      console.log(
        `# handover: ${after.offered - before.offered} of ${2 * N} handed over, ${after.pageRequests - before.pageRequests} reads`,
      );
      // Sequential appends from the only writer: each follows directly what both subscriptions have.
      assert.equal(after.offered - before.offered, 2 * N);
      for (const sub of subs) await sub.close();
      await Promise.all(consumers);
    } finally {
      await store.close();
    }
  });

  it("own appends interleaved with another process's: every subscription gets every event once, in order, as stored", async () => {
    const store = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 60_000, schema: 'es_local' });
    const other = new PostgresEventStore({ connectionString: url, schema: 'es_local', liveFeed: 'own' });
    try {
      await store.init();
      await other.init();
      const from = await store.headPosition();
      const OWN = 400;
      const FOREIGN = 100;
      const all = take(store.subscribeToAll({ from }), OWN + FOREIGN, 60_000);
      const onlyOwn = take(store.subscribeToAll({ from, streamPrefixes: ['own-'] }), OWN, 60_000);
      const before = store.readStats();
      // Concurrent appends (group commit, two batches in flight) from both "processes".
      await Promise.all([
        ...Array.from({ length: OWN }, (_, i) =>
          store.append(`own-${i % 7}`, [ev('Own', { i, nested: { keep: [1, 'two', null], skip: undefined } })]),
        ),
        ...Array.from({ length: FOREIGN }, (_, i) => other.append(`foreign-${i % 3}`, [ev('Foreign', { i })])),
      ]);
      const [got, own] = await Promise.all([all, onlyOwn]);
      const stored = await store.readAll({ after: from, maxCount: 10_000 });
      // Every event once, in position order, equal to what a read returns (data, metadata, revision, recordedAt).
      assert.deepEqual(got, stored);
      assert.deepEqual(
        own,
        stored.filter((e) => e.streamId.startsWith('own-')),
      );
      assert.deepEqual(
        got.map((e) => e.position),
        stored.map((_, k) => from + 1 + k),
        'dense positions, no gap, no repeat',
      );
      // How many were handed over depends on timing (a subscription mid-read takes none): informative only.
      console.log(
        `# interleaved: ${store.readStats().offered - before.offered} of ${2 * OWN} own appends handed over without a read`,
      );
    } finally {
      await Promise.all([store.close(), other.close()]);
    }
  });

  it("stores of one process on different connections share one LISTEN connection, and each store's commits reach the others' subscriptions without a read", async () => {
    // Two stores as the launcher makes them: one database, a pool each (a component's role each),
    // plus a store with a feed of its own playing another process.
    const listening = `from pg_stat_activity
       where datname = current_database() and query ilike 'listen "es_feed_appended"%'`;
    const listeners = async () => (await pool.query(`select 1 ${listening}`)).rowCount;
    const listenerApp = async () =>
      (await pool.query<{ app: string }>(`select application_name as app ${listening}`)).rows.map((r) => r.app);
    const poolA = new pg.Pool({ connectionString: url, max: 2, application_name: 'feed-a' });
    const poolB = new pg.Pool({ connectionString: url, max: 2, application_name: 'feed-b' });
    const a = new PostgresEventStore({ pool: poolA, safetyIntervalMs: 60_000, schema: 'es_feed' });
    const b = new PostgresEventStore({ pool: poolB, safetyIntervalMs: 60_000, schema: 'es_feed' });
    const foreign = new PostgresEventStore({ connectionString: url, schema: 'es_feed', liveFeed: 'own' });
    try {
      await Promise.all([a.init(), b.init(), foreign.init()]);
      const from = await b.headPosition();
      const N = 30;
      // A subscribes first: the LISTEN connection logs in as A.
      const seenByA = take(a.subscribeToAll({ from, types: ['FromB'] }), 1);
      await until('the LISTEN connection as A', async () => (await listenerApp()).join() === 'feed-a');
      const seenByB: RecordedEvent[] = [];
      const subB = b.subscribeToAll({ from });
      const consumer = (async () => {
        for await (const e of subB) seenByB.push(e);
      })();
      await a.append('feed-warm', [ev('Warm')]);
      await until('B live', () => seenByB.length === 1);
      await until('one LISTEN connection for both stores', async () => (await listeners()) === 1);
      const before = { a: a.readStats(), b: b.readStats() };
      for (let i = 0; i < N; i++) await a.append(`feed-${i % 3}`, [ev('FromA', { i })]);
      await until('B has every event A committed', () => seenByB.length === N + 1);
      const afterA = a.readStats();
      const afterB = b.readStats();
      console.log(
        `# shared feed: ${afterA.offered - before.a.offered} of A's appends handed over; B read ${afterB.pageRequests - before.b.pageRequests} times`,
      );
      assert.equal(afterB.pageRequests, before.b.pageRequests, "B read nothing: A's commits were handed to it");
      assert.ok(afterA.offered - before.a.offered >= N, "A's commits were offered to B's subscription");
      // And the other way round: B's commit reaches A's (filtered) subscription.
      await b.append('feed-b', [ev('FromB', { n: 1 })]);
      assert.equal((await seenByA)[0]!.type, 'FromB');
      // A's subscription ended with that event: the LISTEN connection moves to a store that still
      // subscribes (a store that stops following the log, such as the schema owner's after the
      // migrations, keeps no login), and there is still one.
      await until('the LISTEN connection as B', async () => (await listenerApp()).join() === 'feed-b');
      // A leaves: the feed stays for B, and what another process appends still reaches it (NOTIFY, then a read).
      await a.close();
      assert.deepEqual(await listenerApp(), ['feed-b']);
      await foreign.append('feed-foreign', [ev('Foreign')]);
      await until('B has the foreign event', () => seenByB.at(-1)?.type === 'Foreign');
      const stored = await b.readAll({ after: from, maxCount: 1_000 });
      assert.deepEqual(seenByB, stored, 'exactly what a read gives, once each, in order');
      await subB.close();
      await consumer;
      await b.close();
      await until('the last store closed its LISTEN connection', async () => (await listeners()) === 0);
    } finally {
      await Promise.all([a.close(), b.close(), foreign.close()]);
      await Promise.all([poolA.end(), poolB.end()]);
    }
  });

  it('the LISTEN connection never stays logged in as a store that stopped subscribing, even with nobody subscribing after it', async () => {
    const listening = `from pg_stat_activity
       where datname = current_database() and query ilike 'listen "es_move_appended"%'`;
    const listenerApp = async () =>
      (await pool.query<{ app: string }>(`select application_name as app ${listening}`)).rows.map((r) => r.app);
    const poolA = new pg.Pool({ connectionString: url, max: 2, application_name: 'move-a' });
    const poolB = new pg.Pool({ connectionString: url, max: 2, application_name: 'move-b' });
    const a = new PostgresEventStore({ pool: poolA, schema: 'es_move' });
    const b = new PostgresEventStore({ pool: poolB, schema: 'es_move' });
    try {
      await Promise.all([a.init(), b.init()]);
      const subA = a.subscribeToAll();
      await until('the LISTEN connection as A', async () => (await listenerApp()).join() === 'move-a');
      await subA.close();
      await a.close();
      await until('no LISTEN connection while nobody subscribes', async () => (await listenerApp()).length === 0);
      const from = await b.headPosition();
      const got = take(b.subscribeToAll({ from }), 1);
      await until('the LISTEN connection as B', async () => (await listenerApp()).join() === 'move-b');
      await b.append('move-1', [ev('M')]);
      assert.equal((await got)[0]!.type, 'M');
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([poolA.end(), poolB.end()]);
    }
  });

  it('appends made in one synchronous run go to the database in one statement (one commit)', async () => {
    const store = new PostgresEventStore({ connectionString: url, schema: 'es_same_run' });
    try {
      await store.init();
      const streams = ['run-1', 'run-2', 'run-3'];
      // An idle store: before, the first went alone and the second alone (two statements in flight).
      const results = await Promise.all(streams.map((st) => store.append(st, [ev('R')])));
      const stored = await Promise.all(streams.map((st) => store.readStream(st)));
      assert.deepEqual(
        results.map((r) => r.position),
        stored.map((e) => e[0]!.position),
      );
      // One transaction: the events share its now().
      assert.equal(new Set(stored.map((e) => e[0]!.recordedAt.getTime())).size, 1, 'one commit for the three appends');
    } finally {
      await store.close();
    }
  });

  it('tells logs apart as pg resolves the connection: database (the user name when the URL has none), host and port, not the role', () => {
    const key = (u: string) => liveFeedKey({ connectionString: u }, 'eventstore');
    assert.notEqual(key('postgres://alice@h:5432'), key('postgres://bob@h:5432'), 'the database defaults to the user');
    assert.notEqual(key('postgres://u@h/db?port=5433'), key('postgres://u@h/db?port=5434'));
    assert.notEqual(key('postgres://u@h1/db'), key('postgres://u@h2/db'));
    assert.notEqual(
      liveFeedKey({ connectionString: 'postgres://u@h/db' }, 'a'),
      liveFeedKey({ connectionString: 'postgres://u@h/db' }, 'b'),
    );
    assert.equal(key('postgres://alice:x@h:5432/db'), key('postgres://bob:y@h/db'), 'one log, two roles');
    assert.equal(
      key('postgres://u@h/db'),
      liveFeedKey({ host: 'h', port: 5432, database: 'db', user: 'v' }, 'eventstore'),
    );
  });

  it("an append of this process stuck waiting for a connection does not hold back another process's events", async () => {
    const stuckPool = new pg.Pool({ connectionString: url, max: 1 });
    const stuck = new PostgresEventStore({ pool: stuckPool, schema: 'es_hold' });
    const reader = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 60_000, schema: 'es_hold' });
    const foreign = new PostgresEventStore({ connectionString: url, schema: 'es_hold', liveFeed: 'own' });
    try {
      await Promise.all([stuck.init(), reader.init(), foreign.init()]);
      const from = await reader.headPosition();
      const got = take(reader.subscribeToAll({ from, types: ['Foreign'] }), 1, 10_000);
      await foreign.append('hold-warm', [ev('Warm')]);
      await new Promise((r) => setTimeout(r, 300)); // live: the catch-up read is behind it
      const held = await stuckPool.connect(); // the stuck store's only connection
      const pending = stuck.append('hold-own', [ev('Own')]);
      let settled = false;
      void pending.finally(() => (settled = true));
      await foreign.append('hold-foreign', [ev('Foreign')]);
      // The safety re-read is a minute away and the stuck append waits for the connection held
      // here: only a NOTIFY not held back by it delivers the event.
      const [e] = await got;
      assert.equal(e!.type, 'Foreign');
      assert.equal(settled, false, 'delivered while the append of this process was still stuck');
      held.release();
      await pending;
    } finally {
      await Promise.all([stuck.close(), reader.close(), foreign.close()]);
      await stuckPool.end();
    }
  });

  it('a filtered subscription reads a long log one window at a time and still gets every match, in order', async () => {
    const store = new PostgresEventStore({ connectionString: url, schema: 'es_window' });
    await store.init();
    // 25,000 fillers between three rare events: the rare ones sit in three different windows
    // of the filtered read (10,000 positions each), the last past the second window.
    const fill = (n: number) => Array.from({ length: n }, (_, i) => ev('Filler', { i }));
    await store.append('w-fill-a', fill(12_000));
    await store.append('w-rare', [ev('Rare', { i: 0 })]);
    await store.append('w-fill-b', fill(13_000));
    await store.append('w-rare', [ev('Rare', { i: 1 })]);
    // Each page read's window: its `after` ($1) and `until` ($5).
    const windows: { after: number; until: number | null }[] = [];
    const spied = store as unknown as { query: (text: string, params?: unknown[]) => Promise<unknown> };
    const query = spied.query.bind(store);
    spied.query = (text: string, params?: unknown[]) => {
      if (text.includes('left join lateral') && params)
        windows.push({ after: Number(params[0]), until: params[4] === null ? null : Number(params[4]) });
      return query(text, params);
    };
    const received: number[] = [];
    const got = take(store.subscribeToAll({ types: ['Rare'] }), 3, 30_000, (e) => {
      received.push((e.data as { i: number }).i);
    });
    await until('the two stored rare events to be read', async () => received.length >= 2);
    await store.append('w-rare', [ev('Rare', { i: 2 })]);
    assert.deepEqual(
      (await got).map((e) => (e.data as { i: number }).i),
      [0, 1, 2],
    );
    // 25,002 positions before the live one: three windowed reads at least, none wider than
    // 10,000 positions, not one scan of the log.
    assert.ok(windows.length >= 3, `${windows.length} reads`);
    for (const w of windows) assert.ok(w.until !== null && w.until - w.after <= 10_000, JSON.stringify(w));
    await store.close();
  });

  it('upgrades a store made by the previous version (append_batch without recorded_at in its result)', async () => {
    await pool.query(`create schema es_upgrade`);
    await pool.query(
      `create function es_upgrade.append_batch(p_batch jsonb) returns table (idx int, ok boolean, revision bigint, last_position bigint)
       language sql as $$ select 1, true, 0::bigint, 0::bigint $$`,
    );
    const store = new PostgresEventStore({ connectionString: url, schema: 'es_upgrade' });
    try {
      await store.init();
      const r = await store.append('up-1', [ev('U', { n: 1 })], { expectedRevision: 'no_stream' });
      assert.deepEqual(r, { nextExpectedRevision: 0, position: 0 });
      assert.deepEqual(
        (await store.readStream('up-1')).map((e) => e.data),
        [{ n: 1 }],
      );
    } finally {
      await store.close();
    }
  });

  it("a worker thread's store fed by its process's feed: the process's commits arrive without a read, another process's through the forwarded wake-up, and it LISTENs itself once the process's stores are gone", async () => {
    const listening = `from pg_stat_activity
       where datname = current_database() and query ilike 'listen "es_thread_appended"%'`;
    const listeners = async () => (await pool.query(`select 1 ${listening}`)).rowCount;
    const engine = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 60_000, schema: 'es_thread' });
    const foreign = new PostgresEventStore({ connectionString: url, schema: 'es_thread', liveFeed: 'own' });
    const channel = new MessageChannel();
    const consumed = new SharedArrayBuffer(8);
    const onThread = new PostgresEventStore({
      connectionString: url,
      safetyIntervalMs: 60_000,
      schema: 'es_thread',
      liveFeed: { fedBy: { port: channel.port2, consumed } },
    });
    try {
      await Promise.all([engine.init(), foreign.init(), onThread.init()]);
      assert.equal(forwardLiveFeed({ connectionString: url }, channel.port1, consumed, 'es_thread'), true);
      const noFeed = new MessageChannel();
      assert.equal(
        forwardLiveFeed({ connectionString: url }, noFeed.port1, new SharedArrayBuffer(8), 'es_nobody_here'),
        false,
        'no store of the process on that log: nothing to hand over',
      );
      noFeed.port1.close();
      const from = await engine.headPosition();
      const seen: RecordedEvent[] = [];
      const sub = onThread.subscribeToAll({ from });
      const consumer = (async () => {
        for await (const e of sub) seen.push(e);
      })();
      const evens = take(onThread.subscribeToAll({ from, types: ['Even'] }), 20, 60_000);
      await engine.append('thread-warm', [ev('Warm')]);
      await until('the thread store live', () => seen.length === 1);
      await until('one LISTEN connection, the process feed', async () => (await listeners()) === 1);
      const before = onThread.readStats();
      for (let i = 0; i < 40; i++) await engine.append(`thread-${i % 4}`, [ev(i % 2 === 0 ? 'Even' : 'Odd', { i })]);
      await until("the process's 40 commits on the thread", () => seen.length === 41);
      assert.equal(onThread.readStats().pageRequests, before.pageRequests, 'no page read for them');
      assert.deepEqual(
        (await evens).map((e) => (e.data as { i: number }).i),
        Array.from({ length: 20 }, (_, k) => 2 * k),
        'a filtered subscription takes its events from the handover',
      );
      // Another process's append: the process feed's NOTIFY wakes the thread store, which reads it.
      await foreign.append('thread-foreign', [ev('Foreign')]);
      await until('the foreign event on the thread', () => seen.at(-1)?.type === 'Foreign');
      // Both at once, group commits in flight: every event once, in order, as stored.
      await Promise.all([
        ...Array.from({ length: 200 }, (_, i) => engine.append(`thread-${i % 7}`, [ev('Own', { i })])),
        ...Array.from({ length: 50 }, (_, i) => foreign.append(`thread-f-${i % 3}`, [ev('Foreign', { i })])),
      ]);
      await until('all 292 on the thread', () => seen.length === 292);
      let stored = await engine.readAll({ after: from, maxCount: 10_000 });
      assert.deepEqual(seen, stored, 'exactly what a read gives, once each, in order');
      // The process's stores go: the thread store LISTENs on its own connection and still follows the log.
      await engine.close();
      await until('the thread store LISTENs itself', async () => (await listeners()) === 1);
      await foreign.append('thread-after', [ev('After')]);
      await until('the event after the detach', () => seen.at(-1)?.type === 'After');
      stored = await foreign.readAll({ after: from, maxCount: 10_000 });
      assert.deepEqual(seen, stored);
      await sub.close();
      await consumer;
    } finally {
      await Promise.all([engine.close(), foreign.close(), onThread.close()]);
    }
  });

  it('a thread that does not take what it is handed is sent nothing more past a bounded backlog, and is handed commits again once it takes them', async () => {
    const engine = new PostgresEventStore({ connectionString: url, safetyIntervalMs: 60_000, schema: 'es_backlog' });
    const channel = new MessageChannel();
    const taken = new SharedArrayBuffer(8);
    try {
      await engine.init();
      // The thread's end counts nothing as taken (a thread too busy to run its handlers).
      assert.equal(forwardLiveFeed({ connectionString: url }, channel.port1, taken, 'es_backlog'), true);
      const got = { offered: 0, wakes: 0, last: -1 };
      channel.port2.on('message', (m: OfferMessage) => {
        if (m.type === 'offer') {
          got.offered += m.appends!.reduce((n, a) => n + a.events, 0);
          got.last = Math.max(...m.appends!.map((a) => a.lastPosition));
        }
        if (m.type === 'wake') got.wakes++;
      });
      const batch = Array.from({ length: 100 }, (_, i) => ev('Bulk', { i }));
      for (let k = 0; k < 80; k++) await engine.append(`backlog-${k}`, batch);
      await new Promise((r) => setTimeout(r, 200)); // the last NOTIFY's wake-up, if any, is in
      const sent = got.offered + got.wakes;
      console.log(`# backlog: ${got.offered} events handed over and ${got.wakes} wake-ups for 8,000 events committed`);
      assert.ok(got.offered > 4_000 && got.offered <= 5_000, `at most the bound handed over (${got.offered})`);
      assert.ok(sent <= 5_000, `nothing sent past the bound (${sent} counted)`);
      // The thread takes everything: the next commit is handed over again.
      Atomics.store(new Int32Array(taken), 0, sent);
      const next = await engine.append('backlog-after', [ev('Bulk', { after: true })]);
      await until('the next commit handed over', () => got.last === next.position);
    } finally {
      channel.port2.close();
      await engine.close();
    }
  });

  it('the backlog bound also counts characters: a thread handed large events it does not take gets nothing past the bound', async () => {
    const engine = new PostgresEventStore({
      connectionString: url,
      safetyIntervalMs: 60_000,
      schema: 'es_backlog_chars',
    });
    const channel = new MessageChannel();
    try {
      await engine.init();
      const bound = 1_000_000;
      assert.equal(
        forwardLiveFeed({ connectionString: url }, channel.port1, new SharedArrayBuffer(8), 'es_backlog_chars', {
          chars: bound,
        }),
        true,
      );
      const got = { offered: 0, chars: 0 };
      channel.port2.on('message', (m: OfferMessage) => {
        if (m.type !== 'offer') return;
        got.offered += m.appends!.reduce((n, a) => n + a.events, 0);
        got.chars += m.json!.length;
      });
      const big = 'x'.repeat(100_000);
      for (let k = 0; k < 30; k++) await engine.append(`chars-${k}`, [ev('Big', { big })]);
      await new Promise((r) => setTimeout(r, 200));
      console.log(`# backlog by characters: ${got.offered} events of ~100 KB handed over, ${got.chars} characters`);
      assert.ok(got.chars <= bound, `at most the bound handed over (${got.chars})`);
      assert.ok(got.offered >= 8 && got.offered < 30, `events up to the bound, not all 30 (${got.offered})`);
    } finally {
      channel.port2.close();
      await engine.close();
    }
  });

  it('keeps stores in different schemas apart', async () => {
    const a = new PostgresEventStore({ connectionString: url, schema: 'es_a' });
    const b = new PostgresEventStore({ connectionString: url, schema: 'es_b' });
    await Promise.all([a.init(), b.init()]);
    await a.append('x-1', [ev('A')]);
    assert.equal((await a.readAll()).length, 1);
    assert.deepEqual(await b.readAll(), []);
    assert.equal(await b.headPosition(), -1);
    await Promise.all([a.close(), b.close()]);
  });
});
