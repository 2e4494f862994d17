import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { freshDatabase, overriding } from '@switchyard/testing';
import {
  PostgresEventStore,
  type AllSubscription,
  type NewEvent,
  type SubscribeOptions,
} from '@switchyard/event-store';
import { ProjectionRunner } from './projection-runner.js';
import type { Projection } from './projection.js';
import {
  countingProjection,
  countingStatementProjection,
  countingTextProjection,
} from './kill-test/counting-projection.js';

const meta = { correlationId: 'kill-test', timestamp: '2026-01-01T00:00:00.000Z' };
const counted = (n: number): NewEvent[] =>
  Array.from({ length: n }, (_, i) => ({ id: randomUUID(), type: 'Counted', data: { i }, metadata: meta }));

async function appliedCounts(
  pool: pg.Pool,
  table = 'kt_applied',
): Promise<{ rows: number; total: number; max: number }> {
  const r = await pool.query<{ rows: string; total: string; max: string }>(
    `select count(*) as rows, coalesce(sum(applied), 0) as total, coalesce(max(applied), 0) as max from ${table}`,
  );
  return { rows: Number(r.rows[0]!.rows), total: Number(r.rows[0]!.total), max: Number(r.rows[0]!.max) };
}

async function checkpoint(pool: pg.Pool, name = 'counting'): Promise<number> {
  try {
    const r = await pool.query<{ position: string }>('select position from read_models.checkpoints where name = $1', [
      name,
    ]);
    return Number(r.rows[0]?.position ?? -1);
  } catch (err) {
    if ((err as { code?: string }).code === '42P01') return -1; // no runner has created the table yet
    throw err;
  }
}

describe('ProjectionRunner (real PostgreSQL)', () => {
  let url: string;
  let store: PostgresEventStore;
  let pool: pg.Pool;
  before(async () => {
    url = await freshDatabase('rm_runner');
    store = new PostgresEventStore({ connectionString: url });
    await store.init();
    pool = new pg.Pool({ connectionString: url, max: 3 });
  });
  after(async () => {
    await store.close();
    await pool.end();
  });

  it('applies handled events once, skips others, reports lag and rebuilds from the start', async () => {
    const totals: Projection = {
      name: 'totals',
      handles: ['Added'],
      streamPrefixes: ['cart-'],
      setup: async (c) => {
        await c.query('create table if not exists totals (cart text primary key, total int not null)');
      },
      apply: async (c, e) => {
        await c.query(
          'insert into totals values ($1, $2) on conflict (cart) do update set total = totals.total + excluded.total',
          [e.streamId, (e.data as { n: number }).n],
        );
      },
      reset: async (c) => {
        await c.query('truncate totals');
      },
    };
    for (let i = 0; i < 30; i++) {
      await store.append(`cart-${i % 3}`, [
        { type: 'Added', data: { n: 1 }, metadata: meta },
        { type: 'Viewed', data: {}, metadata: meta },
      ]);
    }
    await store.append('other-1', [{ type: 'Added', data: { n: 100 }, metadata: meta }]);
    const runner = new ProjectionRunner({ store, db: { connectionString: url }, projections: [totals], batchSize: 7 });
    await runner.start();
    try {
      await runner.waitFor();
      const rows = async () => (await pool.query('select cart, total from totals order by cart')).rows;
      assert.deepEqual(await rows(), [
        { cart: 'cart-0', total: 10 },
        { cart: 'cart-1', total: 10 },
        { cart: 'cart-2', total: 10 },
      ]);
      // Live events after catching up.
      const r = await store.append('cart-0', [{ type: 'Added', data: { n: 5 }, metadata: meta }]);
      await runner.waitFor(r.position);
      assert.equal((await rows())[0]!.total, 15);
      const [st] = await runner.status();
      assert.equal(st!.name, 'totals');
      assert.equal(st!.position, r.position);
      assert.equal(st!.head, r.position);
      assert.equal(st!.lag, 0);
      assert.equal(st!.running, true);

      await runner.rebuild('totals');
      await runner.waitFor(r.position);
      assert.deepEqual(await rows(), [
        { cart: 'cart-0', total: 15 },
        { cart: 'cart-1', total: 10 },
        { cart: 'cart-2', total: 10 },
      ]);
    } finally {
      await runner.stop();
    }
    assert.equal(await checkpoint(pool, 'totals'), await store.headPosition());
  });

  it('a read model that never deletes its rows, emptied by hand, is rebuilt from the log (at start and while running); one empty for want of events is left alone', async () => {
    const tag = randomUUID().slice(0, 8);
    const table = `kept_${tag}`;
    const projection = (name: string, prefix: string): Projection => ({
      name,
      handles: ['Kept'],
      streamPrefixes: [prefix],
      setup: async (c) => {
        await c.query(`create table if not exists ${table} (id text primary key, n int not null)`);
      },
      apply: async (c, e) => {
        await c.query(`insert into ${table} values ($1, $2) on conflict (id) do nothing`, [
          e.id,
          (e.data as { n: number }).n,
        ]);
      },
      reset: async (c) => {
        await c.query(
          `delete from ${table} where id in (select event_id::text from eventstore.events where stream_id like $1)`,
          [`${prefix}%`],
        );
      },
      isEmpty: async (p) =>
        (await p.query<{ empty: boolean }>(`select not exists (select 1 from ${table}) as empty`)).rows[0]!.empty,
    });
    const kept = projection(`kept-${tag}`, `kept${tag}-`);
    for (let i = 0; i < 20; i++)
      await store.append(`kept${tag}-${i}`, [{ id: randomUUID(), type: 'Kept', data: { n: i }, metadata: meta }]);
    const count = async () => Number((await pool.query(`select count(*) as n from ${table}`)).rows[0].n);
    const first = new ProjectionRunner({
      store,
      db: { connectionString: url },
      projections: [kept],
      emptiedCheckMs: 200,
    });
    await first.start();
    await first.waitFor();
    await first.stop();
    assert.equal(await count(), 20);

    // Emptied while stopped: the next start finds it empty behind its checkpoint and rebuilds it.
    await pool.query(`truncate ${table}`);
    const runner = new ProjectionRunner({
      store,
      db: { connectionString: url },
      projections: [kept],
      emptiedCheckMs: 200,
    });
    await runner.start();
    try {
      const until = async (n: number) => {
        for (let i = 0; i < 100 && (await count()) !== n; i++) await new Promise((r) => setTimeout(r, 100));
        return count();
      };
      assert.equal(await until(20), 20, 'rebuilt at start');
      // A check sees it holding rows again (a rebuild is not repeated before one has).
      await new Promise((r) => setTimeout(r, 600));
      // Emptied while running: the next check rebuilds it.
      await pool.query(`truncate ${table}`);
      assert.equal(await until(20), 20, 'rebuilt while running');
    } finally {
      await runner.stop();
    }

    // Empty because no event it handles was ever appended: no rebuild (checked by its checkpoint staying put).
    const none = projection(`none-${tag}`, `none${tag}-`);
    await pool.query(`truncate ${table}`);
    const idle = new ProjectionRunner({
      store,
      db: { connectionString: url },
      projections: [none],
      emptiedCheckMs: 100,
    });
    await idle.start();
    try {
      await idle.waitFor();
      const at = await checkpoint(pool, `none-${tag}`);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await checkpoint(pool, `none-${tag}`), at, 'not set back: nothing to rebuild');
    } finally {
      await idle.stop();
    }
  });

  it('filters where the store reads: gets exactly the events it handles, moves its checkpoint past the others, resumes after a restart', async () => {
    const tag = randomUUID().slice(0, 8);
    const table = `filtered_${tag}`;
    const applied: number[] = [];
    const projection: Projection = {
      name: `filtered-${tag}`,
      handles: ['Added'],
      streamPrefixes: [`fcart${tag}-`],
      setup: async (c) => {
        await c.query(`create table if not exists ${table} (position bigint primary key)`);
      },
      apply: async (c, e) => {
        await c.query(`insert into ${table} values ($1)`, [e.position]);
      },
      afterCommit: (events) => void applied.push(...events.map((e) => e.position)),
    };
    // The runner reads through its own store, as a runner in another process does (SQL pages and
    // NOTIFY, nothing handed over by an append of its own); every event that crosses the port is counted.
    const reader = new PostgresEventStore({ connectionString: url, liveFeed: 'own' });
    let crossed = 0;
    const subscribeCounting = (options?: SubscribeOptions): AllSubscription => {
      const inner = reader.subscribeToAll(options);
      return {
        close: () => inner.close(),
        async *[Symbol.asyncIterator]() {
          for await (const e of inner) {
            crossed++;
            yield e;
          }
        },
      };
    };
    const counting = overriding<PostgresEventStore>(reader, { subscribeToAll: subscribeCounting });
    const handled = new Set<number>();
    const mixed = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await store.append(`fcart${tag}-${i % 3}`, [
          { type: 'Added', data: { i }, metadata: meta },
          { type: 'Viewed', data: { i }, metadata: meta },
        ]);
        handled.add(r.position - 1);
        await store.append(`fother${tag}-${i}`, [{ type: 'Added', data: { i }, metadata: meta }]);
        await store.append(`task-${tag}`, [{ type: 'TaskQueued', data: { i }, metadata: meta }]);
      }
      return store.headPosition();
    };
    const run = () =>
      new ProjectionRunner({ store: counting, db: { connectionString: url }, projections: [projection], batchSize: 7 });
    const untilStored = async (position: number) => {
      const deadline = Date.now() + 15_000;
      while ((await checkpoint(pool, projection.name)) < position && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal(await checkpoint(pool, projection.name), position);
    };
    try {
      const before = await mixed(20); // ends with an event it does not handle
      let runner = run();
      await runner.start();
      try {
        await runner.waitFor(before, projection.name, 20_000); // resolves though the newest event is not its own
        // Live: only events it does not handle; the checkpoint still reaches the head.
        const live = (
          await store.append(
            `task-${tag}`,
            Array.from({ length: 30 }, () => ({ type: 'TaskQueued', data: {}, metadata: meta })),
          )
        ).position;
        await runner.waitFor(live, projection.name, 20_000);
        await untilStored(live);
        const [st] = await runner.status();
        assert.equal(st!.position, live);
      } finally {
        await runner.stop();
      }
      // Restart: what was appended while stopped, and nothing twice.
      const after = await mixed(10);
      runner = run();
      await runner.start();
      try {
        await runner.waitFor(after, projection.name, 20_000);
      } finally {
        await runner.stop();
      }
      await untilStored(after);
      assert.deepEqual(
        applied,
        [...handled].sort((a, b) => a - b),
        'each handled event applied once, in order',
      );
      assert.equal(crossed, handled.size, 'only the events it handles reached the runner');
      const rows = await pool.query<{ n: string }>(`select count(*) as n from ${table}`);
      assert.equal(Number(rows.rows[0]!.n), handled.size);
    } finally {
      await reader.close();
    }
  });

  it('afterCommit hears each committed, handled event once, never one of a rolled-back batch', async () => {
    let failOnce = true;
    const heard: number[] = [];
    const projection: Projection = {
      name: 'after-commit',
      handles: ['Ticked'],
      setup: async (c) => {
        await c.query('create table if not exists ticks (i int primary key)');
      },
      apply: async (c, e) => {
        const i = (e.data as { i: number }).i;
        // The first batch fails once after writing: rolled back, so afterCommit must not hear it.
        if (i === 3 && failOnce) {
          failOnce = false;
          throw new Error('fail this batch once');
        }
        await c.query('insert into ticks values ($1)', [i]);
      },
      afterCommit: (applied) => {
        for (const e of applied) heard.push((e.data as { i: number }).i);
      },
    };
    let last = -1;
    for (let i = 0; i < 10; i++) {
      last = (
        await store.append(`tick-${i}`, [
          { type: 'Ticked', data: { i }, metadata: meta },
          { type: 'Ignored', data: {}, metadata: meta },
        ])
      ).position;
    }
    const runner = new ProjectionRunner({
      store,
      db: { connectionString: url },
      projections: [projection],
      batchSize: 4,
    });
    await runner.start();
    try {
      await runner.waitFor(last, 'after-commit', 20_000);
    } finally {
      await runner.stop();
    }
    assert.equal(failOnce, false, 'the failing batch was tried');
    assert.deepEqual(heard, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const stored = await pool.query<{ i: number }>('select i from ticks order by i');
    assert.deepEqual(
      stored.rows.map((r) => r.i),
      heard,
    );
  });

  it('live events that arrive within the gather window go in one transaction; a read model commits without waiting for its WAL flush unless it asks to', async () => {
    const tag = randomUUID().slice(0, 8);
    const batches: number[] = [];
    const commitModes = new Map<string, string>();
    const projection = (name: string, durableCommit?: boolean): Projection => ({
      name,
      handles: ['Gathered'],
      streamPrefixes: [`gather-${tag}`],
      ...(durableCommit === undefined ? {} : { durableCommit }),
      setup: async () => undefined,
      apply: async (c) => {
        commitModes.set(
          name,
          (await c.query<{ synchronous_commit: string }>('show synchronous_commit')).rows[0]!.synchronous_commit,
        );
      },
    });
    const gathering: Projection = {
      ...projection(`gathering-${tag}`),
      // afterCommit makes a projection durable by default; this one says otherwise.
      durableCommit: false,
      afterCommit: (applied) => void batches.push(applied.length),
    };
    const runner = new ProjectionRunner({
      store,
      db: { connectionString: url },
      projections: [gathering, projection(`derived-${tag}`), projection(`durable-${tag}`, true)],
      gatherMs: 300,
    });
    await runner.start();
    try {
      await runner.waitFor();
      // Three appends, 20 ms apart: well inside the 300 ms window.
      for (let i = 0; i < 3; i++) {
        await store.append(`gather-${tag}`, [{ type: 'Gathered', data: { i }, metadata: meta }]);
        await new Promise((r) => setTimeout(r, 20));
      }
      await runner.waitFor();
      assert.deepEqual(batches, [3], 'one transaction for the three live events');
      assert.equal(commitModes.get(`gathering-${tag}`), 'off');
      assert.equal(commitModes.get(`derived-${tag}`), 'off');
      assert.equal(commitModes.get(`durable-${tag}`), 'on');
    } finally {
      await runner.stop();
    }
  });

  it('a runner starting while another applies a batch to the same projection waits for it (no deadlock)', async () => {
    const tag = randomUUID().slice(0, 8);
    const table = `slow_${tag}`;
    let applying: () => void = () => undefined;
    const inBatch = new Promise<void>((r) => (applying = r));
    const slow: Projection = {
      name: `slow-${tag}`,
      handles: ['Slow'],
      streamPrefixes: [`slow-${tag}`],
      setup: async (c) => {
        await c.query(`create table if not exists ${table} (n int not null)`);
        await c.query(`create index if not exists ${table}_n on ${table} (n)`);
      },
      // Checkpoint row locked (the runner moved it first), the table not touched yet: the moment
      // a starting runner's DDL used to lock the table and then wait for that row.
      apply: async (c, e) => {
        applying();
        await c.query('select pg_sleep(0.4)');
        await c.query(`insert into ${table} values ($1)`, [(e.data as { n: number }).n]);
      },
    };
    const a = new ProjectionRunner({ store, db: { connectionString: url }, projections: [slow], gatherMs: 0 });
    const b = new ProjectionRunner({ store, db: { connectionString: url }, projections: [slow], gatherMs: 0 });
    await a.start();
    try {
      await store.append(`slow-${tag}`, [{ type: 'Slow', data: { n: 7 }, metadata: meta }]);
      await inBatch;
      await b.start(); // a deadlock would abort one of the two transactions here (40P01)
      await Promise.all([a.waitFor(), b.waitFor()]);
      assert.deepEqual((await pool.query(`select n from ${table}`)).rows, [{ n: 7 }]);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  for (const [what, projection, table, stream] of [
    ['the same projection', countingProjection('dup_applied', 'dup'), 'dup_applied', 'dup'],
    // Each batch's checkpoint move, statement and commit are written together: the runner that
    // finds the checkpoint moved rolls back without having waited for that answer.
    [
      'a one-statement projection (a batch in one round trip)',
      { ...countingStatementProjection('dupst_applied', 'dup-stmt'), streamPrefixes: ['dupst-'] },
      'dupst_applied',
      'dupst',
    ],
    // The start with the checkpoint's move, the statements and the commit in one query.
    [
      'a projection giving its batch as SQL text (one query)',
      { ...countingTextProjection('duptx_applied', 'dup-text'), streamPrefixes: ['duptx-'] },
      'duptx_applied',
      'duptx',
    ],
  ] as const) {
    it(`two runners of ${what} never apply an event twice`, async () => {
      const a = new ProjectionRunner({
        store,
        db: { connectionString: url },
        projections: [projection],
        batchSize: 20,
      });
      const b = new ProjectionRunner({
        store,
        db: { connectionString: url },
        projections: [projection],
        batchSize: 13,
      });
      await Promise.all([a.start(), b.start()]);
      try {
        let last = -1;
        for (let i = 0; i < 20; i++) last = (await store.append(`${stream}-${i % 4}`, counted(25))).position;
        await Promise.all([a.waitFor(last), b.waitFor(last)]);
        const c = await appliedCounts(pool, table);
        assert.equal(c.rows, 500);
        assert.equal(c.total, 500);
        assert.equal(c.max, 1);
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    });
  }

  const textPoison = countingTextProjection('poisontx_applied', 'poison-text');
  for (const [what, made, table, stream] of [
    ['a one-statement batch', countingStatementProjection('poison_applied', 'poison'), 'poison_applied', 'poison'],
    ['a batch given as SQL text (its poison after two inserts)', textPoison, 'poisontx_applied', 'poisontx'],
  ] as const)
    it(`${what} that fails rolls back with its checkpoint, and its connection serves on`, async () => {
      const projection = { ...made, streamPrefixes: [`${stream}-`] };
      // One connection: every retry of the failing batch, and the query after, use the same client.
      const one = new pg.Pool({ connectionString: url, max: 1 });
      const runner = new ProjectionRunner({ store, db: { pool: one }, projections: [projection], batchSize: 10 });
      await runner.start();
      try {
        const good = (await store.append(`${stream}-1`, counted(5))).position;
        await runner.waitFor(good);
        const bad = await store.append(`${stream}-2`, [
          ...counted(2),
          { id: randomUUID(), type: 'Counted', data: { poison: true }, metadata: meta },
        ]);
        let status = (await runner.status()).find((p) => p.name === projection.name);
        const deadline = Date.now() + 10_000;
        while (!status?.lastError && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
          status = (await runner.status()).find((p) => p.name === projection.name);
        }
        assert.match(status?.lastError ?? '', /division by zero/);
        assert.ok(status!.position < bad.position, 'the checkpoint stayed before the failing batch');
        assert.equal(await checkpoint(pool, projection.name), good);
        assert.deepEqual(
          await appliedCounts(pool, table),
          { rows: 5, total: 5, max: 1 },
          'the two events before the poison were rolled back too',
        );
        if (made === textPoison)
          assert.deepEqual([...new Set(textPoison.settled)], [true, false], 'told of the commit, then of each failure');
        // The client went back to the pool out of its pipeline, outside any transaction.
        const after = await one.query<{ tx: string }>(`select 'in tx: ' || (now() <> statement_timestamp()) as tx`);
        assert.equal(after.rows[0]?.tx, 'in tx: false');
      } finally {
        await runner.stop();
        await one.end();
      }
    });

  it('a runner SIGKILLed mid-stream and restarted applies every event exactly once (kill test)', async () => {
    const childScript = fileURLToPath(new URL('./kill-test/child.js', import.meta.url));
    const killUrl = await freshDatabase('rm_kill');
    const killStore = new PostgresEventStore({ connectionString: killUrl });
    await killStore.init();
    const killPool = new pg.Pool({ connectionString: killUrl, max: 2 });
    const children: ChildProcess[] = [];
    let appending: Promise<void> = Promise.resolve();
    const startChild = async (): Promise<ChildProcess> => {
      const child = spawn(process.execPath, [childScript], {
        env: { ...process.env, DATABASE_URL: killUrl, BATCH_SIZE: '50' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) resolve();
        });
      });
      return child;
    };
    const kill = (child: ChildProcess) =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode) return resolve();
        child.removeAllListeners('exit');
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    try {
      const total = 3000;
      // 1. Append in the background (batches of 100 with short pauses) while children project.
      appending = (async () => {
        for (let i = 0; i < total / 100; i++) {
          await killStore.append(`kill-${i % 7}`, counted(100));
          await new Promise((r) => setTimeout(r, 15));
        }
      })();
      // 2. Three times: start a child, let it get at least 150 positions further, SIGKILL it
      //    while it still has events to apply (usually inside a batch transaction).
      const kills: string[] = [];
      for (let k = 0; k < 3; k++) {
        const from = await checkpoint(killPool);
        const child = await startChild();
        const deadline = Date.now() + 30_000;
        let cp = from;
        while ((cp = await checkpoint(killPool)) < from + 150 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 5));
        await kill(child);
        kills.push(`${from}->${cp} (head ${await killStore.headPosition()})`);
      }
      console.log(`# kill test: child SIGKILLed at checkpoints ${kills.join(', ')}`);
      await appending;
      const child = await startChild();
      // 2. Let the last child finish, then check effects and checkpoint.
      const head = await killStore.headPosition();
      const deadline = Date.now() + 60_000;
      while ((await checkpoint(killPool)) < head && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      await kill(child);
      const c = await appliedCounts(killPool);
      assert.equal(kills.length, 3);
      assert.equal(c.rows, total, 'lost events');
      assert.equal(c.max, 1, 'an event was applied twice');
      assert.equal(c.total, total);
      assert.equal(await checkpoint(killPool), head);
    } finally {
      for (const ch of children) await kill(ch);
      await appending.catch(() => undefined);
      await killStore.close();
      await killPool.end();
    }
  });
});
